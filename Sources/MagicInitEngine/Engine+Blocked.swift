import CDNNL
import MagicInitCore

/// A copy of one blob's value taken with ``Engine/snapshot(of:reusing:)``, to be written back
/// with ``Engine/restore(_:)``: Algorithm 1 keeps each chunk's latest activations this way
/// between its layer-by-layer steps. When oneDNN holds the blob channel-blocked (or plain)
/// the copy is its buffer byte for byte (no reorder either way); otherwise it is the plain
/// row-major value.
public struct BlobSnapshot: Sendable {
    /// The blob (index into ``Graph/blobs``).
    public let blob: Int
    /// Where each value sits in ``storage``.
    public let layout: ChannelBlockedLayout
    /// The values, `layout.count` floats (channel padding included, as zeros).
    public var storage: [Float]
    /// Whether ``storage`` is the engine's own layout (restored by a copy) rather than plain
    /// row-major (restored by a reorder).
    let native: Bool

    /// Bytes held.
    public var byteCount: Int { storage.count * 4 }
}

extension Engine {
    /// The blob's value layout when oneDNN holds it channel-blocked with a block of 8 or 16
    /// (the statistics kernels' vector width), or plain row-major; `nil` for any other layout.
    func channelBlockedLayout(of memory: Memory, blob id: Int) -> ChannelBlockedLayout? {
        let shape = graph.blobs[id].shape
        guard shape.count >= 2 else { return nil }
        let plain = ChannelBlockedLayout.plain(shape: shape)
        if let desc = try? plainDesc(shape), descEqual(desc, memory.desc) { return plain }
        let md = memory.desc
        guard md.format_kind == dnnl_blocked, md.offset0 == 0, md.data_type == dnnl_f32, Int(md.ndims) == shape.count else { return nil }
        let blocking = md.format_desc.blocking
        guard blocking.inner_nblks == 1, blocking.inner_idxs.0 == 1 else { return nil }
        let block = Int(blocking.inner_blks.0)
        guard block % 8 == 0 else { return nil }
        let dims = withUnsafeBytes(of: md.dims) { Array($0.bindMemory(to: Int64.self).prefix(shape.count)).map(Int.init) }
        let padded = withUnsafeBytes(of: md.padded_dims) { Array($0.bindMemory(to: Int64.self).prefix(shape.count)).map(Int.init) }
        let strides = withUnsafeBytes(of: blocking.strides) { Array($0.bindMemory(to: Int64.self).prefix(shape.count)).map(Int.init) }
        guard dims == shape, padded[0] == shape[0], Array(padded.dropFirst(2)) == Array(shape.dropFirst(2)),
              padded[1] % block == 0, padded[1] >= shape[1] else { return nil }
        // Spatial dimensions dense and row-major inside each block: the last has stride
        // `block`, each earlier one the product of the later extents times `block`.
        var expected = block
        for d in stride(from: shape.count - 1, through: 2, by: -1) {
            guard strides[d] == expected else { return nil }
            expected *= shape[d]
        }
        let blockStride = strides[1], imageStride = strides[0]
        guard blockStride >= plain.spatial * block, imageStride >= (padded[1] / block) * blockStride else { return nil }
        return ChannelBlockedLayout(images: shape[0], channels: shape[1], spatial: plain.spatial, block: block,
                                    imageStride: imageStride, blockStride: blockStride)
    }

    /// Calls `body` with blob `id`'s value without a reorder when oneDNN holds it
    /// channel-blocked (block a multiple of 8) or plain; otherwise with a plain row-major copy
    /// in a scratch buffer (valid only during `body`, as in ``withValue(of:_:)``).
    public func withChannelBlockedValue<R>(of id: Int, _ body: (UnsafePointer<Float>, ChannelBlockedLayout) throws -> R) throws -> R {
        if let layout = channelBlockedLayout(of: values[id], blob: id) {
            return try body(UnsafePointer(values[id].floats), layout)
        }
        let plain = ChannelBlockedLayout.plain(shape: graph.blobs[id].shape)
        return try withValue(of: id) { try body($0.baseAddress!, plain) }
    }

    /// Like ``withChannelBlockedValue(of:_:)`` for blob `id`'s gradient (after ``backward(weights:)``).
    public func withChannelBlockedGradient<R>(of id: Int, _ body: (UnsafePointer<Float>, ChannelBlockedLayout) throws -> R) throws -> R {
        guard let diff = gradientMemory(id) else {
            throw EngineError.missingParameter("gradient of blob \(graph.blobs[id].label) (run backward first)")
        }
        if let layout = channelBlockedLayout(of: diff, blob: id) {
            return try body(UnsafePointer(diff.floats), layout)
        }
        let plain = ChannelBlockedLayout.plain(shape: graph.blobs[id].shape)
        return try withGradient(of: id) { try body($0.baseAddress!, plain) }
    }

    /// A copy of blob `id`'s value, in the engine's own layout when it is channel-blocked or
    /// plain (a straight copy), else plain row-major. Writes into `storage` when it holds
    /// enough floats (saves faulting in fresh pages; `storage` is left empty).
    public func snapshot(of id: Int, reusing storage: inout [Float]) throws -> BlobSnapshot {
        let memory = values[id]
        var data: [Float] = []
        swap(&data, &storage)
        if let layout = channelBlockedLayout(of: memory, blob: id) {
            let count = memory.byteCount / 4
            if data.count >= count {
                data.removeLast(data.count - count)
                data.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: memory.floats, count: count) }
            } else {
                data = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                    buffer.baseAddress!.initialize(from: memory.floats, count: count)
                    initialized = count
                }
            }
            return BlobSnapshot(blob: id, layout: layout, storage: data, native: true)
        }
        let shape = graph.blobs[id].shape
        let value = data.count >= shape.reduce(1, *) ? try self.value(of: id, reusing: &data) : try self.value(of: id)
        return BlobSnapshot(blob: id, layout: .plain(shape: shape), storage: value.data, native: false)
    }

    /// Writes a snapshot back into its blob.
    /// - Throws: ``EngineError/blobShape(blob:expected:actual:)`` when it does not fit the blob.
    public func restore(_ snapshot: BlobSnapshot) throws {
        let memory = values[snapshot.blob]
        if snapshot.native {
            guard snapshot.storage.count * 4 == memory.byteCount else {
                throw EngineError.blobShape(blob: graph.blobs[snapshot.blob].label, expected: graph.blobs[snapshot.blob].shape,
                                            actual: [snapshot.storage.count])
            }
            snapshot.storage.withUnsafeBufferPointer { memory.floats.update(from: $0.baseAddress!, count: $0.count) }
        } else {
            try setValue(Tensor(shape: graph.blobs[snapshot.blob].shape, data: snapshot.storage), of: snapshot.blob)
        }
    }
}
