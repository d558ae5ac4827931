/// Settings of one initialisation run (Krähenbühl et al. 2016, §3.1–3.2; defaults follow
/// the authors' reference code where the paper is silent).
public struct InitOptions: Sendable, Hashable, Codable {
    /// Which algorithms run.
    public enum Mode: String, Sendable, Hashable, Codable, CaseIterable {
        /// Gaussian start, Algorithm 1, then Algorithm 2 (the paper's full procedure).
        case both
        /// Gaussian start and Algorithm 1 only.
        case withinLayer = "within-layer"
        /// Algorithm 2 only, on the given weights (the paper's Table 3 rescaling of
        /// pretrained networks).
        case betweenLayer = "between-layer"
        /// Algorithm 1 then Algorithm 2 on the given weights (no Gaussian start).
        case pretrainedBoth = "pretrained-both"
    }

    /// How a layer's change rate is measured (§3.2). Both are computed from one measurement
    /// pass with the random linear loss of §3: per chunk `c` of images,
    /// `ℓ_c = Σ_{i ∈ c} η_i · z_N(i)` with `η_i ~ N(0, I)` drawn independently per image
    /// (stream `("eta", step, image)`, so an image's `η` does not depend on the chunking).
    public enum RateMeasure: String, Sendable, Hashable, Codable, CaseIterable {
        /// The paper's eq. (4): `C²_{k,j} = E[x_k(j)²] · E[‖y_k‖²] / (N_k · ‖W_k‖²)`, per
        /// column `j`, `C_k = mean_j C_{k,j}`. It drops the spatial correlation between the
        /// activations `x_k` and the back-propagated errors `y_k` (§3.2's independence
        /// assumption): a fast approximation (no backward-to-weights pass), not what SGD sees.
        case equation4 = "eq4"
        /// What SGD sees, as the authors' reference code measures it:
        ///
        ///     C_k² = E_c[ Σ (∂ℓ_c/∂W_k)² ] / Σ W_k²      (= mean((∂ℓ/∂W_k)²) / mean(W_k²))
        ///
        /// the squares of each chunk's weight gradient summed over the weights (in Float64),
        /// averaged over the chunks (merged in chunk order). The ratio between layers does
        /// not depend on the chunk size `n`: `∂ℓ_c/∂W = Σ_{i∈c} g_i` with `g_i` linear in
        /// `η_i`, and for `i ≠ i'` `E[g_i · g_i'] = 0` (independent zero-mean `η`), so
        /// `E‖∂ℓ_c/∂W_k‖² = n · E‖g_i‖²` for every layer alike; the chunk size changes only
        /// the estimator's noise (the cross terms), not its expectation up to one common factor.
        case weightGradient = "weight-gradient"
    }

    public var mode: Mode = .both
    /// Target channel mean β of every affine output (reference code: 0.1).
    public var bias: Double = 0.1
    /// Master seed of every random draw (Gaussian weights, top gradients η).
    public var seed: UInt64 = 0
    /// Standard deviation of the Gaussian starting weights (irrelevant after Algorithm 1).
    public var gaussianStd: Double = 1
    /// How often a dead channel (σ = 0) is redrawn before it is left and reported.
    public var deadChannelRetries: Int = 3

    /// The change rate Algorithm 2 balances (the report shows both after the run).
    public var rateMeasure: RateMeasure = .weightGradient
    /// Damping α of the between-layer correction `r_k = (C_k / C̄)^(α/2)` (paper: 0.25).
    public var damping: Double = 0.25
    /// Converged when every layer's rate is within this relative distance of the
    /// geometric mean (`|C_k / C̄ − 1| ≤ tolerance`).
    public var tolerance: Double = 0.01
    /// Measurement passes (forward + backward) of Algorithm 2 at most, the first one and the
    /// verification pass included (`--iterations`).
    public var maxIterations: Int = 10
    /// Damped correction steps taken on the closed-form model between two measurement
    /// passes, at most (1 reproduces the paper's plain iteration; the model is exact for
    /// homogeneous networks, so many cheap steps replace many passes there; `--model-steps`).
    public var modelStepsPerPass: Int = 1000
    /// Draw new top gradients η for every measurement pass (the reference code's habit).
    /// Off by default: every pass reuses each image's η, so passes differ only by the
    /// weights and the verification pass measures exactly what the model balanced.
    public var freshTopGradientEachPass: Bool = false
    /// Images in Algorithm 2's verification pass when the closed form is exact (homogeneous
    /// network, η reused): the first chunks holding at least this many images; 0 = every
    /// image. A real forward + backward pass over them must reproduce the change rates the
    /// model predicts for them within ``verificationTolerance``, else every image is
    /// measured again and iteration goes on by measurement.
    public var verificationImages: Int = 8
    /// Largest accepted `|measured / predicted − 1|` of a layer's change rate relative to
    /// the geometric mean of all layers' rates, in the verification pass.
    /// Seen on VGG-16: 1e-5 to 3.4e-4 (a cached and a recomputed forward pass can route a
    /// gradient differently where pooled values or ReLU inputs tie within rounding); a wrong
    /// model is off by far more.
    public var verificationTolerance: Double = 5e-3

    /// Whether Algorithm 1 should keep every affine layer's input for Algorithm 2's first
    /// measurement (weight gradients balanced after Algorithm 1): then that measurement is
    /// one backward pass (to the data and the weights), not a forward and a backward pass.
    public var keepsAffineInputs: Bool { rateMeasure == .weightGradient && (mode == .both || mode == .pretrainedBoth) }

    public init() {}
}
