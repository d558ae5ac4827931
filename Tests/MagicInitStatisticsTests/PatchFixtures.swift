import MagicInitCore
import MagicInitReference
import MagicInitStatistics
import MagicInitTestKit

/// Input patches of real photographs (the repo's fixture photos, Caffe preprocessing): im2col
/// rows of the `(8, 3, size, size)` image blob, `(channel, y, x)` order, at Philox-random
/// positions — what a first convolution with a `kernel`² window sees.
enum PhotoPatches {
    /// `perImage` patches of each of the 8 photos, `(8 · perImage, 3 · kernel²)` row-major.
    static func patches(size: Int = 64, kernel: Int, perImage: Int) throws -> (values: [Float], dimension: Int) {
        let photos = try FixturePhotos.load(size: size)
        let n = photos.shape[0], c = photos.shape[1], h = photos.shape[2], w = photos.shape[3]
        let d = c * kernel * kernel
        var out = [Float]()
        out.reserveCapacity(n * perImage * d)
        for image in 0..<n {
            let u = Philox(seed: 18, stream: Philox.stream("test.patches", image)).uniforms(count: 2 * perImage)
            for p in 0..<perImage {
                let y0 = min(h - kernel, Int(Double(u[2 * p]) * Double(h - kernel + 1)))
                let x0 = min(w - kernel, Int(Double(u[2 * p + 1]) * Double(w - kernel + 1)))
                for ch in 0..<c {
                    for ky in 0..<kernel {
                        for kx in 0..<kernel {
                            out.append(photos.data[((image * c + ch) * h + y0 + ky) * w + x0 + kx])
                        }
                    }
                }
            }
        }
        return (out, d)
    }

    /// Population mean and covariance of `(n, D)` rows: the independent reference's.
    static func naiveCovariance(_ x: [Double], dimension d: Int) -> (mean: [Double], covariance: [Double]) {
        Reference.covariance(rows: x, dimension: d)
    }

    /// The largest `|a_ij − e_ij|` and where.
    static func largestDifference(_ a: [Double], _ e: [Double]) -> (value: Double, index: Int) {
        var largest = 0.0, at = -1
        for (i, (x, y)) in zip(a, e).enumerated() where !(abs(x - y) <= largest) {
            largest = abs(x - y)
            at = i
        }
        return (largest, at)
    }

    /// `(D, D)` identity, or `diag(values)`.
    static func diagonal(_ values: [Double]) -> [Double] {
        var m = [Double](repeating: 0, count: values.count * values.count)
        for i in values.indices { m[i * values.count + i] = values[i] }
        return m
    }
}
