/// The whitening of input patches behind the §3.3 data-driven weights (Krähenbühl et al.
/// 2016, §3.3; Coates & Ng 2012, "Learning feature representations with k-means", §3):
/// centre the patches, rotate onto the eigenvectors of their covariance, scale each retained
/// direction to unit variance.
///
/// From the population covariance `Σ = scatter / n` of raw patches `x ∈ R^D` (im2col rows of a
/// convolution's input, one group) with mean μ:
///
///     Σ = Σ_i λ_i v_i v_iᵀ                 (``SymmetricEigen``, LAPACKE dsyevd, λ descending)
///     retained: the r directions with λ_i ≥ eigenvalueFloor   (reference: 1e-6)
///     s_i = 1 / sqrt(λ_i + ε)              (ε = ``epsilon``, in the patch's units squared)
///     y   = S Vᵀ (x − μ) ∈ R^r              (``whiten(_:)``; S = diag(s), V = (v_0 … v_{r−1}))
///
/// y has covariance `diag(λ_i / (λ_i + ε))` — exactly I when ε = 0. The ZCA whitening matrix
/// is `Z = V S Vᵀ` (`(D, D)`, rank r); y are ZCA-whitened patches `Z (x − μ)` expressed in the
/// orthonormal basis V, so dot products and norms (all that spherical k-means sees) are the
/// same in either form, at r instead of D numbers per patch.
///
/// A filter given in whitened coordinates, `c ∈ R^r` (a PCA direction, a k-means centroid, a
/// whitened patch), acts on raw patches as `c · y = (V S c) · (x − μ)`, so the convolution
/// row written is ``filter(whitened:)``: weights `w = V S c` `(D)` and bias `−w · μ`.
///
/// ε: the reference implementation (philkr/magic_init) adds 1e-3 to eigenvalues of the
/// unnormalised scatter `Dᵀ D`; here λ are eigenvalues of the covariance (scatter / n), so the
/// same ε regularises relatively more. Coates & Ng use 0.1 for contrast-normalised pixel
/// patches. The default here is 1e-3; pass 0 to whiten exactly.
public struct PatchWhitening: Sendable, Equatable {
    /// Reference default for dropped directions: eigenvalues below this are treated as zero.
    public static let defaultEigenvalueFloor = 1e-6
    /// Default ε added to every retained eigenvalue before the inverse square root.
    public static let defaultEpsilon = 1e-3

    /// Patch dimension D (`C/groups · kH · kW` for a convolution).
    public let dimension: Int
    /// Patch mean μ, `(D)`.
    public let mean: [Double]
    /// Retained eigenvalues `λ_0 ≥ … ≥ λ_{r−1} ≥ eigenvalueFloor`, `(r)`, in the patch's
    /// units squared.
    public let retainedEigenvalues: [Double]
    /// Retained unit eigenvectors as rows, `(r, D)` row-major: row i is v_i.
    public let directions: [Double]
    /// `s_i = 1/sqrt(λ_i + ε)`, `(r)`.
    public let scales: [Double]
    /// The regulariser ε.
    public let epsilon: Double
    /// The eigenvalue floor used.
    public let eigenvalueFloor: Double
    /// Eigenvalues below the floor (largest first), `(D − r)`: directions the data does not
    /// span, reported to the user.
    public let droppedEigenvalues: [Double]
    /// Patches the covariance was computed from.
    public let patchCount: Int64

    /// Number of retained directions r, `1 ≤ r ≤ D`: the most filters the data supports for
    /// PCA.
    public var rank: Int { retainedEigenvalues.count }

