/// One layer of a network, in Caffe's vocabulary: it reads its `bottoms` blobs and writes
/// its `tops` blobs. A layer whose top has the same name as its bottom is in place
/// (Caffe's `top: "conv1"` after `bottom: "conv1"`); the graph gives the new value its own
/// version, so both values stay addressable.
public struct Layer: Sendable, Hashable {
    /// Unique within the network; also the prefix of the layer's parameter keys.
    public var name: String
    public var kind: LayerKind
    public var bottoms: [String]
    public var tops: [String]

    public init(name: String, kind: LayerKind, bottoms: [String], tops: [String]) {
        self.name = name
        self.kind = kind
        self.bottoms = bottoms
        self.tops = tops
    }
}

/// What a layer computes. Every case is supported forward and backward by the engine.
public enum LayerKind: Sendable, Hashable {
    /// Caffe `Convolution`: `(N, I, H, W) → (N, O, H', W')`,
    /// `H' = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1`; weights `(O, I/groups, kH, kW)`, bias `(O)`.
    case convolution(ConvolutionParameters)
    /// Caffe `Deconvolution` (PyTorch `ConvTranspose2d`): `(N, I, H, W) → (N, O, H', W')`,
    /// `H' = s(H − 1) + d(k − 1) + 1 − 2p`; weights `(I, O/groups, kH, kW)`, bias `(O)`.
    case deconvolution(ConvolutionParameters)
    /// Caffe `InnerProduct`: flattens axes 1… to `I`; `(N, I) → (N, O)`; weights `(O, I)`, bias `(O)`.
    case innerProduct(InnerProductParameters)
    /// `max(x, 0) + negativeSlope · min(x, 0)` (Caffe `ReLU`, leaky when the slope is non-zero).
    case relu(negativeSlope: Float)
    /// `1 / (1 + e^−x)`.
    case sigmoid
    /// `tanh(x)`.
    case tanh
    /// Caffe `LRN` across channels: `x / (k + α/n · Σ x²)^β` over `n` neighbouring channels.
    case lrn(LRNParameters)
    /// Caffe `Pooling` (max or average; ceil rounding by default; global).
    case pooling(PoolingParameters)
    /// Identity at inference (MagicInit never trains); the ratio is kept for export.
    case dropout(ratio: Float)
    /// Caffe `Concat` along `axis` (1 = channels).
    case concat(axis: Int)
    /// Caffe `Eltwise` over bottoms of identical shape.
    case eltwise(EltwiseParameters)
    /// Softmax along `axis`.
    case softmax(axis: Int)
    /// Caffe `Flatten`: merges axes `axis…endAxis` (negative counts from the end).
    case flatten(axis: Int, endAxis: Int)
    /// Caffe `Reshape` with a full target shape: `0` copies the bottom's extent, `-1` is inferred.
    case reshape(shape: [Int])
    /// Caffe `BatchNorm` with global statistics: `(x − mean/f) / √(var/f + eps)` where `f`
    /// is the stored moving-average factor (Caffe: `f = 0` makes mean and variance 0).
    /// Parameters: mean `(C)`, variance `(C)`, factor `(1)`.
    case batchNorm(eps: Float)
    /// Caffe `Scale` on axis 1 with one bottom: `γ_c x + β_c`; parameters γ `(C)` and, with
    /// `bias`, β `(C)`.
    case scale(bias: Bool)

    /// Caffe's layer type name, as written in a prototxt.
    public var caffeType: String {
        switch self {
        case .convolution: "Convolution"
        case .deconvolution: "Deconvolution"
        case .innerProduct: "InnerProduct"
        case .relu: "ReLU"
        case .sigmoid: "Sigmoid"
        case .tanh: "TanH"
        case .lrn: "LRN"
        case .pooling: "Pooling"
        case .dropout: "Dropout"
        case .concat: "Concat"
        case .eltwise: "Eltwise"
        case .softmax: "Softmax"
        case .flatten: "Flatten"
        case .reshape: "Reshape"
        case .batchNorm: "BatchNorm"
        case .scale: "Scale"
        }
    }

