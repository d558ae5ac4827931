import Foundation
import MagicInitCore

// Element-wise activations, inference-mode dropout, and softmax.

extension Reference {
    /// Caffe `ReLU`: `y = max(x, 0) + negativeSlope · min(x, 0)` (leaky when the slope is
    /// non-zero). Any shape; `y` has the shape of `x`.
    public static func relu(_ x: [Double], negativeSlope: Double = 0) -> [Double] {
        x.map { max($0, 0) + negativeSlope * min($0, 0) }
    }

    /// Caffe `Sigmoid`: `y = 1 / (1 + e^−x)`. Any shape.
    public static func sigmoid(_ x: [Double]) -> [Double] {
        x.map { 1 / (1 + exp(-$0)) }
    }

    /// Caffe `TanH`: `y = tanh(x)`. Any shape.
    public static func tanh(_ x: [Double]) -> [Double] {
        x.map { Foundation.tanh($0) }
    }

    /// Caffe `Dropout` at inference (`TEST` phase): the identity. Caffe scales by
    /// `1/(1 − ratio)` while training instead, so no test-time scaling is needed. Any shape.
    public static func dropout(_ x: [Double]) -> [Double] { x }

    /// Caffe `Softmax` along `axis` (negative counts from the end), numerically stable:
    ///
    ///     y[…, j, …] = e^(x[…, j, …] − m) / Σ_j' e^(x[…, j', …] − m),  m = max_j x[…, j, …]
    ///
    /// Every slice along `axis` sums to 1.
    /// - Parameters:
    ///   - x: any shape `(A…, D, B…)` with `D` the extent of `axis`.
    ///   - shape: the shape of `x`.
    /// - Returns: the shape of `x`.
    /// - Complexity: `3·count` exponentials, additions and divisions.
    public static func softmax(_ x: [Double], shape: [Int], axis: Int) -> [Double] {
        let axis = axis < 0 ? axis + shape.count : axis
        let outer = elementCount(Array(shape[..<axis]))
        let extent = shape[axis]
        let inner = elementCount(Array(shape[(axis + 1)...]))
        requireCount(x, shape, "softmax input")

        var y = [Double](repeating: 0, count: x.count)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * extent * inner + i
                var largest = -Double.infinity
                for j in 0..<extent { largest = max(largest, x[base + j * inner]) }
                var sum = 0.0
                for j in 0..<extent {
                    let e = exp(x[base + j * inner] - largest)
                    y[base + j * inner] = e
                    sum += e
                }
                for j in 0..<extent { y[base + j * inner] /= sum }
            }
        }
        return y
    }
}
