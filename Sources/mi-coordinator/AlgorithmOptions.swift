import ArgumentParser
import MagicInitAlgorithms

/// The algorithm settings of a run (Krähenbühl et al. 2016, §3.1–3.2), shared by every
/// front end that starts one.
struct AlgorithmOptions: ParsableArguments {
    @Option(help: "What to run: both (Gaussian start, Algorithm 1, Algorithm 2), within-layer (Algorithm 1 only), between-layer (Algorithm 2 only, on --weights), pretrained-both (Algorithms 1 and 2 on --weights).")
    var mode: InitOptions.Mode = .both

    @Option(help: "Target mean β of every channel of every affine layer (reference code: 0.1; a negative value takes the = form, --bias=-0.1).")
    var bias = 0.1

    @Option(help: "Damping α of Algorithm 2's correction r = (C_k / C̄)^(α/2) (paper: 0.25).")
    var damping = 0.25

    @Option(help: "Algorithm 2 stops when every layer's change rate is within this fraction of the geometric mean.")
    var tolerance = 0.01

    @Option(help: "Algorithm 2's measurement passes (forward + backward) at most, the first one and the verification pass included.")
    var iterations = InitOptions().maxIterations

    @Option(help: "Damped correction steps Algorithm 2 takes on its closed-form model of the change rates per measurement pass, at most (1: the paper's plain iteration).")
    var modelSteps = InitOptions().modelStepsPerPass

    @Option(help: "Change rate Algorithm 2 balances: weight-gradient (what SGD sees: sqrt(mean((∂ℓ/∂W)²) / mean(W²)), the reference code's) or eq4 (the paper's eq. 4, a faster approximation that ignores the spatial correlation of activations and errors). The report shows both.")
    var rateMeasure: InitOptions.RateMeasure = InitOptions().rateMeasure

    @Option(help: "Seed of every random draw (Gaussian weights, top gradients η).")
    var seed: UInt64 = 0

    @Option(help: "Redraws of a dead (constant) channel before it is left and reported.")
    var deadChannelRetries = 3

    @Option(help: "Images of Algorithm 2's verification pass when its closed form is exact (ReLU/pooling networks): a real forward + backward pass over the first chunks holding this many images must reproduce the predicted change rates, else every image is measured again. 0: every image.")
    var verificationImages = InitOptions().verificationImages

    func validate() throws {
        guard damping > 0 && damping <= 2 else { throw ValidationError("--damping must be in (0, 2], got \(damping)") }
        guard tolerance > 0 else { throw ValidationError("--tolerance must be positive, got \(tolerance)") }
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1, got \(iterations)") }
        guard modelSteps >= 1 else { throw ValidationError("--model-steps must be at least 1, got \(modelSteps)") }
        guard bias.isFinite else { throw ValidationError("--bias must be a finite number") }
        guard deadChannelRetries >= 0 else { throw ValidationError("--dead-channel-retries must be ≥ 0") }
        guard verificationImages >= 0 else { throw ValidationError("--verification-images must be ≥ 0 (0: every image)") }
    }

    var initOptions: InitOptions {
        var o = InitOptions()
        o.mode = mode
        o.bias = bias
        o.damping = damping
        o.tolerance = tolerance
        o.maxIterations = iterations
        o.modelStepsPerPass = modelSteps
        o.rateMeasure = rateMeasure
        o.seed = seed
        o.deadChannelRetries = deadChannelRetries
        o.verificationImages = verificationImages
        return o
    }
}

extension InitOptions.Mode: ExpressibleByArgument {}
extension InitOptions.RateMeasure: ExpressibleByArgument {}
