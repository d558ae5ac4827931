import MagicInitCore
import Testing

/// `count` values `((j·multiplier) mod modulus − offset) / divisor`: small, irregular, and
/// exact in binary floating point, so hand or numpy results can be compared tightly. The
/// same formula generated the numpy expectations pasted into the tests.
func pattern(_ count: Int, multiplier: Int = 7, modulus: Int = 11, offset: Int = 5, divisor: Double = 1) -> [Double] {
    (0..<count).map { Double(($0 * multiplier) % modulus - offset) / divisor }
}

/// Expects `actual` and `expected` to have equal length and to differ by at most
/// `tolerance` anywhere, reporting the largest difference and where it is.
func expectClose(_ actual: [Double], _ expected: [Double], tolerance: Double, _ what: String = "values",
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, "\(what): \(actual.count) values, expected \(expected.count)",
            sourceLocation: sourceLocation)
    var largest = 0.0, at = -1
    for (j, (a, e)) in zip(actual, expected).enumerated() where !(abs(a - e) <= largest) {
        largest = abs(a - e)
        at = j
    }
    #expect(largest <= tolerance,
            "\(what): largest difference \(largest) at \(at) (got \(at >= 0 ? actual[at] : .nan), expected \(at >= 0 ? expected[at] : .nan)) exceeds \(tolerance)",
            sourceLocation: sourceLocation)
}

/// `Σ_j a[j]·b[j]`.
func dot(_ a: [Double], _ b: [Double]) -> Double {
    zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
}

/// A one-input network reading `data` of per-image shape `shape`, compiled for `batch`.
func graph(input shape: [Int], batch: Int = 1, _ layers: [Layer]) throws -> Graph {
    try Graph(Network(name: "test", inputs: [.init(name: "data", shape: shape)], layers: layers), batchSize: batch)
}
