import MagicInitCore

/// A change to the weights of one affine layer, applied identically by every replica of the
/// network (the local engine, or each worker). Directives are small: Gaussian weights are
/// regenerated from the seed, never shipped.
public enum WeightDirective: Sendable, Equatable {
    /// Replace the weights with Gaussian draws `N(0, std²)` and the bias with 0. Element `e`
    /// of the weight blob is draw `e` of `Philox(seed, stream("gaussian " + layer, 0))`.
    case gaussian(layer: String, seed: UInt64, std: Double)
    /// Redraw the weight rows (output channels) `rows` from attempt `attempt` of the same
    /// generator (dead-channel recovery, Algorithm 1 step 6), bias of those rows 0.
    case redrawRows(layer: String, rows: [Int], seed: UInt64, std: Double, attempt: Int)
    /// `W[o, c, …] *= rowScale[o] · columnScale[c]`, `b[o] = b[o] · rowScale[o] + shift[o]`:
    /// Algorithm 1's normalisation (`rowScale = 1/σ`, `shift = β − μ/σ`) and Algorithm 2's
    /// correction (`rowScale = r_k`, `columnScale = 1/r` of the producer: the undo).
    /// `columnScale` has one entry per channel of the layer's bottom blob (empty = all 1).
    /// A replica holding this layer's output for the current Algorithm 1 step applies the
    /// same per-channel affine map to it (no re-run).
    case affine(layer: String, rowScale: [Double], columnScale: [Double], shift: [Double])
    /// Set a parameter to explicit values (pretrained or data-driven weights).
    case set(key: String, value: Tensor)

    /// The layer the directive changes.
    public var layer: String {
        switch self {
        case .gaussian(let layer, _, _), .redrawRows(let layer, _, _, _, _), .affine(let layer, _, _, _): layer
        case .set(let key, _): String(key[..<(key.lastIndex(of: ".") ?? key.endIndex)])
        }
    }
}

/// Gaussian starting weights, identical on every replica: element `e` of a layer's weight
/// blob is draw `e` of stream `("gaussian " + layer, attempt)`.
public enum GaussianWeights {
    public static func generate(spec: ParameterSpec, seed: UInt64, std: Double, attempt: Int = 0) -> Tensor {
        Tensor(shape: spec.shape, data: Philox(seed: seed, stream: Philox.stream("gaussian " + spec.layer, attempt)).gaussians(count: spec.count, std: std))
    }
}
