import Testing
@testable import MagicInitCollector
import MagicInitCore
@testable import MagicInitEngine
import MagicInitTestKit

/// Algorithm 1 folds the ReLU that follows a cached affine output into the map applied as
/// the cache is restored (written straight into the ReLU's output). It must give oneDNN's
/// ReLU bits, and the whole run must come out bit for bit as when the ReLU layer runs.
@Suite struct FusedReLUTests {
    /// The fused map against oneDNN's ReLU layer run on the mapped values: negative values,
    /// zero and NaN come out as oneDNN's do.
    @Test func test_fusedMap_givesTheBitsOfOneDNNsReLU() throws {
        var b = NetworkBuilder(name: "relu-only", shape: [5, 6, 7])
        b.relu("relu")
        let graph = try Graph(b.network, batchSize: 2)
        let layout = ChannelBlockedLayout.plain(shape: graph.blobs[graph.inputs[0]].shape)
        let scale = (0..<5).map { 0.25 + Double($0) / 3 }, shift = (0..<5).map { Double($0) / 2 - 1.25 }
        // Values around each channel's zero crossing, a NaN, and (channel 0 maps x to
        // x / 4 − 1.25) an input mapped to exactly zero.
        var source = (0..<layout.count).map { Float($0 % 23) / 4 - 3 }
        source[3] = 5; source[4] = .nan
        var mapped = [Float](repeating: 0, count: layout.count), fused = mapped
        source.withUnsafeBufferPointer { s in
            mapped.withUnsafeMutableBufferPointer { CachedAffineMap.apply(s.baseAddress!, into: $0.baseAddress!, layout: layout, scale: scale, shift: shift) }
            fused.withUnsafeMutableBufferPointer {
                CachedAffineMap.apply(s.baseAddress!, into: $0.baseAddress!, layout: layout, scale: scale, shift: shift, rectify: true)
            }
        }
        #expect(mapped.contains { $0 < 0 } && mapped.contains { $0 > 0 } && mapped.contains { $0 == 0 } && mapped[4].isNaN)
        let engine = try Engine(graph: graph)
        try engine.setInput(Tensor(shape: [2, 5, 6, 7], data: mapped))
        try engine.forward()
        let oneDNN = try engine.value(of: graph.nodes[0].tops[0]).data
        let differing = oneDNN.indices.filter { oneDNN[$0].bitPattern != fused[$0].bitPattern }
        #expect(differing.isEmpty, "\(differing.count) elements differ from oneDNN's ReLU, first at \(differing.first ?? -1)")
    }

    /// Algorithm 1 and two measurements with the ReLUs folded into the restores and with
    /// them run as layers: every statistic and weight bitwise equal, on one engine and two,
    /// with chunks adopted mid-run (replayed).
    @Test(arguments: [1, 2])
    func test_algorithm1_fusedReLU_sameBitsAsRunningTheLayer(threads: Int) throws {
        let network = reluNetwork()
        let images = try FixturePhotos.load(size: 32)
        let chunks = LocalStatisticsSource.chunks(of: images, size: 4)
        let fused = try collector(network, threads: threads)
        let layered = try collector(network, threads: threads) { $0.fusesReLU = false }
        // Every ReLU that reads an affine layer's output is folded (relu1 … relu4).
        let graph = fused.graph
        let folded = graph.nodes.indices.filter { i in
            i > 0 && graph.nodes[i - 1].kind.isAffine
                && fused.fusableReLU(reading: graph.nodes[i - 1].tops[0], at: i, on: fused.engines[0]) != nil
        }
        #expect(folded.map { graph.nodes[$0].name } == ["relu1", "relu2", "relu3", "relu3b", "relu3c", "relu4"])
        #expect(layered.fusableReLU(reading: graph.nodes[0].tops[0], at: 1, on: layered.engines[0]) == nil)
        let half = chunks.count / 2
        let a = try algorithm1ThenMeasurements(fused, early: Array(chunks[..<half]), late: Array(chunks[half...]), lateAfter: 2)
        let b = try algorithm1ThenMeasurements(layered, early: Array(chunks[..<half]), late: Array(chunks[half...]), lateAfter: 2)
        expectSameBits(a, b)
    }

    /// ReLUs written over their inputs (the collector's default) against separate buffers:
    /// every statistic and weight bitwise equal, with the ReLU folded into the restore and
    /// run as a layer (in place), on one engine and two, with chunks adopted mid-run. The
    /// second measurement runs forward again (after a weight change), where each affine
    /// layer's statistics must be taken before its ReLU overwrites its output.
    @Test(arguments: [1, 2])
    func test_algorithm1_inPlaceReLU_sameBitsAsSeparateBuffers(threads: Int) throws {
        let network = reluNetwork()
        let images = try FixturePhotos.load(size: 32)
        let chunks = LocalStatisticsSource.chunks(of: images, size: 4)
        let separate = try collector(network, threads: threads) { $0.inPlaceActivations = false }
        let inPlace = try collector(network, threads: threads)
        let inPlaceLayered = try collector(network, threads: threads) { $0.fusesReLU = false }
        #expect(inPlace.engines.allSatisfy { $0.inPlace.count == 6 } && separate.engines.allSatisfy { $0.inPlace.isEmpty })
        let half = chunks.count / 2
        func run(_ collector: ChunkCollector) throws -> (bits: [UInt64], weights: ParameterSet) {
            try algorithm1ThenMeasurements(collector, early: Array(chunks[..<half]), late: Array(chunks[half...]), lateAfter: 2)
        }
        let expected = try run(separate)
        expectSameBits(try run(inPlace), expected)
        expectSameBits(try run(inPlaceLayered), expected)
    }
}
