import MagicInitCore
import MagicInitStatistics
import Testing

@Suite struct ChannelMomentsTests {
    /// Shapes that exercise SIMD tails (H·W not a multiple of 8), several two-pass segments
    /// per channel (N·H·W > 2^14), a run longer than a segment, `(N, C)` row segments, and a
    /// rank-3 blob.
    static let shapes: [[Int]] = [[3, 4, 5, 7], [100, 3, 16, 16], [2, 2, 150, 151], [5000, 7], [9, 5, 13], [1, 1, 1, 1]]

    @Test(arguments: shapes)
    func test_accumulate_matchesNaivePerChannelTwoPass(shape: [Int]) {
        let values = gaussianBlob(shape, purpose: "accumulate", index: shape.reduce(1, *))
        let result = moments(values, shape: shape)
        let expected = naiveChannelMoments(values, shape: shape)
        #expect(result.count == Int64(expected.count))
        #expect(result.channelCount == shape[1])
        let meanDiff = expectRelativelyClose(result.mean, expected.mean, tolerance: 1e-12, "mean \(shape)")
        let varianceDiff = expectRelativelyClose(result.variance, expected.variance, tolerance: 1e-12, "variance \(shape)")
        print("[ChannelMoments] accumulate \(shape): largest relative difference mean \(meanDiff), variance \(varianceDiff)")
    }

    @Test func test_accumulateTensor_equalsAccumulateBuffer() {
        let shape = [4, 3, 6, 5]
        let values = gaussianBlob(shape, purpose: "tensor")
        #expect(ChannelMoments(accumulating: Tensor(shape: shape, data: values)) == moments(values, shape: shape))
    }

    @Test func test_variance_isPopulationVariance() {
        // Channel 0 holds 1, 2, 3, 4 (two images × two positions): mean 2.5, Σ(x − 2.5)² = 5,
        // population variance 5/4 (not the sample variance 5/3).
        let values: [Float] = [1, 2, 10, 10, 3, 4, 10, 10]
        let result = moments(values, shape: [2, 2, 1, 2])
        #expect(result.count == 4)
        #expect(result.mean == [2.5, 10])
        #expect(result.m2 == [5, 0])
        #expect(result.variance == [1.25, 0])
        #expect(result.standardDeviation == [(1.25 as Double).squareRoot(), 0])
    }

    @Test(arguments: [[37, 5, 7, 7], [301, 6]])
    func test_merge_anySplit_matchesSequentialAndTwoPass(shape: [Int]) {
        let values = gaussianBlob(shape, purpose: "split", index: shape.count)
        let expected = naiveChannelMoments(values, shape: shape)
        let sequential = moments(values, shape: shape)
        var largestMean = 0.0, largestVariance = 0.0
        for trial in 0..<40 {
            let parts = 1 + trial % 25   // up to 25 parts, many of them empty for small N
            let cuts = randomSplit(shape[0], parts: parts, trial: trial)
            var merged = ChannelMoments(channelCount: shape[1])
            for p in 0..<parts {
                let part = images(values, shape: shape, from: cuts[p], to: cuts[p + 1])
                merged.merge(moments(part.values, shape: part.shape))
            }
            #expect(merged.count == sequential.count)
            for reference in [expected.mean, sequential.mean] {
                largestMean = max(largestMean, expectRelativelyClose(merged.mean, reference, tolerance: 1e-12,
                                                                     "mean, \(parts) parts at \(cuts)"))
            }
            for reference in [expected.variance, sequential.variance] {
                largestVariance = max(largestVariance, expectRelativelyClose(merged.variance, reference, tolerance: 1e-12,
                                                                             "variance, \(parts) parts at \(cuts)"))
            }
        }
        print("[ChannelMoments] any split \(shape): largest relative difference mean \(largestMean), variance \(largestVariance)")
    }

    @Test func test_merge_anyPermutationOfParts_matchesChunkOrderWithinRounding() {
        let shape = [64, 4, 6, 6]
        let values = gaussianBlob(shape, purpose: "permutation")
        let cuts = randomSplit(shape[0], parts: 16, trial: 99)
        let parts = (0..<16).map { p in
            let part = images(values, shape: shape, from: cuts[p], to: cuts[p + 1])
            return moments(part.values, shape: part.shape)
        }
        let inOrder = parts.reduce(ChannelMoments(channelCount: 4)) { $0.merged(with: $1) }
        var largest = 0.0
        for trial in 0..<30 {
            let order = randomPermutation(parts.count, trial: trial)
            let shuffled = order.map { parts[$0] }.reduce(ChannelMoments(channelCount: 4)) { $0.merged(with: $1) }
            #expect(shuffled.count == inOrder.count)
            largest = max(largest, expectRelativelyClose(shuffled.mean, inOrder.mean, tolerance: 1e-12, "mean, order \(order)"))
            largest = max(largest, expectRelativelyClose(shuffled.variance, inOrder.variance, tolerance: 1e-12, "variance, order \(order)"))
        }
        print("[ChannelMoments] permuted merge: largest relative difference \(largest)")
    }

