import MagicInitCore

/// One chunk's share of a spherical k-means iteration (Coates & Ng 2012, §3; Krähenbühl et
/// al. 2016, §3.3): for centroids `c_j` (unit, `(O, r)`) and the chunk's unit-norm whitened
/// patches `u_i`, with the assignment `j(i) = argmax_j |c_j · u_i|` (the first on a tie) and
/// the projection `s_i = c_{j(i)} · u_i`:
///
///     counts[j]      = #{ i : j(i) = j }                             (O)
///     sums[j]        = Σ_{i : j(i) = j} s_i u_i                      (O, r)
///     objective      = Σ_i (1 − s_i²)  = Σ_i ‖s_i c_{j(i)} − u_i‖²
///     candidates     = bottom-k sample of the u_i (``PatchSample``), to re-seed empty clusters
///
/// **Exact, order-free merging.** Every term `s_i u_i[k]` and `1 − s_i²` lies in [−1, 1]; it
/// is rounded once to a multiple of 2⁻⁴⁰ and summed as an `Int64`. Integer sums are exact, so
/// the merged sums, and the centroids computed from them, are bitwise the same however the
/// patches are cut into chunks and in whatever order the chunks are merged. The price is an
/// absolute error of at most 2⁻⁴¹ per term (n · 2⁻⁴¹ in a sum of n terms, 1.9e-6 for
/// 2²² patches on a sum of size up to n) — far below what the centroid directions need.
/// ``patchLimit`` (2²²) keeps `|sum| ≤ 2²² · 2⁴⁰ < 2⁶³`.
///
/// Patches whose whitened norm is below 1e-10 (constant patches) have no direction: they are
/// counted in ``skippedPatches`` and not assigned.
public struct SphericalKMeansPartial: Sendable, Equatable {
    /// Fixed-point unit of ``sums`` and ``objectiveUnits``: 2⁻⁴⁰.
    public static let unit = 0x1p-40
    /// Most patches one k-means run accepts (over all chunks): 2²² = 4,194,304.
    public static let patchLimit: Int64 = 1 << 22
    /// Whitened norms below this are skipped.
    public static let smallestNorm = 1e-10

    /// Centroids O.
    public let centroidCount: Int
    /// Whitened dimension r.
    public let dimension: Int
    /// Patches assigned.
    public private(set) var patchCount: Int64 = 0
    /// Patches skipped for a whitened norm below ``smallestNorm``.
    public private(set) var skippedPatches: Int64 = 0
    /// Patches per centroid, `(O)`.
    public private(set) var counts: [Int64]
    /// `Σ s_i u_i` per centroid in units of 2⁻⁴⁰, `(O, r)` row-major.
    public private(set) var sums: [Int64]
    /// `Σ (1 − s_i²)` in units of 2⁻⁴⁰.
    public private(set) var objectiveUnits: Int64 = 0
    /// Re-seeding candidates (unit whitened patches).
    public private(set) var candidates: PatchSample

    /// The empty partial: the identity of ``merge(_:)``.
    public init(centroidCount: Int, dimension: Int, candidates: PatchSample) {
        precondition(centroidCount >= 1 && dimension >= 1, "k-means needs O ≥ 1 and r ≥ 1, got \(centroidCount), \(dimension)")
        precondition(candidates.dimension == dimension, "\(candidates.dimension)-dimensional candidates for r = \(dimension)")
        self.centroidCount = centroidCount
        self.dimension = dimension
        counts = [Int64](repeating: 0, count: centroidCount)
        sums = [Int64](repeating: 0, count: centroidCount * dimension)
        self.candidates = candidates
    }

    /// The objective `Σ (1 − s_i²)` as a Double.
    public var objective: Double { Double(objectiveUnits) * Self.unit }

