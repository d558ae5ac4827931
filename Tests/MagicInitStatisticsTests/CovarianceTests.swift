import MagicInitCore
import MagicInitStatistics
import Testing

@Suite struct CovarianceTests {
    /// Independent reference: Float64 mean, then `Σ (x − mean)(x − mean)ᵀ` entry by entry.
    static func naive(_ values: [Float], dimension d: Int) -> (mean: [Double], scatter: [Double]) {
        let rows = values.count / d
        let mean = (0..<d).map { j in (0..<rows).reduce(0.0) { $0 + Double(values[$1 * d + j]) } / Double(rows) }
        var scatter = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in 0..<d {
                scatter[i * d + j] = (0..<rows).reduce(0.0) {
                    $0 + (Double(values[$1 * d + i]) - mean[i]) * (Double(values[$1 * d + j]) - mean[j])
                }
            }
        }
        return (mean, scatter)
    }

    /// Correlated rows: `x = offset + A·g` with g standard normal, so the scatter has
    /// off-diagonal structure and non-zero means. Shape `(rows, D)`.
    static func correlatedRows(_ rows: Int, dimension d: Int, purpose: String) -> [Float] {
        let g = Philox(seed: 3, stream: Philox.stream(purpose, rows, d)).gaussians(count: rows * d)
        var out = [Float](repeating: 0, count: rows * d)
        for r in 0..<rows {
            for i in 0..<d {
                var x = 2.0 + Double(i)
                for k in 0...i { x += Double(g[r * d + k]) / Double(1 + i - k) }
                out[r * d + i] = Float(x)
            }
        }
        return out
    }

    /// `|a − e| / max(|e|, 1)` — scatter entries near zero are compared absolutely.
    static let tolerance = 1e-10

    @Test(arguments: [(200, 7), (33, 1), (100, 40), (5, 3)])
    func test_accumulateRows_matchesNaiveTwoPass(rows: Int, dimension: Int) {
        let values = Self.correlatedRows(rows, dimension: dimension, purpose: "rows")
        let result = covariance(values, dimension: dimension)
        let expected = Self.naive(values, dimension: dimension)
        #expect(result.count == Int64(rows) && result.dimension == dimension)
        let meanDiff = expectRelativelyClose(result.mean, expected.mean, tolerance: Self.tolerance, floor: 1, "mean")
        let scatterDiff = expectRelativelyClose(result.scatter, expected.scatter, tolerance: Self.tolerance, floor: 1, "scatter")
        expectRelativelyClose(result.covariance, expected.scatter.map { $0 / Double(rows) },
                              tolerance: Self.tolerance, floor: 1, "covariance")
        print("[Covariance] \(rows)×\(dimension): largest difference mean \(meanDiff), scatter \(scatterDiff)")
    }

    @Test func test_merge_anySplit_matchesNaiveTwoPass_andStaysSymmetric() {
        let rows = 257, d = 9
        let values = Self.correlatedRows(rows, dimension: d, purpose: "split")
        let expected = Self.naive(values, dimension: d)
        let sequential = covariance(values, dimension: d)
        var largest = 0.0
        for trial in 0..<25 {
            let parts = 1 + trial % 30
            let cuts = randomSplit(rows, parts: parts, trial: 200 + trial)
            var merged = Covariance(dimension: d)
            for p in 0..<parts {
                Array(values[cuts[p] * d..<cuts[p + 1] * d]).withUnsafeBufferPointer { merged.accumulate(rows: $0) }
            }
            #expect(merged.count == Int64(rows))
            let references: [(mean: [Double], scatter: [Double])] = [expected, (sequential.mean, sequential.scatter)]
            for reference in references {
                largest = max(largest, expectRelativelyClose(merged.mean, reference.mean, tolerance: Self.tolerance,
                                                             floor: 1, "mean, parts at \(cuts)"))
                largest = max(largest, expectRelativelyClose(merged.scatter, reference.scatter, tolerance: Self.tolerance,
                                                             floor: 1, "scatter, parts at \(cuts)"))
            }
            var asymmetric: [(Int, Int)] = []
            for i in 0..<d {
                for j in 0..<i where merged.scatter[i * d + j] != merged.scatter[j * d + i] { asymmetric.append((i, j)) }
            }
            #expect(asymmetric.isEmpty, "scatter not exactly symmetric at \(asymmetric)")
        }
        print("[Covariance] any split 257×9: largest difference \(largest)")
    }

    @Test func test_merge_fixedOrder_isBitwiseDeterministic_andEmptyIsIdentity() {
        let rows = 90, d = 5
        let cuts = randomSplit(rows, parts: 7, trial: 1)
        func mergeFromScratch() -> Covariance {
            let values = Self.correlatedRows(rows, dimension: d, purpose: "deterministic")
            return (0..<7).reduce(Covariance(dimension: d)) { merged, p in
                merged.merged(with: covariance(Array(values[cuts[p] * d..<cuts[p + 1] * d]), dimension: d))
            }
        }
        let a = mergeFromScratch(), b = mergeFromScratch()
        #expect(bits(a.mean) == bits(b.mean) && bits(a.scatter) == bits(b.scatter) && a.count == b.count)
        #expect(a.merged(with: Covariance(dimension: d)) == a)
        #expect(Covariance(dimension: d).merged(with: a) == a)
        #expect(covariance([], dimension: d) == Covariance(dimension: d))
    }
}
