import MagicInitCore

/// Per-channel count and sum of squares `Σ x²` of a blob's values, in Float64: the
/// `E[x_k(j)²]` factor of the change rate (Krähenbühl et al. 2016, §3.2, eq. 4), one entry
/// per input channel of an affine layer's input blob `x_k`.
///
///     meanSquare[c] = sumOfSquares[c] / count = E[x(c)²]
///
/// Parts merge by adding counts and sums. Addition is commutative and associative up to
/// rounding; merging the same parts in the same order (the coordinator's chunk order) is
/// bitwise deterministic. An empty part is an exact identity. Squares are not centred: eq. 4
/// needs the raw second moment.
///
/// `count` is the number of values per channel (`N·H·W`), an exact `Int64`.
public struct SquareSums: Sendable, Equatable {
    /// Values seen per channel.
    public private(set) var count: Int64
    /// `Σ x²` per channel, `(C)`.
    public private(set) var sumOfSquares: [Double]

    /// The empty accumulator for `channelCount` channels: the identity element of ``merge(_:)``.
    public init(channelCount: Int) {
        precondition(channelCount >= 0, "negative channel count \(channelCount)")
        count = 0
        sumOfSquares = [Double](repeating: 0, count: channelCount)
    }

    /// Sums from their parts (e.g. decoded from the wire).
    /// - Precondition: `count >= 0` and every sum `>= 0`.
    public init(count: Int64, sumOfSquares: [Double]) {
        precondition(count >= 0, "negative count \(count)")
        precondition(sumOfSquares.allSatisfy { !($0 < 0) }, "negative sum of squares")
        self.count = count
        self.sumOfSquares = sumOfSquares
    }

    /// Sums of squares of a float32 row-major blob `(N, C, H, W)`, `(N, C)` or `(N, C, …)`;
    /// every image and spatial position of channel c counts.
    /// - Complexity: one read of every value, O(N·C·H·W).
    public init(accumulating values: UnsafeBufferPointer<Float>, shape: [Int]) {
        let layout = BlobLayout(shape: shape, count: values.count)
        var sums = [Double](repeating: 0, count: layout.channels)
        if let base = values.baseAddress, layout.valuesPerChannel > 0 {
            let runLength = layout.spatial
            sums.withUnsafeMutableBufferPointer { sums in
                for n in 0..<layout.images {
                    let image = base + n * layout.channels * runLength
                    if runLength == 1 {
                        for c in 0..<layout.channels {
                            let x = Double(image[c])
                            sums[c] += x * x
                        }
                    } else {
                        for c in 0..<layout.channels {
                            sums[c] += Kernels.squares(image + c * runLength, runLength)
                        }
                    }
                }
            }
        }
        self.init(count: Int64(layout.valuesPerChannel), sumOfSquares: sums)
    }

    /// Sums of squares of `tensor`, shape `(N, C, …)`.
    public init(accumulating tensor: Tensor) {
        self = tensor.data.withUnsafeBufferPointer { SquareSums(accumulating: $0, shape: tensor.shape) }
    }

    /// Number of channels, C.
    public var channelCount: Int { sumOfSquares.count }

    /// `true` when every sum is finite (false after NaN or ±∞ values).
    public var isFinite: Bool { sumOfSquares.allSatisfy(\.isFinite) }

    /// `E[x²]` per channel, `sumOfSquares / count`, `(C)`; zero when empty.
    /// - Complexity: O(C).
    public var meanSquare: [Double] {
        guard count > 0 else { return [Double](repeating: 0, count: channelCount) }
        let n = Double(count)
        return sumOfSquares.map { $0 / n }
    }

    /// Adds `other`'s count and sums to `self`.
    /// - Precondition: `other.channelCount == channelCount` (a programming error otherwise;
    ///   wire data is checked at decoding).
    /// - Complexity: O(C).
    public mutating func merge(_ other: SquareSums) {
        precondition(other.channelCount == channelCount,
                     "merging square sums of \(other.channelCount) channels into \(channelCount) channels")
        guard other.count > 0 else { return }
        guard count > 0 else {
            self = other
            return
        }
        for c in 0..<channelCount { sumOfSquares[c] += other.sumOfSquares[c] }
        count += other.count
    }

