/// What a learnable (or stored) parameter blob of a layer is.
public enum ParameterRole: String, Sendable, Hashable, CaseIterable {
    case weight, bias
    /// BatchNorm's accumulated mean (Caffe blob 0).
    case runningMean = "running_mean"
    /// BatchNorm's accumulated variance (Caffe blob 1).
    case runningVar = "running_var"
    /// BatchNorm's moving-average normaliser (Caffe blob 2; no PyTorch counterpart).
    case movingAverageFactor = "moving_average_factor"
}

/// One parameter blob of a layer. Its ``key`` (`conv1.weight`) is both the PyTorch-style
/// state-dict key and, through ``layer`` and ``caffeBlobIndex``, its place in a caffemodel.
public struct ParameterSpec: Sendable, Hashable {
    public var layer: String
    public var role: ParameterRole
    public var shape: [Int]

    public init(layer: String, role: ParameterRole, shape: [Int]) {
        self.layer = layer
        self.role = role
        self.shape = shape
    }

    /// `"<layer>.<role>"`, e.g. `conv1.weight`, `bn1.running_var`.
    public var key: String { "\(layer).\(role.rawValue)" }

    /// Index in the Caffe layer's `blobs` list.
    public var caffeBlobIndex: Int {
        switch role {
        case .weight, .runningMean: 0
        case .bias, .runningVar: 1
        case .movingAverageFactor: 2
        }
    }

    public var count: Int { shape.reduce(1, *) }
}

/// Parameter values keyed by ``ParameterSpec/key``.
public typealias ParameterSet = [String: Tensor]

extension LayerKind {
    /// The parameter blobs of a layer of this kind whose (first) bottom has shape `input`
    /// (batch axis included), in Caffe blob order.
    func parameterSpecs(layer: String, input: [Int]) -> [ParameterSpec] {
        func spec(_ role: ParameterRole, _ shape: [Int]) -> ParameterSpec {
            ParameterSpec(layer: layer, role: role, shape: shape)
        }
        switch self {
        case .convolution(let p):
            let weight = spec(.weight, [p.numOutput, input[1] / p.groups, p.kernel.h, p.kernel.w])
            return p.biasTerm ? [weight, spec(.bias, [p.numOutput])] : [weight]
        case .deconvolution(let p):
            let weight = spec(.weight, [input[1], p.numOutput / p.groups, p.kernel.h, p.kernel.w])
            return p.biasTerm ? [weight, spec(.bias, [p.numOutput])] : [weight]
        case .innerProduct(let p):
            let fanIn = input.dropFirst().reduce(1, *)
            let weight = spec(.weight, [p.numOutput, fanIn])
            return p.biasTerm ? [weight, spec(.bias, [p.numOutput])] : [weight]
        case .batchNorm:
            return [spec(.runningMean, [input[1]]), spec(.runningVar, [input[1]]),
                    spec(.movingAverageFactor, [1])]
        case .scale(let bias):
            let gamma = spec(.weight, [input[1]])
            return bias ? [gamma, spec(.bias, [input[1]])] : [gamma]
        default:
            return []
        }
    }
}
