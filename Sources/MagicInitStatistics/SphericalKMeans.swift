import MagicInitCore

/// Spherical k-means on unit-norm whitened patches, as Coates & Ng 2012 (§3, "Learning
/// feature representations with k-means") describe it and Krähenbühl et al. 2016 (§3.3) use
/// it for starting filters: a pure state machine over merged ``SphericalKMeansPartial``s, so
/// the passes over the patches can run anywhere (per chunk, on workers) and be merged in
/// chunk order.
///
/// Iteration t (a pass over all patches with centroids `c^t`, then ``update(with:)``):
///
///     assignment   j(i) = argmax_j |c_j^t · u_i|,  s_i = c_{j(i)}^t · u_i
///     objective    J_t  = Σ_i (1 − s_i²)                       (recorded in ``objectives``)
///     update       c_j^{t+1} = normalise(Σ_{j(i)=j} s_i u_i + damping · c_j^t)
///     empty j      c_j^{t+1} = the next unused patch of the iteration's bottom-k sample
///
/// The damped update is Coates & Ng's `D := X Sᵀ + D`: one power-iteration step on
/// `A_j + damping·I` with `A_j = Σ u_i u_iᵀ` over the cluster, so `c_jᵀ A_j c_j` cannot
/// decrease; re-assignment cannot either, and an empty centroid owns no patch, so re-seeding
/// it cannot: `J_{t+1} ≤ J_t` (up to the 2⁻⁴⁰ rounding of the sums). The sign of a centroid
/// is immaterial (the assignment uses `|c · u|`).
///
/// Stops after ``Settings/maxIterations`` passes, or when a pass re-seeded nothing and
/// `J_{t−1} − J_t ≤ tolerance · J_{t−1}`. The centroids after the last update are the result
/// (``centroids``); ``objectives`` holds J for every pass.
///
/// Randomness (Philox, keyed by seed, layer and group): the initial centroids are normalised
/// Gaussian draws (Coates & Ng), stream `("kmeans.init", layer, group)`; the re-seeding sample
/// of iteration t is keyed by `("kmeans.reseed", layer, group, t)` and the global patch index.
public struct SphericalKMeans: Sendable, Equatable {
    /// The tunables, with their defaults.
    public struct Settings: Sendable, Equatable {
        /// Centroids O (the convolution's outputs per group), ≥ 1.
        public var centroidCount: Int
        /// Passes at most, ≥ 1. Coates & Ng report about 10 suffice.
        public var maxIterations: Int
        /// Relative objective decrease below which the run stops, ≥ 0 (0: run to the cap).
        public var tolerance: Double
        /// Weight of the previous centroid in the update, ≥ 0 (Coates & Ng: 1).
        public var damping: Double
        /// Re-seeding candidates kept per iteration, ≥ 0: at most this many empty clusters are
        /// re-seeded per iteration (the rest wait for the next one).
        public var reseedCandidates: Int

        public init(centroidCount: Int, maxIterations: Int = 30, tolerance: Double = 1e-4,
                    damping: Double = 1, reseedCandidates: Int? = nil) {
            self.centroidCount = centroidCount
            self.maxIterations = maxIterations
            self.tolerance = tolerance
            self.damping = damping
            self.reseedCandidates = reseedCandidates ?? min(centroidCount, 64)
        }

        func validate() throws {
            func check(_ ok: Bool, _ name: String, _ value: Any, _ allowed: String) throws {
                if !ok { throw PatchStatisticsError.invalidSetting(name: name, value: "\(value)", allowed: allowed) }
            }
            try check(centroidCount >= 1, "centroidCount", centroidCount, "≥ 1")
            try check(maxIterations >= 1, "maxIterations", maxIterations, "≥ 1")
            try check(tolerance >= 0 && tolerance.isFinite, "tolerance", tolerance, "finite, ≥ 0")
            try check(damping >= 0 && damping.isFinite, "damping", damping, "finite, ≥ 0")
            try check(reseedCandidates >= 0, "reseedCandidates", reseedCandidates, "≥ 0")
        }
    }

    /// Why the run stopped.
    public enum StopReason: String, Sendable, Equatable {
        case converged, iterationCap
    }

    public let settings: Settings
    /// Whitened dimension r.
    public let dimension: Int
    /// The user's seed.
    public let seed: UInt64
    /// Layer index and group: the keys of the random streams.
    public let layer: Int, group: Int
    /// Current unit centroids, `(O, r)` row-major.
    public private(set) var centroids: [Double]
    /// J per completed pass, `Σ (1 − s²)` over the assigned patches.
    public private(set) var objectives: [Double] = []
    /// Centroids re-seeded in each completed pass (ascending).
    public private(set) var reseeded: [[Int]] = []
    /// Patches assigned in the last pass, and those skipped as constant.
    public private(set) var patchCount: Int64 = 0, skippedPatches: Int64 = 0
    /// Set once the run is over.
    public private(set) var stopReason: StopReason?

    /// Passes completed.
    public var iteration: Int { objectives.count }
    /// `true` once ``stopReason`` is set.
    public var isFinished: Bool { stopReason != nil }