    /// Whitening from merged patch statistics.
    /// - Parameters:
    ///   - covariance: count, mean and scatter of the raw patches (merged in chunk order).
    ///   - epsilon: ε ≥ 0, see the type's documentation.
    ///   - eigenvalueFloor: eigenvalues below it are dropped, `> 0`.
    /// - Throws: ``PatchStatisticsError/noPatches``, ``PatchStatisticsError/invalidSetting(name:value:allowed:)``,
    ///   ``PatchStatisticsError/noEigenvalueAboveFloor(largest:floor:)`` and what ``SymmetricEigen`` throws.
    /// - Complexity: O(D³) for the eigen-decomposition.
    public init(covariance: Covariance, epsilon: Double = defaultEpsilon,
                eigenvalueFloor: Double = defaultEigenvalueFloor) throws {
        guard epsilon >= 0, epsilon.isFinite else {
            throw PatchStatisticsError.invalidSetting(name: "epsilon", value: "\(epsilon)", allowed: "finite, ≥ 0")
        }
        guard eigenvalueFloor > 0, eigenvalueFloor.isFinite else {
            throw PatchStatisticsError.invalidSetting(name: "eigenvalueFloor", value: "\(eigenvalueFloor)", allowed: "finite, > 0")
        }
        guard covariance.count > 0 else { throw PatchStatisticsError.noPatches }
        guard covariance.isFinite else { throw PatchStatisticsError.nonFiniteCovariance }
        let d = covariance.dimension
        let eigen = try SymmetricEigen(symmetric: covariance.covariance, dimension: d)
        let r = eigen.values.prefix { $0 >= eigenvalueFloor }.count
        guard r > 0 else {
            throw PatchStatisticsError.noEigenvalueAboveFloor(largest: eigen.values.first ?? 0, floor: eigenvalueFloor)
        }
        dimension = d
        mean = covariance.mean
        retainedEigenvalues = Array(eigen.values[..<r])
        droppedEigenvalues = Array(eigen.values[r...])
        directions = Array(eigen.vectors[..<(r * d)])
        scales = retainedEigenvalues.map { 1 / (($0 + epsilon).squareRoot()) }
        self.epsilon = epsilon
        self.eigenvalueFloor = eigenvalueFloor
        patchCount = covariance.count
    }

    /// Whitened coordinates `y = S Vᵀ (x − μ)` of raw patches.
    /// - Parameter patches: `(n, D)` row-major raw patches (Float32, as im2col produces them).
    /// - Returns: `(n, r)` row-major.
    /// - Throws: ``PatchStatisticsError/shapeMismatch(what:expected:actual:)`` when the count is
    ///   not a multiple of D.
    /// - Complexity: O(n · r · D).
    public func whiten(_ patches: UnsafeBufferPointer<Float>) throws -> [Double] {
        let d = dimension, r = rank
        guard patches.count % d == 0 else {
            throw PatchStatisticsError.shapeMismatch(what: "raw patch values (a multiple of D = \(d))",
                                                     expected: (patches.count / d + 1) * d, actual: patches.count)
        }
        let n = patches.count / d
        var out = [Double](repeating: 0, count: n * r)
        var centred = [Double](repeating: 0, count: d)
        for p in 0..<n {
            for j in 0..<d { centred[j] = Double(patches[p * d + j]) - mean[j] }
            for i in 0..<r {
                var dot = 0.0
                let v = i * d
                for j in 0..<d { dot += directions[v + j] * centred[j] }
                out[p * r + i] = scales[i] * dot
            }
        }
        return out
    }

    /// The convolution row that computes `c · y` on raw patches: weights `w = V S c`, `(D)`,
    /// and bias `−w · μ` (the mean folded in).
    /// - Parameter c: a filter in whitened coordinates, `(r)`.
    /// - Complexity: O(r · D).
    public func filter(whitened c: ArraySlice<Double>) -> (weights: [Double], bias: Double) {
        precondition(c.count == rank, "a whitened filter has \(rank) coordinates, got \(c.count)")
        let d = dimension
        var w = [Double](repeating: 0, count: d)
        for (i, ci) in c.enumerated() {
            let a = scales[i] * ci
            guard a != 0 else { continue }
            let v = i * d
            for j in 0..<d { w[j] += a * directions[v + j] }
        }
        var dot = 0.0
        for j in 0..<d { dot += w[j] * mean[j] }
        return (w, -dot)
    }
}