    /// Whether this is an affine layer in the paper's sense (§2): convolution, inner
    /// product or deconvolution.
    public var isAffine: Bool {
        switch self {
        case .convolution, .deconvolution, .innerProduct: true
        default: false
        }
    }
}

/// A 2-D extent or offset `(height, width)`, in elements.
public struct Size2: Sendable, Hashable, CustomStringConvertible {
    public var h: Int
    public var w: Int
    public init(_ h: Int, _ w: Int) { self.h = h; self.w = w }
    public init(_ both: Int) { self.h = both; self.w = both }
    public var description: String { h == w ? "\(h)" : "\(h)×\(w)" }
}

/// Convolution and deconvolution hyper-parameters (Caffe `ConvolutionParameter`).
public struct ConvolutionParameters: Sendable, Hashable {
    public var numOutput: Int
    public var kernel: Size2
    public var stride: Size2
    public var pad: Size2
    public var dilation: Size2
    public var groups: Int
    public var biasTerm: Bool

    public init(numOutput: Int, kernel: Size2, stride: Size2 = Size2(1), pad: Size2 = Size2(0),
                dilation: Size2 = Size2(1), groups: Int = 1, biasTerm: Bool = true) {
        self.numOutput = numOutput
        self.kernel = kernel
        self.stride = stride
        self.pad = pad
        self.dilation = dilation
        self.groups = groups
        self.biasTerm = biasTerm
    }
}

/// Inner product hyper-parameters (Caffe `InnerProductParameter`, axis 1).
public struct InnerProductParameters: Sendable, Hashable {
    public var numOutput: Int
    public var biasTerm: Bool
    public init(numOutput: Int, biasTerm: Bool = true) {
        self.numOutput = numOutput
        self.biasTerm = biasTerm
    }
}

/// Local response normalisation across channels (Caffe `LRNParameter`, `ACROSS_CHANNELS`).
public struct LRNParameters: Sendable, Hashable {
    /// Number of channels summed over (odd).
    public var localSize: Int
    public var alpha: Float
    public var beta: Float
    public var k: Float
    public init(localSize: Int = 5, alpha: Float = 1e-4, beta: Float = 0.75, k: Float = 1) {
        self.localSize = localSize
        self.alpha = alpha
        self.beta = beta
        self.k = k
    }
}

/// Pooling hyper-parameters (Caffe `PoolingParameter`).
public struct PoolingParameters: Sendable, Hashable {
    public enum Method: String, Sendable, Hashable { case max, average }
    /// Output-size rounding: Caffe rounds up (`ceil`), PyTorch down by default (`floor`).
    public enum RoundMode: String, Sendable, Hashable { case ceil, floor }

    public var method: Method
    /// Ignored when `global` is set (the kernel is then the whole input plane).
    public var kernel: Size2
    public var stride: Size2
    public var pad: Size2
    public var global: Bool
    public var roundMode: RoundMode

    public init(method: Method, kernel: Size2 = Size2(1), stride: Size2 = Size2(1),
                pad: Size2 = Size2(0), global: Bool = false, roundMode: RoundMode = .ceil) {
        self.method = method
        self.kernel = kernel
        self.stride = stride
        self.pad = pad
        self.global = global
        self.roundMode = roundMode
    }
}

/// Element-wise combination (Caffe `EltwiseParameter`).
public struct EltwiseParameters: Sendable, Hashable {
    public enum Operation: String, Sendable, Hashable { case sum, product, max }
    public var operation: Operation
    /// Per-bottom coefficients for `sum` (empty = all 1).
    public var coefficients: [Float]
    public init(operation: Operation, coefficients: [Float] = []) {
        self.operation = operation
        self.coefficients = coefficients
    }
}