    /// A run starting from normalised Gaussian centroids.
    /// - Throws: ``PatchStatisticsError/invalidSetting(name:value:allowed:)``.
    public init(settings: Settings, dimension: Int, seed: UInt64, layer: Int, group: Int = 0) throws {
        try settings.validate()
        guard dimension >= 1 else {
            throw PatchStatisticsError.invalidSetting(name: "dimension", value: "\(dimension)", allowed: "≥ 1")
        }
        let o = settings.centroidCount
        let g = Philox(seed: seed, stream: Philox.stream("kmeans.init", layer, group)).gaussians(count: o * dimension)
        var c = g.map(Double.init)
        for j in 0..<o { Self.normalise(&c, row: j, dimension: dimension) }
        try self.init(settings: settings, initialCentroids: c, dimension: dimension, seed: seed, layer: layer, group: group)
    }

    /// A run from given centroids `(O, r)` (normalised here; a zero row is kept zero and will
    /// own no patch, so it is re-seeded).
    public init(settings: Settings, initialCentroids: [Double], dimension: Int, seed: UInt64, layer: Int, group: Int = 0) throws {
        try settings.validate()
        guard initialCentroids.count == settings.centroidCount * dimension, dimension >= 1 else {
            throw PatchStatisticsError.shapeMismatch(what: "initial centroid values (O · r)",
                                                     expected: settings.centroidCount * dimension, actual: initialCentroids.count)
        }
        self.settings = settings
        self.dimension = dimension
        self.seed = seed
        self.layer = layer
        self.group = group
        var c = initialCentroids
        for j in 0..<settings.centroidCount { Self.normalise(&c, row: j, dimension: dimension) }
        centroids = c
    }

    /// The empty partial of the current pass (identity of the merge), with its re-seeding sample.
    public func emptyPartial() -> SphericalKMeansPartial {
        SphericalKMeansPartial(centroidCount: settings.centroidCount, dimension: dimension, candidates: candidateSample())
    }

    /// One chunk's partial for the current pass.
    /// - Parameters:
    ///   - whitenedPatches: `(n, r)` row-major (``PatchWhitening/whiten(_:)``).
    ///   - firstPatchIndex: the global index of the chunk's first patch.
    /// - Throws: see ``SphericalKMeansPartial/init(centroids:centroidCount:whitenedPatches:firstPatchIndex:candidates:)``.
    public func partial(whitenedPatches: UnsafeBufferPointer<Double>, firstPatchIndex: Int64) throws -> SphericalKMeansPartial {
        try SphericalKMeansPartial(centroids: centroids, centroidCount: settings.centroidCount, whitenedPatches: whitenedPatches,
                                   firstPatchIndex: firstPatchIndex, candidates: candidateSample())
    }

    /// Completes the current pass with the partials of all chunks merged: records J, updates
    /// and re-seeds the centroids, decides whether to stop.
    /// - Precondition: not ``isFinished``.
    /// - Throws: ``PatchStatisticsError/shapeMismatch(what:expected:actual:)`` for another O or r,
    ///   ``PatchStatisticsError/noPatches`` when no patch was assigned.
    public mutating func update(with merged: SphericalKMeansPartial) throws {
        precondition(!isFinished, "k-means already stopped (\(stopReason!.rawValue))")
        let o = settings.centroidCount, r = dimension
        guard merged.centroidCount == o, merged.dimension == r else {
            throw PatchStatisticsError.shapeMismatch(what: "k-means partial (O · r)", expected: o * r, actual: merged.centroidCount * merged.dimension)
        }
        guard merged.patchCount > 0 else { throw PatchStatisticsError.noPatches }
        var next = centroids
        var reseededNow = [Int]()
        var candidate = 0
        for j in 0..<o {
            if merged.counts[j] == 0 {
                guard candidate < merged.candidates.count else { continue }  // waits for the next pass
                for k in 0..<r { next[j * r + k] = merged.candidates.values[candidate * r + k] }
                candidate += 1
                reseededNow.append(j)
                continue
            }
            for k in 0..<r {
                next[j * r + k] = Double(merged.sums[j * r + k]) * SphericalKMeansPartial.unit + settings.damping * centroids[j * r + k]
            }
            if !Self.normalise(&next, row: j, dimension: r) {
                for k in 0..<r { next[j * r + k] = centroids[j * r + k] }  // Σ s u = 0 without damping: keep
            }
        }
        let objective = merged.objective
        let previous = objectives.last
        centroids = next
        objectives.append(objective)
        reseeded.append(reseededNow)
        patchCount = merged.patchCount
        skippedPatches = merged.skippedPatches
        if let previous, settings.tolerance > 0, reseededNow.isEmpty, previous - objective <= settings.tolerance * previous {
            stopReason = .converged
        } else if objectives.count >= settings.maxIterations {
            stopReason = .iterationCap
        }
    }

    /// The re-seeding sample of the current pass.
    private func candidateSample() -> PatchSample {
        PatchSample(dimension: dimension, capacity: settings.reseedCandidates,
                    sampler: Philox(seed: seed, stream: Philox.stream("kmeans.reseed", layer, group, iteration)))
    }

    /// Scales row `row` of `(·, dimension)` `values` to unit norm; `false` (row unchanged) when it is zero.
    @discardableResult
    static func normalise(_ values: inout [Double], row: Int, dimension r: Int) -> Bool {
        var norm = 0.0
        for k in 0..<r { norm += values[row * r + k] * values[row * r + k] }
        norm = norm.squareRoot()
        guard norm > 0 else { return false }
        for k in 0..<r { values[row * r + k] /= norm }
        return true
    }
}
