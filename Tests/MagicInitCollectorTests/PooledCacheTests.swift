import Testing
import MagicInitAlgorithms
@testable import MagicInitCollector
import MagicInitCore
@testable import MagicInitEngine
import MagicInitTestKit

/// Algorithm 1 keeps an affine output that goes through an in-place ReLU into max pooling
/// as its max pooling (a quarter of the memory for 2×2 windows), and does not cache a cheap
/// first convolution at all (it runs again from the images). The pooled cache must change
/// no bit of any statistic or weight; the recomputed first layer must stay deterministic
/// (engines, chunks adopted mid-run) and agree with the full cache to rounding.
@Suite struct PooledCacheTests {
    /// Two max poolings after ReLUs (2×2, and 3×3 stride 2 with padding, overlapping and
    /// with a clipped last window), a cheap first convolution, inner products named as
    /// ``algorithm1ThenMeasurements(_:early:late:lateAfter:)`` expects. Input `(3, 30, 30)`.
    static func network() -> Network {
        var b = NetworkBuilder(name: "pooled", shape: [3, 30, 30])
        b.conv("conv1", 16, kernel: 3, pad: 1); b.relu("relu1")
        b.conv("conv1b", 16, kernel: 3, pad: 1); b.relu("relu1b")
        b.maxPool("pool1", kernel: 2, stride: 2)
        b.conv("conv2", 24, kernel: 3, pad: 1); b.relu("relu2")
        b.maxPool("pool2", kernel: 3, stride: 2, pad: 1)
        b.innerProduct("fc4", 48); b.relu("relu4")
        b.innerProduct("fc5", 10)
        return b.network
    }

    static func collector(threads: Int, pooled: Bool, recompute: Bool) throws -> ChunkCollector {
        try MagicInitCollectorTests.collector(network(), threads: threads) {
            $0.cachesAfterPooling = pooled
            $0.recomputesFirstLayer = recompute
        }
    }

    @Test func test_plan_poolsAfterBothReLUsAndRecomputesTheFirstConvolution() throws {
        let collector = try PooledCacheTests.collector(threads: 1, pooled: true, recompute: true)
        let graph = collector.graph
        let planned = collector.plan.pooled.keys.sorted().map { graph.nodes[$0].name }
        #expect(planned == ["conv1b", "conv2"])
        #expect(collector.plan.recomputedFromInput.map { graph.nodes[$0].name } == "conv1")
        // Separate ReLU buffers: nothing to pool before caching.
        let separate = try MagicInitCollectorTests.collector(PooledCacheTests.network(), threads: 1) { $0.inPlaceActivations = false }
        #expect(separate.plan.pooled.isEmpty)
        // VGG-16: the last convolution before each of the five poolings; conv1_1 recomputed.
        let vgg = try MagicInitCollectorTests.collector(BuiltinNetworks.network(named: "vgg16")!, chunkSize: 1, threads: 1)
        #expect(vgg.plan.pooled.keys.sorted().map { vgg.graph.nodes[$0].name } == ["conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"])
        #expect(vgg.plan.recomputedFromInput.map { vgg.graph.nodes[$0].name } == "conv1_1")
    }

    /// The pooled cache against the full one: Algorithm 1 and two measurements (the first
    /// from the saved forward values, so through the rebuilt ReLU bits and the argmax of the
    /// raw outputs) bitwise equal, on one engine and two, with chunks adopted mid-run. (Only
    /// a window whose two largest values round to one after the map, rare in real data, sends
    /// its gradient to another, equally valid argmax; these photos have none.)
    @Test(arguments: [1, 2])
    func test_pooledCache_sameBitsAsTheFullCache(threads: Int) throws {
        let chunks = LocalStatisticsSource.chunks(of: try FixturePhotos.load(size: 30), size: 4)
        let half = chunks.count / 2
        let pooled = try PooledCacheTests.collector(threads: threads, pooled: true, recompute: false)
        let full = try PooledCacheTests.collector(threads: threads, pooled: false, recompute: false)
        let a = try algorithm1ThenMeasurements(pooled, early: Array(chunks[..<half]), late: Array(chunks[half...]), lateAfter: 2)
        let b = try algorithm1ThenMeasurements(full, early: Array(chunks[..<half]), late: Array(chunks[half...]), lateAfter: 2)
        expectSameBits(a, b)
    }

    /// The cache after conv1b's step: pooled it is a quarter of the full one.
    @Test func test_pooledCache_holdsAQuarter() throws {
        let chunks = LocalStatisticsSource.chunks(of: try FixturePhotos.load(size: 30), size: 4)
        var bytes: [Int] = []
        for pooled in [true, false] {
            let collector = try PooledCacheTests.collector(threads: 1, pooled: pooled, recompute: true)
            try collector.add(chunks)
            for layer in ["conv1", "conv1b"] {
                try collector.apply([.gaussian(layer: layer, seed: 5, std: 1)])
                _ = try collector.outputMoments(layer: layer)
                try collector.apply([.normalize(layer: layer, scale: [Double](repeating: 0.5, count: 16), shift: [Double](repeating: 0.1, count: 16))])
            }
            let saved = collector.cachedBytes
            bytes.append(saved)
        }
        // 2 chunks × 4 images × 16 channels × 15 × 15 floats pooled, 30 × 30 full; the saved
        // forward values (bits and workspaces) come on top of both.
        let blob = 2 * 4 * 16 * 4
        #expect(bytes[1] - bytes[0] >= blob * (30 * 30 - 15 * 15) - blob * 30 * 30 / 16, "pooled \(bytes[0]) B, full \(bytes[1]) B")
    }

