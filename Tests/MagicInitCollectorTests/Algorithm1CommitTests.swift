import Testing
import MagicInitAlgorithms
@testable import MagicInitCollector
import MagicInitCore
import MagicInitStatistics
import MagicInitTestKit

/// Algorithm 1's step ends only with the layer's `.normalize` directive (docs/DESIGN.md §2):
/// the collector never infers it from the shape of another directive, and refuses requests
/// it cannot answer with its own errors.
@Suite struct Algorithm1CommitTests {
    /// The normalisation of a layer's merged moments: `1/σ`, `0.1 − μ/σ`.
    static func normalisation(_ parts: [(chunk: Int, moments: ChannelMoments)]) -> (scale: [Double], shift: [Double]) {
        var merged = parts[0].moments
        for part in parts.dropFirst() { merged.merge(part.moments) }
        let std = merged.standardDeviation
        return (std.map { 1 / $0 }, std.indices.map { 0.1 - merged.mean[$0] / std[$0] })
    }

    /// The same weight change sent as `.affine` (no column scale) leaves the step
    /// uncommitted, so the next step runs the layer again from the images; sent as
    /// `.normalize` it commits, and the next step maps the cached output instead. Both give
    /// the same weights bit for bit and the next layer's moments within float rounding.
    @Test func test_affineDirective_neverCommits_normalizeDoes() throws {
        let network = reluNetwork()
        let chunks = LocalStatisticsSource.chunks(of: try FixturePhotos.load(size: 32), size: 4)
        var next: [[(chunk: Int, moments: ChannelMoments)]] = []
        var weights: [ParameterSet] = []
        for explicit in [true, false] {
            let collector = try collector(network, threads: 1)
            try collector.add(chunks)
            try collector.apply([.gaussian(layer: "conv1", seed: 7, std: 1)])
            let (scale, shift) = Self.normalisation(try collector.outputMoments(layer: "conv1"))
            try collector.apply([explicit ? .normalize(layer: "conv1", scale: scale, shift: shift)
                                          : .affine(layer: "conv1", rowScale: scale, columnScale: [], shift: shift)])
            let conv1 = collector.graph.node(named: "conv1")!
            #expect(collector.algorithm1.frontier == (explicit ? conv1 : -1))
            #expect(collector.algorithm1.history.count == (explicit ? 1 : 0))
            #expect((collector.cachedBytes > 0) == explicit, "cached \(collector.cachedBytes) B")
            try collector.apply([.gaussian(layer: "conv2", seed: 7, std: 1)])
            next.append(try collector.outputMoments(layer: "conv2"))
            weights.append(collector.parameters)
        }
        #expect(weights[0].keys.sorted() == weights[1].keys.sorted())
        for (key, value) in weights[0] { #expect(weights[1][key]!.data.map(\.bitPattern) == value.data.map(\.bitPattern), "\(key)") }
        var worst = 0.0
        for (mapped, rerun) in zip(next[0], next[1]) {
            #expect(mapped.chunk == rerun.chunk)
            let scale = rerun.moments.m2.map(abs).max()!
            for (a, b) in zip(mapped.moments.mean + mapped.moments.m2, rerun.moments.mean + rerun.moments.m2) {
                worst = max(worst, abs(a - b) / scale)
            }
        }
        #expect(worst < 1e-5, "conv2 moments after a mapped cache vs a re-run: largest difference \(worst) of the largest m2")
    }

    /// A `.normalize` of a layer whose step was not asked for (a collector without chunks,
    /// as a worker before its first assignment) changes the weights only.
    @Test func test_normalizeWithoutPendingStep_changesOnlyTheWeights() throws {
        let collector = try collector(reluNetwork(), threads: 1)
        try collector.apply([.gaussian(layer: "conv1", seed: 7, std: 1)])
        let before = collector.parameters["conv1.weight"]!.data
        try collector.apply([.normalize(layer: "conv1", scale: [Double](repeating: 2, count: 16), shift: [Double](repeating: 0, count: 16))])
        #expect(collector.algorithm1.frontier == -1 && collector.algorithm1.history.isEmpty)
        let after = collector.parameters["conv1.weight"]!.data
        #expect(zip(before, after).allSatisfy { $1 == $0 * 2 })
    }

    @Test func test_badRequests_collectorErrorsNameTheLayerOrChunk() throws {
        let network = reluNetwork()
        let collector = try collector(network, threads: 1)
        let images = try FixturePhotos.load(size: 32)
        #expect(throws: CollectorError.unknownLayer("relu1")) { try collector.outputMoments(layer: "relu1") }
        #expect(throws: CollectorError.unknownLayer("nope")) { try collector.outputMoments(layer: "nope") }
        let wrong = Tensor(shape: [2, 3, 30, 30])
        #expect(throws: CollectorError.chunkShape(chunk: 5, expected: [4, 3, 32, 32], actual: [2, 3, 30, 30])) {
            try collector.add([Chunk(index: 5, firstImage: 0, images: wrong)])
        }
        #expect(collector.chunkIndices.isEmpty)
        try collector.add(LocalStatisticsSource.chunks(of: images, size: 4))
        try collector.apply([.gaussian(layer: "conv1", seed: 7, std: 1), .gaussian(layer: "conv2", seed: 7, std: 1)])
        let (scale, shift) = Self.normalisation(try collector.outputMoments(layer: "conv2"))
        try collector.apply([.normalize(layer: "conv2", scale: scale, shift: shift)])
        #expect(throws: CollectorError.layerOutOfOrder(layer: "conv1", committed: "conv2")) { try collector.outputMoments(layer: "conv1") }
        #expect(CollectorError.layerOutOfOrder(layer: "conv1", committed: "conv2").description.contains("'conv1'"))
    }
}
