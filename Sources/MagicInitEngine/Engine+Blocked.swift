import CDNNL
import Foundation
import MagicInitCore

/// Float32 storage of fixed capacity for ``BlobSnapshot``s: mapped directly when large (as
/// the engine's own buffers, and prefaulted as they are, see ``Memory/map(_:prefault:for:)``).
/// `count` of the `capacity` floats are in use.
///
/// Not thread-safe: owned by one collector.
public final class FloatStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let capacity: Int
    /// Floats in use, `≤ capacity`.
    public internal(set) var count: Int
    private let mappedBytes: Int?

    /// - Throws: ``EngineError/dnnl(status:context:)`` when the memory cannot be mapped.
    init(capacity: Int, prefault: Bool) throws {
        let bytes = max(capacity, 1) * 4
        if bytes >= Memory.mappedThreshold {
            pointer = try Memory.map(bytes, prefault: prefault, for: "a snapshot").bindMemory(to: Float.self, capacity: max(capacity, 1))
            mappedBytes = bytes
        } else {
            pointer = .allocate(capacity: max(capacity, 1))
            mappedBytes = nil
        }
        self.capacity = capacity
        count = 0
    }

    deinit {
        if let mappedBytes { munmap(pointer, mappedBytes) } else { pointer.deallocate() }
    }

    /// The floats in use.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

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
    public let storage: FloatStorage
    /// Whether ``storage`` is the engine's own layout (restored by a copy) rather than plain
    /// row-major (restored by a reorder).
    let native: Bool

    /// Bytes held (capacity, which may exceed what the blob needs when storage is reused).
    public var byteCount: Int { storage.capacity * 4 }
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
        try withChannelBlocked(values[id], blob: id, slot: "value", body)
    }

    /// Like ``withChannelBlockedValue(of:_:)`` for blob `id`'s gradient (after ``backward(weights:)``).
    public func withChannelBlockedGradient<R>(of id: Int, _ body: (UnsafePointer<Float>, ChannelBlockedLayout) throws -> R) throws -> R {
        guard let diff = gradientMemory(id) else {
            throw EngineError.missingParameter("gradient of blob \(graph.blobs[id].label) (run backward first)")
        }
        return try withChannelBlocked(diff, blob: id, slot: "gradient", body)
    }

    /// `memory` (blob `id`'s value or gradient) in place when it is channel-blocked or plain,
    /// else through ``withPlain(_:blob:slot:_:)``'s scratch reorder.
    private func withChannelBlocked<R>(_ memory: Memory, blob id: Int, slot: String,
                                       _ body: (UnsafePointer<Float>, ChannelBlockedLayout) throws -> R) throws -> R {
        if let layout = channelBlockedLayout(of: memory, blob: id) {
            return try body(UnsafePointer(memory.floats), layout)
        }
        let plain = ChannelBlockedLayout.plain(shape: graph.blobs[id].shape)
        return try withPlain(memory, blob: id, slot: slot) { try body($0.baseAddress!, plain) }
    }

    /// A copy of blob `id`'s value, in the engine's own layout when it is channel-blocked or
    /// plain (a straight copy), else plain row-major. Writes into `storage` when it is large
    /// enough (no new pages to fault in), else into new storage.
    /// Floats a ``snapshot(of:reusing:reserve:)`` of blob `id` takes.
    public func snapshotCount(of id: Int) -> Int {
        channelBlockedLayout(of: values[id], blob: id) != nil ? values[id].byteCount / 4 : graph.blobs[id].shape.reduce(1, *)
    }

    /// - Parameter reserve: floats new storage holds at least (a later snapshot of a larger
    ///   blob can then reuse it: its pages are faulted in as they are first written).
    public func snapshot(of id: Int, reusing storage: FloatStorage? = nil, reserve: Int = 0) throws -> BlobSnapshot {
        let memory = values[id]
        let shape = graph.blobs[id].shape
        let blocked = channelBlockedLayout(of: memory, blob: id)
        let count = blocked != nil ? memory.byteCount / 4 : shape.reduce(1, *)
        let target = try storage.flatMap { $0.capacity >= count ? $0 : nil } ?? FloatStorage(capacity: max(count, reserve), prefault: context.prefault)
        target.count = count
        if blocked != nil {
            target.pointer.update(from: memory.floats, count: count)
        } else {
            try Engine.copyOut(memory, into: target.pointer, count: count, as: try plainDesc(shape), context: context, label: graph.blobs[id].label)
        }
        return BlobSnapshot(blob: id, layout: blocked ?? .plain(shape: shape), storage: target, native: blocked != nil)
    }

    /// Writes `transform` of a snapshot back into its blob, or into blob `target` when
    /// given (say, the output of the element-wise layer that reads the snapshot's blob, with
    /// that layer folded into `transform`): `transform(source, target, count)` must write
    /// all `count` floats of `target` (in ``BlobSnapshot/layout``) from `source` (say, a
    /// per-channel affine map, so the map costs no pass of its own). The snapshot itself is
    /// left as it is.
    /// - Throws: ``EngineError/blobShape(blob:expected:actual:)`` when it does not fit the
    ///   blob, or `target` is held in another layout than the snapshot's blob (see
    ///   ``sameLayout(_:_:)``).
    public func restore(_ snapshot: BlobSnapshot, into target: Int? = nil,
                        through transform: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) throws {
        if let target, !sameLayout(target, snapshot.blob) {
            let blob = graph.blobs[target]
            throw EngineError.blobShape(blob: blob.label, expected: graph.blobs[snapshot.blob].shape, actual: blob.shape)
        }
        try withoutActuallyEscaping(transform) { try restore(snapshot, into: target ?? snapshot.blob, transform: $0) }
    }

    /// Whether blobs `a` and `b` have the same shape and are held in the same layout.
    public func sameLayout(_ a: Int, _ b: Int) -> Bool {
        graph.blobs[a].shape == graph.blobs[b].shape && descEqual(values[a].desc, values[b].desc)
    }

    /// Writes a snapshot back into its blob.
    /// - Throws: ``EngineError/blobShape(blob:expected:actual:)`` when it does not fit the blob.
    public func restore(_ snapshot: BlobSnapshot) throws {
        try restore(snapshot, into: snapshot.blob, transform: nil)
    }

    /// Both restores: a native snapshot is copied (or transformed) straight into the blob's
    /// buffer; a plain one is reordered into it (after transforming it into a copy).
    private func restore(_ snapshot: BlobSnapshot, into target: Int,
                         transform: ((UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void)?) throws {
        let memory = values[target]
        let blob = graph.blobs[target]
        let count = snapshot.storage.count
        if snapshot.native {
            guard count * 4 == memory.byteCount else {
                throw EngineError.blobShape(blob: blob.label, expected: blob.shape, actual: [count])
            }
            if let transform { transform(snapshot.storage.pointer, memory.floats, count) } else { memory.floats.update(from: snapshot.storage.pointer, count: count) }
            return
        }
        guard count == blob.shape.reduce(1, *) else {
            throw EngineError.blobShape(blob: blob.label, expected: blob.shape, actual: [count])
        }
        var source = snapshot.storage
        if let transform {
            source = try FloatStorage(capacity: count, prefault: context.prefault)
            source.count = count
            transform(snapshot.storage.pointer, source.pointer, count)
        }
        let plain = try plainDesc(blob.shape)
        let user = try Memory(wrapping: UnsafeMutableRawPointer(source.pointer), desc: plain, context)
        try Reorder(from: plain, to: memory.desc, context, "restore of \(blob.label)").run(user, memory, context)
    }
}
