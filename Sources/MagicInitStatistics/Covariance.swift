/// Count, mean vector and centred scatter matrix of D-dimensional row vectors, in Float64:
/// the patch statistics behind the §3.3 PCA / ZCA whitening (Krähenbühl et al. 2016, §3.3),
/// e.g. over im2col rows of an affine layer's input.
///
/// For rows `x_1 … x_n ∈ R^D`:
///
///     mean    = Σ x_i / n                                  (D)
///     scatter = Σ (x_i − mean)(x_i − mean)ᵀ                (D × D, row-major, symmetric)
///     covariance = scatter / n                             (population)
///
/// Parts merge with the matrix form of Chan, Golub & LeVeque's pairwise update (1979):
///
///     δ = mean_b − mean_a,  n = n_a + n_b
///     mean    = mean_a + δ · n_b / n
///     scatter = scatter_a + scatter_b + δ δᵀ · n_a n_b / n
///
/// Commutative and associative up to rounding; an empty part is an exact identity; a fixed
/// merge order is bitwise deterministic. `count` is an exact `Int64` row count.
public struct Covariance: Sendable, Equatable {
    /// Rows seen.
    public private(set) var count: Int64
    /// Mean row, `(D)`; zero while empty.
    public private(set) var mean: [Double]
    /// Centred scatter matrix `Σ (x − mean)(x − mean)ᵀ`, `(D, D)` row-major, symmetric
    /// (both triangles stored); zero while empty.
    public private(set) var scatter: [Double]

    /// The empty accumulator for `dimension`-dimensional rows: the identity of ``merge(_:)``.
    public init(dimension: Int) {
        precondition(dimension >= 0, "negative dimension \(dimension)")
        count = 0
        mean = [Double](repeating: 0, count: dimension)
        scatter = [Double](repeating: 0, count: dimension * dimension)
    }

    /// Statistics from their parts (e.g. decoded from the wire).
    /// - Precondition: `count >= 0`, `scatter.count == mean.count²`.
    public init(count: Int64, mean: [Double], scatter: [Double]) {
        precondition(count >= 0, "negative count \(count)")
        precondition(scatter.count == mean.count * mean.count,
                     "a \(mean.count)-dimensional mean needs a \(mean.count)×\(mean.count) scatter, got \(scatter.count) values")
        self.count = count
        self.mean = mean
        self.scatter = scatter
    }

    /// The statistics of a batch of float32 row vectors `(rows, D)`, row-major, by the
    /// two-pass algorithm in Float64: first the batch mean, then the scatter of the centred
    /// rows, accumulated blockwise in the upper triangle and mirrored.
    /// - Parameters:
    ///   - rows: `rows·D` values, row-major.
    ///   - dimension: D.
    /// - Complexity: O(rows · D²) multiply-adds (`rows·D·(D+1)/2`), O(D²) memory.
    public init(accumulatingRows rows: UnsafeBufferPointer<Float>, dimension: Int) {
        precondition(dimension > 0, "row dimension must be positive, got \(dimension)")
        precondition(rows.count % dimension == 0,
                     "\(rows.count) values are not a whole number of \(dimension)-dimensional rows")
        self.init(dimension: dimension)
        let rowCount = rows.count / dimension
        guard rowCount > 0, let base = rows.baseAddress else { return }
        let d = dimension

        // Pass 1: the batch mean.
        var batchMean = [Double](repeating: 0, count: d)
        batchMean.withUnsafeMutableBufferPointer { m in
            for r in 0..<rowCount {
                let row = base + r * d
                for j in 0..<d { m[j] += Double(row[j]) }
            }
            let n = Double(rowCount)
            for j in 0..<d { m[j] /= n }
        }

        // Pass 2: Σ (x − mean)(x − mean)ᵀ, upper triangle, `blockRows` centred rows at a time.
        let blockRows = 32
        var block = [Double](repeating: 0, count: blockRows * d)
        var upper = [Double](repeating: 0, count: d * d)
        batchMean.withUnsafeBufferPointer { m in
            block.withUnsafeMutableBufferPointer { block in
                upper.withUnsafeMutableBufferPointer { s in
                    let blockBase = block.baseAddress!, sBase = s.baseAddress!
                    var start = 0
                    while start < rowCount {
                        let rowsHere = min(blockRows, rowCount - start)
                        for r in 0..<rowsHere {
                            let row = base + (start + r) * d
                            for j in 0..<d { block[r * d + j] = Double(row[j]) - m[j] }
                        }
                        for i in 0..<d {
                            let sRow = sBase + i * d
                            for r in 0..<rowsHere {
                                let x = blockBase + r * d
                                let xi = x[i]
                                for j in i..<d { sRow[j] += xi * x[j] }
                            }
                        }
                        start += rowsHere
                    }
                    for i in 0..<d {
                        for j in 0..<i { s[i * d + j] = s[j * d + i] }
                    }
                }
            }
        }
        self.init(count: Int64(rowCount), mean: batchMean, scatter: upper)
    }

    /// Dimension of the rows, D.
    public var dimension: Int { mean.count }

    /// `true` when no row has been seen.
    public var isEmpty: Bool { count == 0 }

    /// `true` when the mean and every scatter entry are finite.
    public var isFinite: Bool { mean.allSatisfy(\.isFinite) && scatter.allSatisfy(\.isFinite) }

    /// The **population** covariance `scatter / n`, `(D, D)` row-major; zero when empty.
    /// - Complexity: O(D²).
    public var covariance: [Double] {
        guard count > 0 else { return [Double](repeating: 0, count: scatter.count) }
        let n = Double(count)
        return scatter.map { $0 / n }
    }

    /// Merges `other` into `self` with the matrix form of Chan et al.'s pairwise update (see
    /// the type's doc). If either side is empty the result is the other side, bit for bit.
    /// - Precondition: `other.dimension == dimension` (a programming error otherwise; wire
    ///   data is checked at decoding).
    /// - Complexity: O(D²).
    public mutating func merge(_ other: Covariance) {
        precondition(other.dimension == dimension,
                     "merging a \(other.dimension)-dimensional covariance into a \(dimension)-dimensional one")
        guard other.count > 0 else { return }
        guard count > 0 else {
            self = other
            return
        }
        let weights = ChanWeights(countA: count, countB: other.count)
        let d = dimension
        let delta = (0..<d).map { other.mean[$0] - mean[$0] }
        for j in 0..<d { mean[j] += delta[j] * weights.weightB }
        scatter.withUnsafeMutableBufferPointer { s in
            other.scatter.withUnsafeBufferPointer { t in
                // Upper triangle, then mirrored: the result stays exactly symmetric.
                for i in 0..<d {
                    let scaled = delta[i] * weights.cross
                    for j in i..<d { s[i * d + j] = s[i * d + j] + t[i * d + j] + scaled * delta[j] }
                }
                for i in 0..<d {
                    for j in 0..<i { s[i * d + j] = s[j * d + i] }
                }
            }
        }
        count += other.count
    }

    /// `self` merged with `other`; see ``merge(_:)``.
    public func merged(with other: Covariance) -> Covariance {
        var result = self
        result.merge(other)
        return result
    }

    /// Merges the statistics of a batch of rows `(rows, D)` into `self`: exactly
    /// `merge(Covariance(accumulatingRows: rows, dimension: dimension))`.
    public mutating func accumulate(rows: UnsafeBufferPointer<Float>) {
        merge(Covariance(accumulatingRows: rows, dimension: dimension))
    }
}
