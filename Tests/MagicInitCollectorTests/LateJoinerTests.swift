import Testing
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitStatistics
import MagicInitTestKit

/// A worker that joins mid-run receives the weights (the directive log) but computes only
/// the later Algorithm 1 steps for its chunks: Algorithm 2's first measurement must then
/// run forward again rather than read statistics it never took (it crashed before).
@Suite struct LateJoinerTests {
    @Test func test_collectorJoiningMidAlgorithm1_measuresWithAFullPass() throws {
        let network = reluNetwork()
        let images = try FixturePhotos.load(size: 32)
        let chunks = Array(LocalStatisticsSource.chunks(of: images, size: 4).prefix(2))
        let present = try collector(network, threads: 1)
        try present.add(chunks)
        var log: [WeightDirective] = []
        let affine = present.graph.nodes.filter { $0.kind.isAffine }
        var late: ChunkCollector?
        for (k, node) in affine.enumerated() {
            if k == 2 {
                // Joins now: replays the log so far, then gets the chunks.
                late = try collector(network, threads: 1)
                try late!.apply(log)
                try late!.add(chunks)
            }
            let draw = WeightDirective.gaussian(layer: node.name, seed: 11, std: 1)
            try present.apply([draw]); try late?.apply([draw]); log.append(draw)
            var merged: ChannelMoments?
            for part in try present.outputMoments(layer: node.name) {
                if merged == nil { merged = part.moments } else { merged!.merge(part.moments) }
            }
            _ = try late?.outputMoments(layer: node.name)
            let std = merged!.standardDeviation
            let map = WeightDirective.normalize(layer: node.name, scale: std.map { 1 / $0 }, shift: std.indices.map { 0.1 - merged!.mean[$0] / std[$0] })
            try present.apply([map]); try late?.apply([map]); log.append(map)
        }
        let expected = try present.measure(step: 0, seed: 3, weightGradients: false)
        let measured = try #require(late).measure(step: 0, seed: 3, weightGradients: false)
        #expect(measured.count == expected.count)
        for (m, e) in zip(measured, expected) {
            for (a, b) in zip(m.measurement.layers, e.measurement.layers) {
                let scale = b.outputGradientSquares.sumOfSquares.map(abs).max() ?? 1
                let worst = zip(a.outputGradientSquares.sumOfSquares, b.outputGradientSquares.sumOfSquares).map { abs($0 - $1) / scale }.max() ?? 0
                #expect(worst < 1e-2, "\(a.layer) Σy² of chunk \(m.chunk): \(worst) of the largest entry")
                let meanScale = b.outputMoments.mean.map(abs).max() ?? 1
                let meanWorst = zip(a.outputMoments.mean, b.outputMoments.mean).map { abs($0 - $1) / meanScale }.max() ?? 0
                #expect(meanWorst < 1e-4, "\(a.layer) mean of chunk \(m.chunk): \(meanWorst)")
            }
        }
    }
}
