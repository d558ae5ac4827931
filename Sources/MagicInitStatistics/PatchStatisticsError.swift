/// Why the §3.3 patch math (whitening, PCA / ZCA, spherical k-means) cannot go on, with the
/// numbers. Thrown by ``SymmetricEigen``, ``PatchWhitening``, ``SphericalKMeans`` and
/// ``SphericalKMeansPartial``; callers add the layer name when they show it.
public enum PatchStatisticsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The covariance has no rows (`count == 0`): nothing to whiten.
    case noPatches
    /// The covariance's mean or scatter holds a NaN or infinity.
    case nonFiniteCovariance
    /// The patch dimension `D` is larger than the eigen-decomposition accepts (`D² · 8` bytes
    /// are factored in memory).
    case dimensionTooLarge(dimension: Int, limit: Int)
    /// LAPACKE `dsyevd` returned `info ≠ 0` (`info < 0`: argument `-info` was illegal;
    /// `info > 0`: the algorithm failed to converge).
    case eigenDecompositionFailed(info: Int, dimension: Int)
    /// Every eigenvalue of the patch covariance is below the floor: the patches are constant.
    case noEigenvalueAboveFloor(largest: Double, floor: Double)
    /// A setting is outside its range (`name`, the value given, and what is allowed).
    case invalidSetting(name: String, value: String, allowed: String)
    /// Arrays whose sizes disagree (e.g. a `(n, r)` patch buffer that is not a whole number of
    /// rows, or partial sums for another number of centroids).
    case shapeMismatch(what: String, expected: Int, actual: Int)
    /// More patches than the fixed-point k-means sums can hold exactly.
    case tooManyPatches(count: Int64, limit: Int64)

    public var description: String {
        switch self {
        case .noPatches:
            return "no patches: the patch covariance is empty"
        case .nonFiniteCovariance:
            return "the patch covariance holds NaN or infinity"
        case let .dimensionTooLarge(dimension, limit):
            return "patch dimension \(dimension) exceeds the eigen-decomposition limit \(limit)"
        case let .eigenDecompositionFailed(info, dimension):
            return "LAPACKE_dsyevd failed on the \(dimension)×\(dimension) patch covariance (info \(info))"
        case let .noEigenvalueAboveFloor(largest, floor):
            return "every eigenvalue of the patch covariance is below \(floor) (largest \(largest)): the patches are constant"
        case let .invalidSetting(name, value, allowed):
            return "\(name) = \(value) is not allowed (\(allowed))"
        case let .shapeMismatch(what, expected, actual):
            return "\(what): expected \(expected), got \(actual)"
        case let .tooManyPatches(count, limit):
            return "\(count) patches exceed the k-means limit of \(limit)"
        }
    }
}