    /// Chunks adopted mid-run are replayed: with the first layer recomputed and the pooled
    /// cache, every statistic of an adopted chunk is bitwise what the same chunk gives when
    /// held from the start, under the same directives (the replay must run the recomputed
    /// layer with its normalised weights, not the Gaussian draw of its own step).
    @Test func test_adoptedChunks_sameBitsAsHeldFromTheStart() throws {
        let chunks = LocalStatisticsSource.chunks(of: try FixturePhotos.load(size: 30), size: 4)
        let held = try PooledCacheTests.collector(threads: 1, pooled: true, recompute: true)
        let adopting = try PooledCacheTests.collector(threads: 1, pooled: true, recompute: true)
        try held.add(chunks)
        try adopting.add([chunks[0]])
        let affine = held.graph.nodes.filter { $0.kind.isAffine }
        var compared = 0
        for (k, node) in affine.enumerated() {
            if k == 2 { try adopting.add([chunks[1]]) }
            for collector in [held, adopting] { try collector.apply([.gaussian(layer: node.name, seed: 11, std: 1)]) }
            let all = try held.outputMoments(layer: node.name)
            let some = try adopting.outputMoments(layer: node.name)
            for part in some {
                let same = all.first { $0.chunk == part.chunk }!.moments
                #expect(same.mean.map(\.bitPattern) == part.moments.mean.map(\.bitPattern) && same.m2.map(\.bitPattern) == part.moments.m2.map(\.bitPattern),
                        "\(node.name), chunk \(part.chunk)")
                compared += 1
            }
            var merged = all[0].moments
            for part in all.dropFirst() { merged.merge(part.moments) }
            let std = merged.standardDeviation
            let map = WeightDirective.normalize(layer: node.name, scale: std.map { 1 / $0 }, shift: std.indices.map { 0.1 - merged.mean[$0] / std[$0] })
            for collector in [held, adopting] { try collector.apply([map]) }
        }
        #expect(compared == 2 + 2 * (affine.count - 2))
        let a = try held.measure(step: 0, seed: 3, weightGradients: false)
        let b = try adopting.measure(step: 0, seed: 3, weightGradients: false)
        #expect(a.count == 2 && b.count == 2)
        for (x, y) in zip(a, b) {
            for (p, q) in zip(x.measurement.layers, y.measurement.layers) {
                #expect(p.outputGradientSquares.sumOfSquares.map(\.bitPattern) == q.outputGradientSquares.sumOfSquares.map(\.bitPattern)
                        && p.inputSquares.sumOfSquares.map(\.bitPattern) == q.inputSquares.sumOfSquares.map(\.bitPattern), "\(p.layer)")
            }
        }
    }

    /// The first convolution run again from the images instead of cached: the same bits on
    /// one engine and two and with chunks adopted mid-run, and the statistics within float
    /// rounding of the full cache (running the normalised layer rounds differently from
    /// mapping its cached output).
    @Test func test_recomputedFirstLayer_deterministicAndCloseToTheFullCache() throws {
        let chunks = LocalStatisticsSource.chunks(of: try FixturePhotos.load(size: 30), size: 4)
        let half = chunks.count / 2
        func run(threads: Int, recompute: Bool, late: Bool) throws -> (bits: [UInt64], weights: ParameterSet) {
            let collector = try PooledCacheTests.collector(threads: threads, pooled: true, recompute: recompute)
            return try algorithm1ThenMeasurements(collector, early: late ? Array(chunks[..<half]) : chunks,
                                                  late: late ? Array(chunks[half...]) : [], lateAfter: 2)
        }
        let one = try run(threads: 1, recompute: true, late: false)
        expectSameBits(one, try run(threads: 2, recompute: true, late: false))
        expectSameBits(try run(threads: 1, recompute: true, late: true), try run(threads: 2, recompute: true, late: true))
        let cached = try run(threads: 1, recompute: false, late: false)
        #expect(one.bits.count == cached.bits.count)
        #expect(one.bits != cached.bits, "the recomputed layer should round differently somewhere")
        let worst = zip(one.bits, cached.bits).map { a, b -> Double in
            let x = Double(bitPattern: a), y = Double(bitPattern: b)
            return abs(x - y) / max(abs(x), abs(y), 1e-3)
        }.max() ?? 0
        #expect(worst < 1e-3, "largest relative difference \(worst)")
        for (key, value) in cached.weights {
            let other = one.weights[key]!.data
            let difference = zip(value.data, other).map { abs($0 - $1) / max(abs($0), 1e-3) }.max() ?? 0
            #expect(difference < 1e-3, "\(key): relative difference \(difference)")
        }
    }
}
