import MagicInitCore
import MagicInitStatistics
import Testing

@Suite struct SquareSumsTests {
    /// Independent reference: `Σ x²` per channel in index order, Float64.
    static func naiveSquares(_ values: [Float], shape: [Int]) -> [Double] {
        let channels = shape[1], perChannel = shape.dropFirst(2).reduce(1, *)
        var sums = [Double](repeating: 0, count: channels)
        for (i, x) in values.enumerated() { sums[(i / perChannel) % channels] += Double(x) * Double(x) }
        return sums
    }

    /// Independent reference: `Σ_n ‖y_n‖²` with each image's norm summed in index order.
    static func naiveSquaredNorms(_ values: [Float], images: Int) -> Double {
        let perImage = images == 0 ? 0 : values.count / images
        return (0..<images).reduce(0.0) { total, n in
            total + values[n * perImage..<(n + 1) * perImage].reduce(0.0) { $0 + Double($1) * Double($1) }
        }
    }

    @Test(arguments: [[3, 4, 5, 7], [20, 3, 16, 16], [500, 9], [6, 2, 11]])
    func test_squareSums_matchNaivePerChannelSums(shape: [Int]) {
        let values = gaussianBlob(shape, purpose: "squares", index: shape.reduce(1, *))
        let result = squareSums(values, shape: shape)
        #expect(result.count == Int64(shape[0] * shape.dropFirst(2).reduce(1, *)))
        let diff = expectRelativelyClose(result.sumOfSquares, Self.naiveSquares(values, shape: shape),
                                         tolerance: 1e-12, "Σx² \(shape)")
        expectRelativelyClose(result.meanSquare, Self.naiveSquares(values, shape: shape).map { $0 / Double(result.count) },
                              tolerance: 1e-12, "E[x²] \(shape)")
        print("[SquareSums] accumulate \(shape): largest relative difference \(diff)")
    }

    @Test(arguments: [[37, 5, 6, 6], [301, 6]])
    func test_squareSums_merge_anySplit_matchesSequential(shape: [Int]) {
        let values = gaussianBlob(shape, purpose: "squares-split", index: shape.count)
        let sequential = squareSums(values, shape: shape)
        let naive = Self.naiveSquares(values, shape: shape)
        var largest = 0.0
        for trial in 0..<30 {
            let parts = 1 + trial % 20
            let cuts = randomSplit(shape[0], parts: parts, trial: trial)
            var merged = SquareSums(channelCount: shape[1])
            for p in 0..<parts {
                let part = images(values, shape: shape, from: cuts[p], to: cuts[p + 1])
                merged.merge(squareSums(part.values, shape: part.shape))
            }
            #expect(merged.count == sequential.count)
            largest = max(largest, expectRelativelyClose(merged.sumOfSquares, sequential.sumOfSquares, tolerance: 1e-12,
                                                         "Σx² vs one pass, parts at \(cuts)"))
            largest = max(largest, expectRelativelyClose(merged.sumOfSquares, naive, tolerance: 1e-12,
                                                         "Σx² vs naive, parts at \(cuts)"))
        }
        print("[SquareSums] any split \(shape): largest relative difference \(largest)")
    }

    @Test func test_squaredNormSum_matchesNaivePerImageNorms_andMergesAnySplit() {
        let shape = [45, 3, 7, 5]
        let values = gaussianBlob(shape, purpose: "norms")
        let naive = Self.naiveSquaredNorms(values, images: shape[0])
        let whole = squaredNorms(values, shape: shape)
        #expect(whole.imageCount == 45)
        var largest = largestRelativeDifference([whole.sum], [naive]).value
        #expect(largest <= 1e-12, "one pass Σ‖y‖² \(whole.sum) vs naive \(naive)")
        #expect(abs(whole.meanSquaredNorm - naive / 45) <= 1e-12 * naive / 45)
        for trial in 0..<30 {
            let parts = 1 + trial % 20
            let cuts = randomSplit(shape[0], parts: parts, trial: 100 + trial)
            var merged = SquaredNormSum()
            for p in 0..<parts {
                let part = images(values, shape: shape, from: cuts[p], to: cuts[p + 1])
                merged.merge(squaredNorms(part.values, shape: part.shape))
            }
            #expect(merged.imageCount == 45)
            let diff = largestRelativeDifference([merged.sum], [naive]).value
            #expect(diff <= 1e-12, "merged Σ‖y‖² \(merged.sum) vs naive \(naive), parts at \(cuts)")
            largest = max(largest, diff)
        }
        // Any rank ≥ 1 and a tensor give the same per-image norms.
        #expect(SquaredNormSum(accumulating: Tensor(shape: [45, 105], data: values)) == whole)
        print("[SquaredNormSum] any split: largest relative difference \(largest)")
    }

    @Test func test_merge_fixedOrder_isBitwiseDeterministic_andEmptyIsIdentity() {
        let shape = [30, 4, 5, 5]
        let cuts = randomSplit(shape[0], parts: 10, trial: 8)
        func mergeFromScratch() -> (SquareSums, SquaredNormSum) {
            let values = gaussianBlob(shape, purpose: "squares-deterministic")
            var sums = SquareSums(channelCount: 4), norms = SquaredNormSum()
            for p in 0..<10 {
                let part = images(values, shape: shape, from: cuts[p], to: cuts[p + 1])
                part.values.withUnsafeBufferPointer {
                    sums.accumulate($0, shape: part.shape)
                    norms.accumulate($0, shape: part.shape)
                }
            }
            return (sums, norms)
        }
        let (sumsA, normsA) = mergeFromScratch(), (sumsB, normsB) = mergeFromScratch()
        #expect(bits(sumsA.sumOfSquares) == bits(sumsB.sumOfSquares) && sumsA.count == sumsB.count)
        #expect(normsA.sum.bitPattern == normsB.sum.bitPattern && normsA.imageCount == normsB.imageCount)
        #expect(sumsA.merged(with: SquareSums(channelCount: 4)) == sumsA)
        #expect(SquareSums(channelCount: 4).merged(with: sumsA) == sumsA)
        #expect(normsA.merged(with: SquaredNormSum()) == normsA)
        #expect(SquaredNormSum().merged(with: normsA) == normsA)
        #expect(SquareSums(channelCount: 2).meanSquare == [0, 0] && SquaredNormSum().meanSquaredNorm == 0)
    }
}