    @Test func test_merge_fixedOrder_isBitwiseDeterministic() {
        let shape = [50, 3, 9, 9]
        let cuts = randomSplit(shape[0], parts: 12, trial: 5)
        func mergeFromScratch() -> ChannelMoments {
            // Recompute everything, as a second worker or a re-run would.
            let values = gaussianBlob(shape, purpose: "deterministic")
            var merged = ChannelMoments(channelCount: shape[1])
            for p in 0..<12 {
                let part = images(values, shape: shape, from: cuts[p], to: cuts[p + 1])
                part.values.withUnsafeBufferPointer { merged.accumulate($0, shape: part.shape) }
            }
            return merged
        }
        let first = mergeFromScratch(), second = mergeFromScratch()
        #expect(first.count == second.count)
        #expect(bits(first.mean) == bits(second.mean))
        #expect(bits(first.m2) == bits(second.m2))
    }

    @Test func test_merge_emptyPart_isExactIdentity() {
        let shape = [7, 3, 4, 4]
        let some = moments(gaussianBlob(shape, purpose: "identity"), shape: shape)
        let empty = ChannelMoments(channelCount: 3)
        let emptyFromBlob = moments([], shape: [0, 3, 4, 4])
        #expect(emptyFromBlob == empty)
        for result in [some.merged(with: empty), empty.merged(with: some), some.merged(with: emptyFromBlob)] {
            #expect(result.count == some.count)
            #expect(bits(result.mean) == bits(some.mean))
            #expect(bits(result.m2) == bits(some.m2))
        }
        #expect(empty.merged(with: empty) == empty)
        #expect(empty.variance == [0, 0, 0])
        #expect(empty.standardDeviation == [0, 0, 0])
    }

    @Test func test_offset1e6_spread0_1_keepsVarianceOfTheFloat32Values() {
        // float32 near 1e6 has a spacing of 1/16, so 1e6 + 0.1·z is stored coarsely: the exact
        // expectation is the variance of the float32 values themselves, in Float64 two-pass.
        // (In Float32, E[x²] − E[x]² of such data is pure rounding noise: x² ≈ 1e12 has a
        // spacing of 65536.)
        let shape = [40, 3, 12, 12]
        let values = gaussianBlob(shape, purpose: "offset", offset: { 1e6 + 10 * Double($0) }, spread: { _ in 0.1 })
        let expected = naiveChannelMoments(values, shape: shape)
        #expect(expected.variance.allSatisfy { $0 > 0.005 && $0 < 0.02 }, "variance of stored values \(expected.variance)")
        let whole = moments(values, shape: shape)
        let cuts = randomSplit(shape[0], parts: 9, trial: 3)
        var merged = ChannelMoments(channelCount: 3)
        for p in 0..<9 {
            let part = images(values, shape: shape, from: cuts[p], to: cuts[p + 1])
            merged.merge(moments(part.values, shape: part.shape))
        }
        let wholeDiff = expectRelativelyClose(whole.variance, expected.variance, tolerance: 1e-6, "variance, one pass")
        let mergedDiff = expectRelativelyClose(merged.variance, expected.variance, tolerance: 1e-6, "variance, 9 parts")
        expectRelativelyClose(merged.mean, expected.mean, tolerance: 1e-12, "mean, 9 parts")
        print("[ChannelMoments] offset 1e6, spread 0.1: relative variance error one pass \(wholeDiff), merged \(mergedDiff)")
    }

    @Test func test_affine_matchesMomentsOfTransformedData() {
        let shape = [11, 4, 5, 5]
        let values = gaussianBlob(shape, purpose: "affine")
        let scale = [0.5, -2, 1e-3, 3.25], shift = [0.1, -7, 100, 0]
        let result = moments(values, shape: shape).affine(scale: scale, shift: shift)
        // Reference: the transformed values in Float64 (not rounded to float32), two-pass.
        let perChannel = 25
        var transformedMean = [Double](repeating: 0, count: 4), transformedVariance = [Double](repeating: 0, count: 4)
        for c in 0..<4 {
            var xs: [Double] = []
            for n in 0..<shape[0] {
                for k in 0..<perChannel { xs.append(scale[c] * Double(values[(n * 4 + c) * perChannel + k]) + shift[c]) }
            }
            let mean = xs.reduce(0, +) / Double(xs.count)
            transformedMean[c] = mean
            transformedVariance[c] = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(xs.count)
        }
        let meanDiff = expectRelativelyClose(result.mean, transformedMean, tolerance: 1e-12, "affine mean")
        let varianceDiff = expectRelativelyClose(result.variance, transformedVariance, tolerance: 1e-12, "affine variance")
        #expect(result.count == Int64(shape[0] * perChannel))
        #expect(ChannelMoments(channelCount: 4).affine(scale: scale, shift: shift) == ChannelMoments(channelCount: 4))
        print("[ChannelMoments] affine: largest relative difference mean \(meanDiff), variance \(varianceDiff)")
    }
}
