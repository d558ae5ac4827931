import Foundation
import MagicInitCore

// Channel-wise normalisations: LRN, BatchNorm (global statistics), Scale.

extension Reference {
    /// Caffe `LRN` across channels (`ACROSS_CHANNELS`; Krizhevsky et al. 2012, §3.3):
    ///
    ///     scale[n, c, h, w] = k + (α / n) · Σ_{c' = c − (n−1)/2 … c + (n−1)/2, 0 ≤ c' < C} x[n, c', h, w]²
    ///     y = x · scale^(−β)
    ///
    /// with `n = p.localSize` (odd). Channels beyond the edges count as 0, and the divisor is
    /// always `n`, also near the edges, as in Caffe.
    /// - Parameters:
    ///   - x: activations, `(N, C, H, W)`.
    ///   - shape: `[N, C, H, W]`.
    /// - Returns: `(N, C, H, W)`.
    /// - Complexity: `N·C·H·W·n` multiply–adds and one power per element.
    public static func lrn(_ x: [Double], shape: [Int], _ p: LRNParameters) -> [Double] {
        let (n, channels) = (shape[0], shape[1])
        let plane = shape[2] * shape[3]
        let half = (p.localSize - 1) / 2
        let alphaOverSize = Double(p.alpha) / Double(p.localSize)
        requireCount(x, shape, "LRN input")

        var y = [Double](repeating: 0, count: x.count)
        for image in 0..<n {
            for c in 0..<channels {
                for j in 0..<plane {
                    var sumOfSquares = 0.0
                    for neighbour in max(c - half, 0)...min(c + half, channels - 1) {
                        let v = x[(image * channels + neighbour) * plane + j]
                        sumOfSquares += v * v
                    }
                    let scale = Double(p.k) + alphaOverSize * sumOfSquares
                    let index = (image * channels + c) * plane + j
                    y[index] = x[index] * pow(scale, -Double(p.beta))
                }
            }
        }
        return y
    }

    /// Caffe `BatchNorm` with global statistics (`use_global_stats`, inference):
    ///
    ///     f = factor[0];  s = (f == 0 ? 0 : 1/f)
    ///     y[n, c, …] = (x[n, c, …] − s·mean[c]) / √(s·variance[c] + eps)
    ///
    /// Caffe stores running sums and their normaliser `f` separately; `f = 0` (a layer never
    /// trained) makes mean and variance 0.
    /// - Parameters:
    ///   - x: activations, `(N, C, …)`, any rank ≥ 2 (channel axis 1).
    ///   - shape: `[N, C, …]`.
    ///   - mean: accumulated mean, `(C)` (Caffe blob 0).
    ///   - variance: accumulated variance, `(C)` (Caffe blob 1).
    ///   - factor: the moving-average normaliser `f`, `(1)` (Caffe blob 2).
    /// - Returns: the shape of `x`.
    public static func batchNorm(_ x: [Double], shape: [Int], mean: [Double], variance: [Double],
                                 factor: [Double], eps: Double) -> [Double] {
        let (n, channels) = (shape[0], shape[1])
        let inner = elementCount(Array(shape.dropFirst(2)))
        requireCount(x, shape, "batch norm input")
        requireCount(mean, [channels], "batch norm mean")
        requireCount(variance, [channels], "batch norm variance")
        requireCount(factor, [1], "batch norm moving-average factor")
        let s = factor[0] == 0 ? 0 : 1 / factor[0]

        var y = [Double](repeating: 0, count: x.count)
        for image in 0..<n {
            for c in 0..<channels {
                let m = s * mean[c]
                let std = (s * variance[c] + eps).squareRoot()
                let base = (image * channels + c) * inner
                for j in 0..<inner { y[base + j] = (x[base + j] - m) / std }
            }
        }
        return y
    }

    /// Caffe `Scale` on axis 1 with one bottom: `y[n, c, …] = γ[c] · x[n, c, …] + β[c]`.
    /// - Parameters:
    ///   - x: activations, `(N, C, …)`, any rank ≥ 2.
    ///   - shape: `[N, C, …]`.
    ///   - gamma: `(C)` (Caffe blob 0).
    ///   - beta: `(C)` (Caffe blob 1), or `nil` without a bias term.
    /// - Returns: the shape of `x`.
    public static func scale(_ x: [Double], shape: [Int], gamma: [Double], beta: [Double]?) -> [Double] {
        let (n, channels) = (shape[0], shape[1])
        let inner = elementCount(Array(shape.dropFirst(2)))
        requireCount(x, shape, "scale input")
        requireCount(gamma, [channels], "scale gamma")
        if let beta { requireCount(beta, [channels], "scale beta") }

        var y = [Double](repeating: 0, count: x.count)
        for image in 0..<n {
            for c in 0..<channels {
                let base = (image * channels + c) * inner
                for j in 0..<inner { y[base + j] = gamma[c] * x[base + j] + (beta?[c] ?? 0) }
            }
        }
        return y
    }
}
