import MagicInitCore
import MagicInitStatistics
import Testing

/// A float32 blob of shape `shape` (`(N, C, …)`) whose channel c holds
/// `offset[c] + spread[c] · g`, with `g` standard normal from Philox stream `(purpose, index)`,
/// `offset[c] = 0.5 + c` and `spread[c] = 1 + 0.25·c` unless given.
func gaussianBlob(_ shape: [Int], purpose: String, index: Int = 0,
                  offset: ((Int) -> Double)? = nil, spread: ((Int) -> Double)? = nil) -> [Float] {
    let draws = Philox(seed: 2016, stream: Philox.stream(purpose, index)).gaussians(count: shape.reduce(1, *))
    let channels = shape.count > 1 ? shape[1] : 1
    let perChannel = shape.dropFirst(2).reduce(1, *)
    return draws.enumerated().map { i, g in
        let c = (i / perChannel) % channels
        return Float((offset?(c) ?? (0.5 + Double(c))) + (spread?(c) ?? (1 + 0.25 * Double(c))) * Double(g))
    }
}

/// Independent per-channel reference: plain Float64 sum / count, then `Σ (x − mean)² / n`,
/// visiting values in index order. Shape `(N, C, …)`.
func naiveChannelMoments(_ values: [Float], shape: [Int]) -> (count: Int, mean: [Double], variance: [Double]) {
    let channels = shape[1]
    let perChannel = shape.dropFirst(2).reduce(1, *)
    var sums = [Double](repeating: 0, count: channels), counts = [Int](repeating: 0, count: channels)
    for (i, x) in values.enumerated() {
        let c = (i / perChannel) % channels
        sums[c] += Double(x)
        counts[c] += 1
    }
    let means = (0..<channels).map { sums[$0] / Double(counts[$0]) }
    var squares = [Double](repeating: 0, count: channels)
    for (i, x) in values.enumerated() {
        let c = (i / perChannel) % channels
        squares[c] += (Double(x) - means[c]) * (Double(x) - means[c])
    }
    return (counts.first ?? 0, means, (0..<channels).map { squares[$0] / Double(counts[$0]) })
}

/// `|actual − expected| / max(|expected|, floor)` at its largest, and where.
func largestRelativeDifference(_ actual: [Double], _ expected: [Double], floor: Double = 0) -> (value: Double, index: Int) {
    precondition(actual.count == expected.count, "\(actual.count) values vs \(expected.count)")
    var largest = 0.0, at = -1
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let difference = a == e ? 0 : abs(a - e) / max(abs(e), floor)
        if !(difference <= largest) {
            largest = difference
            at = i
        }
    }
    return (largest, at)
}

/// Expects the relative difference (see ``largestRelativeDifference``) to stay within
/// `tolerance`, reporting the largest one; returns it so tests can print a summary.
@discardableResult
func expectRelativelyClose(_ actual: [Double], _ expected: [Double], tolerance: Double, floor: Double = 0,
                           _ what: String, sourceLocation: SourceLocation = #_sourceLocation) -> Double {
    #expect(actual.count == expected.count, "\(what): \(actual.count) values, expected \(expected.count)",
            sourceLocation: sourceLocation)
    let (largest, at) = largestRelativeDifference(actual, expected, floor: floor)
    #expect(largest <= tolerance,
            "\(what): largest relative difference \(largest) at \(at) (got \(at >= 0 ? actual[at] : .nan), expected \(at >= 0 ? expected[at] : .nan)) exceeds \(tolerance)",
            sourceLocation: sourceLocation)
    return largest
}

/// Cut points `0 = b_0 ≤ b_1 ≤ … ≤ b_parts = total` splitting `0..<total` into `parts`
/// contiguous parts at Philox-random places; repeated cut points make empty parts, and one is
/// always forced (the first interior cut is duplicated) when `parts ≥ 3`.
func randomSplit(_ total: Int, parts: Int, trial: Int) -> [Int] {
    let draws = Philox(seed: 7, stream: Philox.stream("split", trial)).uniforms(count: parts - 1)
    var cuts = draws.map { min(total, Int(Double($0) * Double(total + 1))) }.sorted()
    if parts >= 3 { cuts[1] = cuts[0] }
    return [0] + cuts + [total]
}

/// A Philox-random permutation of `0..<count` (Fisher–Yates).
func randomPermutation(_ count: Int, trial: Int) -> [Int] {
    var order = Array(0..<count)
    let draws = Philox(seed: 11, stream: Philox.stream("permutation", trial)).uniforms(count: count)
    for i in stride(from: count - 1, to: 0, by: -1) {
        let j = min(i, Int(Double(draws[i]) * Double(i + 1)))
        order.swapAt(i, j)
    }
    return order
}

/// The images `[from, to)` of an `(N, …)` blob, with their shape.
func images(_ values: [Float], shape: [Int], from: Int, to: Int) -> (values: [Float], shape: [Int]) {
    let perImage = shape.dropFirst().reduce(1, *)
    return (Array(values[from * perImage..<to * perImage]), [to - from] + shape.dropFirst())
}

/// Bit patterns, for bitwise comparisons.
func bits(_ values: [Double]) -> [UInt64] { values.map(\.bitPattern) }

/// Convenience wrappers over the buffer-pointer initialisers.
func moments(_ values: [Float], shape: [Int]) -> ChannelMoments {
    values.withUnsafeBufferPointer { ChannelMoments(accumulating: $0, shape: shape) }
}

func squareSums(_ values: [Float], shape: [Int]) -> SquareSums {
    values.withUnsafeBufferPointer { SquareSums(accumulating: $0, shape: shape) }
}

func squaredNorms(_ values: [Float], shape: [Int]) -> SquaredNormSum {
    values.withUnsafeBufferPointer { SquaredNormSum(accumulating: $0, shape: shape) }
}

func covariance(_ values: [Float], dimension: Int) -> Covariance {
    values.withUnsafeBufferPointer { Covariance(accumulatingRows: $0, dimension: dimension) }
}