    /// The sums of one chunk.
    /// - Parameters:
    ///   - centroids: unit centroids `(O, r)` row-major.
    ///   - whitenedPatches: `(n, r)` row-major whitened patches (``PatchWhitening/whiten(_:)``),
    ///     not yet normalised.
    ///   - firstPatchIndex: the global index of the first patch (image index × patches per
    ///     image, for the chunk's first image): the key of the re-seeding draw.
    ///   - candidates: the empty re-seeding sample of this iteration.
    /// - Throws: ``PatchStatisticsError/shapeMismatch(what:expected:actual:)``,
    ///   ``PatchStatisticsError/tooManyPatches(count:limit:)``.
    /// - Complexity: O(n · O · r).
    public init(centroids: [Double], centroidCount o: Int, whitenedPatches: UnsafeBufferPointer<Double>,
                firstPatchIndex: Int64, candidates: PatchSample) throws {
        let r = candidates.dimension
        guard r >= 1, o >= 1, centroids.count == o * r else {
            throw PatchStatisticsError.shapeMismatch(what: "centroid values (O · r)", expected: o * max(r, 1), actual: centroids.count)
        }
        guard whitenedPatches.count % r == 0 else {
            throw PatchStatisticsError.shapeMismatch(what: "whitened patch values (a multiple of r = \(r))",
                                                     expected: (whitenedPatches.count / r + 1) * r, actual: whitenedPatches.count)
        }
        let n = whitenedPatches.count / r
        guard Int64(n) <= Self.patchLimit, firstPatchIndex >= 0 else {
            throw PatchStatisticsError.tooManyPatches(count: Int64(n), limit: Self.patchLimit)
        }
        self.init(centroidCount: o, dimension: r, candidates: candidates)
        var u = [Double](repeating: 0, count: r)
        centroids.withUnsafeBufferPointer { c in
            for p in 0..<n {
                let y = whitenedPatches.baseAddress! + p * r
                var norm = 0.0
                for k in 0..<r { norm += y[k] * y[k] }
                norm = norm.squareRoot()
                guard norm >= Self.smallestNorm else {
                    skippedPatches += 1
                    continue
                }
                for k in 0..<r { u[k] = y[k] / norm }
                var best = 0, bestDot = 0.0, bestMagnitude = -1.0
                for j in 0..<o {
                    let cj = c.baseAddress! + j * r
                    var dot = 0.0
                    for k in 0..<r { dot += cj[k] * u[k] }
                    if abs(dot) > bestMagnitude {
                        best = j
                        bestDot = dot
                        bestMagnitude = abs(dot)
                    }
                }
                let s = min(1, max(-1, bestDot))
                counts[best] += 1
                for k in 0..<r { sums[best * r + k] += Self.fixedPoint(s * u[k]) }
                objectiveUnits += Self.fixedPoint(1 - s * s)
                patchCount += 1
                u.withUnsafeBufferPointer { self.candidates.offer(index: firstPatchIndex + Int64(p), patch: $0) }
            }
        }
    }

    /// Adds `other` (the same O, r and candidate stream) into `self`: exact integer sums, the
    /// bottom-k union of the candidates. Commutative and associative, bit for bit.
    /// - Throws: ``PatchStatisticsError/shapeMismatch(what:expected:actual:)`` for another O or r,
    ///   ``PatchStatisticsError/tooManyPatches(count:limit:)`` past ``patchLimit``.
    public mutating func merge(_ other: SphericalKMeansPartial) throws {
        guard other.centroidCount == centroidCount else {
            throw PatchStatisticsError.shapeMismatch(what: "k-means partial centroids", expected: centroidCount, actual: other.centroidCount)
        }
        guard other.dimension == dimension else {
            throw PatchStatisticsError.shapeMismatch(what: "k-means partial dimension", expected: dimension, actual: other.dimension)
        }
        let total = patchCount + other.patchCount  // both ≤ 2²², no overflow
        guard total <= Self.patchLimit else { throw PatchStatisticsError.tooManyPatches(count: total, limit: Self.patchLimit) }
        patchCount = total
        skippedPatches += other.skippedPatches
        for j in 0..<centroidCount { counts[j] += other.counts[j] }
        for k in sums.indices { sums[k] += other.sums[k] }
        objectiveUnits += other.objectiveUnits
        candidates.merge(other.candidates)
    }

    /// `v` in units of 2⁻⁴⁰, rounded to nearest (ties to even); `|v| ≤ 1`.
    @inline(__always)
    static func fixedPoint(_ v: Double) -> Int64 { Int64((v * 0x1p40).rounded(.toNearestOrEven)) }
}
