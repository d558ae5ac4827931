import Foundation
import Testing
import MagicInitCore
@testable import MagicInitEngine

/// Blobs read in oneDNN's own layout (``Engine/withChannelBlockedValue(of:_:)``) and kept
/// as snapshots (``Engine/snapshot(of:reusing:)``): the layout description must locate
/// every value exactly, and a restored snapshot must be the value it was taken from.
@Suite(.serialized) struct BlockedLayoutTests {
    /// Channel counts that are not a multiple of the block (10, 12): the padding lanes.
    static func paddedNetwork() -> Network {
        var b = NetworkBuilder(name: "padded", shape: [3, 12, 12])
        b.conv("conv1", 10, kernel: 3, pad: 1); b.relu("relu1")
        b.maxPool("pool1", kernel: 2, stride: 2)
        b.conv("conv2", 12, kernel: 3, pad: 1); b.relu("relu2")
        b.innerProduct("fc3", 5)
        return b.network
    }

    func engine(_ network: Network = BuiltinNetworks.small()) throws -> Engine { try randomEngine(network, batchSize: 3, seed: 3) }

    func image(_ engine: Engine, seed: UInt64) -> Tensor {
        let shape = engine.graph.blobs[engine.graph.inputs[0]].shape
        return Tensor(shape: shape, data: Philox(seed: seed, stream: 0).gaussians(count: shape.reduce(1, *)))
    }

    /// The row-major values a channel-blocked view describes.
    static func rowMajor(_ base: UnsafePointer<Float>, _ layout: ChannelBlockedLayout) -> [Float] {
        var out: [Float] = []
        for n in 0..<layout.images {
            for c in 0..<layout.channels {
                for s in 0..<layout.spatial { out.append(base[layout.offset(image: n, channel: c, position: s)]) }
            }
        }
        return out
    }

    @Test(arguments: ["small", "padded"])
    func test_channelBlockedViews_locateEveryValueAndGradient(network: String) throws {
        let engine = try engine(network == "small" ? BuiltinNetworks.small() : Self.paddedNetwork())
        try engine.setInput(image(engine, seed: 1))
        try engine.forward()
        let output = engine.graph.outputs[0]
        let outputShape = engine.graph.blobs[output].shape
        try engine.setGradient(Tensor(shape: outputShape, data: Philox(seed: 2, stream: 0).gaussians(count: outputShape.reduce(1, *))), of: output)
        try engine.backward(weights: false)
        var blockedBlobs: [String] = [], paddedBlobs: [String] = []
        for id in engine.graph.blobs.indices where !engine.graph.inputs.contains(id) {
            let label = engine.graph.blobs[id].label
            let (values, layout) = try engine.withChannelBlockedValue(of: id) { (Self.rowMajor($0, $1), $1) }
            #expect(values.map(\.bitPattern) == (try engine.value(of: id)).data.map(\.bitPattern), "value of \(label) in \(layout)")
            let gradient = try engine.withChannelBlockedGradient(of: id) { Self.rowMajor($0, $1) }
            #expect(gradient.map(\.bitPattern) == (try engine.gradient(of: id)).data.map(\.bitPattern), "gradient of \(label)")
            if layout.block > 1 { blockedBlobs.append(label) }
            if layout.block > 1 && layout.channels % layout.block != 0 {
                paddedBlobs.append(label)
                // The padding lanes hold zeros.
                try engine.withChannelBlockedValue(of: id) { base, layout in
                    for n in 0..<layout.images {
                        for c in layout.channels..<(layout.channelBlocks * layout.block) {
                            for s in 0..<layout.spatial where base[layout.offset(image: n, channel: c, position: s)] != 0 {
                                Issue.record("nonzero padding in \(label) at (\(n), \(c), \(s))")
                                return
                            }
                        }
                    }
                }
            }
        }
        // The point of these views: oneDNN keeps convolution activations blocked (nChw8c
        // with AVX2), and they are read without a reorder.
        #expect(!blockedBlobs.isEmpty, "no blob of \(network) is held channel-blocked")
        if network == "padded" { #expect(!paddedBlobs.isEmpty, "no blob of \(network) has padded channel blocks") }
    }

    @Test(arguments: ["small", "padded"])
    func test_snapshot_restoredAfterAnotherForwardPass_isTheSameValue(network: String) throws {
        let engine = try engine(network == "small" ? BuiltinNetworks.small() : Self.paddedNetwork())
        try engine.setInput(image(engine, seed: 1))
        try engine.forward()
        let blobs = engine.graph.blobs.indices.filter { !engine.graph.inputs.contains($0) }
        let before = try blobs.map { try engine.value(of: $0) }
        let snapshots = try blobs.map { try engine.snapshot(of: $0) }
        // Storage is reused when it is large enough, and values land in it whole.
        let reused = try engine.snapshot(of: blobs[0], reusing: snapshots.max { $0.storage.capacity < $1.storage.capacity }!.storage)
        #expect(reused.storage.count == snapshots[0].storage.count)
        #expect(Array(reused.storage.buffer) == Array(snapshots[0].storage.buffer))
        try engine.setInput(image(engine, seed: 2))
        try engine.forward()
        #expect(try engine.value(of: blobs.last!).data != before.last!.data, "the second image should change the output")
        for snapshot in snapshots { try engine.restore(snapshot) }
        for (id, value) in zip(blobs, before) {
            #expect((try engine.value(of: id)).data.map(\.bitPattern) == value.data.map(\.bitPattern), "blob \(engine.graph.blobs[id].label)")
        }
    }
}

/// ``Memory/map(_:prefault:for:)``: large mappings start on a huge-page boundary, hold
/// zeros, and can be written end to end and unmapped with the size asked for.
@Suite struct MappedMemoryTests {
    @Test(arguments: [(1 << 20) + 4, 2 << 20, (5 << 20) + 12], [false, true])
    func test_map_alignsLargeMappingsToHugePages(bytes: Int, prefault: Bool) throws {
        let region = try Memory.map(bytes, prefault: prefault, for: "a test")
        defer { munmap(region, bytes) }
        #expect(bytes < 2 << 20 || Int(bitPattern: region) % (2 << 20) == 0)
        let floats = region.bindMemory(to: Float.self, capacity: bytes / 4)
        #expect((0..<(bytes / 4)).allSatisfy { floats[$0] == 0 })
        for i in stride(from: 0, to: bytes / 4, by: 997) { floats[i] = Float(i) }
        floats[bytes / 4 - 1] = 1
        #expect(floats[997] == 997 && floats[bytes / 4 - 1] == 1)
    }
}