    /// `self` merged with `other`; see ``merge(_:)``.
    public func merged(with other: SquareSums) -> SquareSums {
        var result = self
        result.merge(other)
        return result
    }

    /// Merges the sums of a blob `(N, C, …)` into `self`: exactly
    /// `merge(SquareSums(accumulating: values, shape: shape))`.
    public mutating func accumulate(_ values: UnsafeBufferPointer<Float>, shape: [Int]) {
        merge(SquareSums(accumulating: values, shape: shape))
    }
}

/// Image count and `Σ_n ‖y_n‖²` over images n of a blob, in Float64: the `E[‖y_k‖²]` factor
/// of the change rate (Krähenbühl et al. 2016, §3.2, eq. 4), with `y_k = ∂ℓ/∂z_k` the
/// back-propagated gradient at affine layer k's output for one image.
///
///     meanSquaredNorm = sum / imageCount = E[‖y‖²]
///
/// Merges by addition: commutative and associative up to rounding, bitwise deterministic in a
/// fixed order, the empty value an exact identity.
public struct SquaredNormSum: Sendable, Equatable {
    /// Images seen.
    public private(set) var imageCount: Int64
    /// `Σ_n ‖y_n‖²` over those images.
    public private(set) var sum: Double

    /// The empty accumulator: the identity element of ``merge(_:)``.
    public init() {
        imageCount = 0
        sum = 0
    }

    /// A sum from its parts (e.g. decoded from the wire).
    /// - Precondition: `imageCount >= 0`, `sum >= 0`.
    public init(imageCount: Int64, sum: Double) {
        precondition(imageCount >= 0, "negative image count \(imageCount)")
        precondition(!(sum < 0), "negative sum of squared norms \(sum)")
        self.imageCount = imageCount
        self.sum = sum
    }

    /// The squared norms of the images of a float32 row-major blob `(N, …)`, any rank ≥ 1:
    /// image n is the contiguous block of `count / N` values; each image's `‖y_n‖²` is
    /// computed in Float64, then the N norms are added in image order.
    /// - Complexity: one read of every value.
    public init(accumulating values: UnsafeBufferPointer<Float>, shape: [Int]) {
        precondition(shape.count >= 1 && shape.allSatisfy { $0 >= 0 }, "a blob needs shape (N, …), got \(shape)")
        precondition(shape.reduce(1, *) == values.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        let images = shape[0]
        let perImage = shape.dropFirst().reduce(1, *)
        var total = 0.0
        if let base = values.baseAddress {
            for n in 0..<images { total += Kernels.squares(base + n * perImage, perImage) }
        }
        self.init(imageCount: Int64(images), sum: total)
    }

    /// The squared norms of the images of `tensor`, shape `(N, …)`.
    public init(accumulating tensor: Tensor) {
        self = tensor.data.withUnsafeBufferPointer { SquaredNormSum(accumulating: $0, shape: tensor.shape) }
    }

    /// `true` when the sum is finite (false after NaN or ±∞ values).
    public var isFinite: Bool { sum.isFinite }

    /// `E[‖y‖²]`, `sum / imageCount`; zero when empty.
    public var meanSquaredNorm: Double { imageCount > 0 ? sum / Double(imageCount) : 0 }

    /// Adds `other`'s image count and sum to `self`.
    /// - Complexity: O(1).
    public mutating func merge(_ other: SquaredNormSum) {
        guard other.imageCount > 0 else { return }
        guard imageCount > 0 else {
            self = other
            return
        }
        imageCount += other.imageCount
        sum += other.sum
    }

    /// `self` merged with `other`; see ``merge(_:)``.
    public func merged(with other: SquaredNormSum) -> SquaredNormSum {
        var result = self
        result.merge(other)
        return result
    }

    /// Merges the squared norms of a blob `(N, …)` into `self`: exactly
    /// `merge(SquaredNormSum(accumulating: values, shape: shape))`.
    public mutating func accumulate(_ values: UnsafeBufferPointer<Float>, shape: [Int]) {
        merge(SquaredNormSum(accumulating: values, shape: shape))
    }
}
