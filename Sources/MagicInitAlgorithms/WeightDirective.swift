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
    case affine(layer: String, rowScale: [Double], columnScale: [Double], shift: [Double])
    /// Algorithm 1's normalisation of `layer` (§3.1, docs/DESIGN.md §2), which ends the
    /// layer's step: `W[o, …] *= scale[o]`, `b[o] = b[o] · scale[o] + shift[o]` (`scale =
    /// 1/σ`, `shift = β − μ/σ`; the weights change as with ``affine(layer:rowScale:columnScale:shift:)``
    /// with no column scale). A replica holding this layer's output for the step maps it
    /// the same way, `scale[c] · z + shift[c]`, and the next step starts from it (no re-run).
    case normalize(layer: String, scale: [Double], shift: [Double])
    /// Set a parameter to explicit values (pretrained or data-driven weights).
    case set(key: String, value: Tensor)

    /// The layer the directive changes.
    public var layer: String {
        switch self {
        case .gaussian(let layer, _, _), .redrawRows(let layer, _, _, _, _), .affine(let layer, _, _, _), .normalize(let layer, _, _): layer
        case .set(let key, _): String(key[..<(key.lastIndex(of: ".") ?? key.endIndex)])
        }
    }
}

/// Gaussian starting weights, identical on every replica: element `e` of a layer's weight
/// blob is `Float(std) · g`, `g` draw `e` of stream `("gaussian " + layer, attempt)` (see
/// ``Philox``'s `fillGaussians`).
public enum GaussianWeights {
    /// A fresh tensor of Gaussian weights for `spec`.
    public static func generate(spec: ParameterSpec, seed: UInt64, std: Double, attempt: Int = 0) -> Tensor {
        Tensor(shape: spec.shape, data: generator(spec, seed: seed, attempt: attempt).gaussians(count: spec.count, std: std))
    }

    /// Overwrites `weights`, the blob of `spec`, with its Gaussian draw, in place (no second
    /// weight-sized array).
    /// - Precondition: `weights.count == spec.count`.
    public static func fill(_ weights: inout Tensor, spec: ParameterSpec, seed: UInt64, std: Double, attempt: Int = 0) {
        weights.data.withUnsafeMutableBufferPointer { fill($0, spec: spec, seed: seed, std: std, attempt: attempt) }
    }

    /// ``fill(_:spec:seed:std:attempt:)`` into a buffer of `spec.count` floats.
    public static func fill(_ weights: UnsafeMutableBufferPointer<Float>, spec: ParameterSpec, seed: UInt64, std: Double, attempt: Int = 0) {
        precondition(weights.count == spec.count, "\(spec.key) holds \(weights.count) elements, expected \(spec.count)")
        generator(spec, seed: seed, attempt: attempt).fillGaussians(weights, std: std)
    }

    /// Overwrites rows `rows` (outermost index `o`) of `weights`, the blob of `spec`, with
    /// the values a full draw gives them (row `o` holds draws `o · n ..< (o + 1) · n`, `n`
    /// elements per row), leaving the other rows untouched; only those rows are generated.
    /// - Precondition: `weights.count == spec.count`, every row in `0 ..< spec.shape[0]`.
    /// - Complexity: O(rows.count · n).
    public static func fillRows(_ rows: [Int], of weights: inout Tensor, spec: ParameterSpec, seed: UInt64, std: Double, attempt: Int) {
        weights.data.withUnsafeMutableBufferPointer { fillRows(rows, of: $0, spec: spec, seed: seed, std: std, attempt: attempt) }
    }

    /// ``fillRows(_:of:spec:seed:std:attempt:)`` into a buffer of `spec.count` floats.
    public static func fillRows(_ rows: [Int], of buffer: UnsafeMutableBufferPointer<Float>, spec: ParameterSpec, seed: UInt64, std: Double, attempt: Int) {
        precondition(buffer.count == spec.count, "\(spec.key) holds \(buffer.count) elements, expected \(spec.count)")
        let philox = generator(spec, seed: seed, attempt: attempt)
        let rowLength = spec.count / max(spec.shape[0], 1)
        for row in rows {
            precondition(row >= 0 && row < spec.shape[0], "row \(row) of \(spec.key) outside 0..<\(spec.shape[0])")
            let range = (row * rowLength)..<((row + 1) * rowLength)
            philox.fillGaussians(UnsafeMutableBufferPointer(rebasing: buffer[range]), startingAt: range.lowerBound, std: std)
        }
    }

    private static func generator(_ spec: ParameterSpec, seed: UInt64, attempt: Int) -> Philox {
        Philox(seed: seed, stream: Philox.stream("gaussian " + spec.layer, attempt))
    }
}
