import CLapacke

/// Eigen-decomposition of a real symmetric matrix by LAPACKE `dsyevd` (divide and conquer),
/// in Float64: `A = V · diag(λ) · Vᵀ` with orthonormal columns of V.
///
/// The values are returned in **descending** order (LAPACK gives ascending), and each
/// eigenvector's sign is fixed so that its entry of largest magnitude (the first such, on a
/// tie) is positive: the result is a pure function of `A`, comparable with any other solver.
/// The basis of a repeated eigenvalue is still the solver's choice.
///
/// Used for the patch whitening of Krähenbühl et al. 2016, §3.3 (see ``PatchWhitening``).
public struct SymmetricEigen: Sendable, Equatable {
    /// Largest accepted dimension: `8192² · 8` bytes = 512 MiB for the matrix, the same again
    /// for `dsyevd`'s workspace.
    public static let dimensionLimit = 8192

    /// Eigenvalues `λ_0 ≥ λ_1 ≥ … ≥ λ_{D−1}`, `(D)`.
    public let values: [Double]
    /// Eigenvectors as **rows**: row i (`vectors[i·D ..< (i+1)·D]`) is the unit eigenvector of
    /// `values[i]`, `(D, D)` row-major.
    public let vectors: [Double]

    /// Decomposes the symmetric `(D, D)` row-major `matrix` (only its upper triangle is read).
    /// - Throws: ``PatchStatisticsError/shapeMismatch(what:expected:actual:)`` when
    ///   `matrix.count ≠ D²`, ``PatchStatisticsError/dimensionTooLarge(dimension:limit:)``
    ///   past ``dimensionLimit``, ``PatchStatisticsError/nonFiniteCovariance`` for NaN or
    ///   infinity, ``PatchStatisticsError/eigenDecompositionFailed(info:dimension:)``.
    /// - Complexity: O(D³) flops, O(D²) memory.
    public init(symmetric matrix: [Double], dimension d: Int) throws {
        guard d >= 0, d <= Self.dimensionLimit else {
            throw PatchStatisticsError.dimensionTooLarge(dimension: d, limit: Self.dimensionLimit)
        }
        guard matrix.count == d * d else {
            throw PatchStatisticsError.shapeMismatch(what: "symmetric matrix entries", expected: d * d, actual: matrix.count)
        }
        guard matrix.allSatisfy(\.isFinite) else { throw PatchStatisticsError.nonFiniteCovariance }
        guard d > 0 else {
            values = []
            vectors = []
            return
        }
        var a = matrix
        var w = [Double](repeating: 0, count: d)
        let info = a.withUnsafeMutableBufferPointer { a in
            w.withUnsafeMutableBufferPointer { w in
                LAPACKE_dsyevd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")),
                               Int32(d), a.baseAddress, Int32(d), w.baseAddress)
            }
        }
        guard info == 0 else { throw PatchStatisticsError.eigenDecompositionFailed(info: Int(info), dimension: d) }
        // Row-major A holds the eigenvectors in its columns, ascending: column j of a.
        var rows = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            let column = d - 1 - i
            var largest = 0.0, sign = 1.0
            for k in 0..<d where abs(a[k * d + column]) > largest {
                largest = abs(a[k * d + column])
                sign = a[k * d + column] < 0 ? -1 : 1
            }
            for k in 0..<d { rows[i * d + k] = sign * a[k * d + column] }
        }
        values = w.reversed()
        vectors = rows
    }
}
