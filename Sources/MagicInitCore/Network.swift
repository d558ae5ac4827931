/// A network definition as a user writes it: named input blobs and layers in Caffe's
/// vocabulary. Compile it into a ``Graph`` (shape inference, topological order) to run it.
public struct Network: Sendable, Hashable {
    /// An input blob and its per-image shape (no batch axis), e.g. `data` `(3, 224, 224)`.
    public struct Input: Sendable, Hashable {
        public var name: String
        public var shape: [Int]
        public init(name: String, shape: [Int]) {
            self.name = name
            self.shape = shape
        }
    }

    public var name: String
    public var inputs: [Input]
    public var layers: [Layer]

    public init(name: String, inputs: [Input], layers: [Layer]) {
        self.name = name
        self.inputs = inputs
        self.layers = layers
    }

    /// The layer called `name`, if any.
    public func layer(named name: String) -> Layer? {
        layers.first { $0.name == name }
    }
}

/// Errors found while compiling a ``Network`` into a ``Graph``. Each names the layer.
public enum GraphError: Error, Sendable, Equatable, CustomStringConvertible {
    case duplicateLayerName(String)
    case duplicateInput(String)
    case unknownBottom(layer: String, blob: String)
    case wrongBottomCount(layer: String, type: String, expected: String, actual: Int)
    case wrongTopCount(layer: String, type: String, expected: Int, actual: Int)
    case shapeMismatch(layer: String, message: String)
    case invalidParameter(layer: String, message: String)
    case cycle(layers: [String])
    case invalidBatchSize(Int)
    /// A blob or parameter (`what` names it) whose element count overflows or exceeds
    /// ``ShapeInference/maxElements``, or a layer setting above
    /// ``ShapeInference/maxHyperparameter``: refused before anything is allocated for it.
    case tooLarge(what: String, shape: [Int], limit: Int)

    public var description: String {
        switch self {
        case .duplicateLayerName(let name): "two layers are named '\(name)'"
        case .duplicateInput(let name): "input blob '\(name)' is declared twice"
        case .unknownBottom(let layer, let blob):
            "layer '\(layer)': bottom blob '\(blob)' is not produced by any earlier layer or input"
        case .wrongBottomCount(let layer, let type, let expected, let actual):
            "layer '\(layer)' (\(type)): expects \(expected) bottom blob(s), got \(actual)"
        case .wrongTopCount(let layer, let type, let expected, let actual):
            "layer '\(layer)' (\(type)): expects \(expected) top blob(s), got \(actual)"
        case .shapeMismatch(let layer, let message): "layer '\(layer)': \(message)"
        case .invalidParameter(let layer, let message): "layer '\(layer)': \(message)"
        case .cycle(let layers):
            "the layers \(layers.joined(separator: ", ")) depend on each other in a cycle"
        case .invalidBatchSize(let n): "batch size must be at least 1, got \(n)"
        case .tooLarge(let what, let shape, let limit):
            "\(what) \(describeShape(shape)) is too large: more than \(limit) \(shape.count == 1 ? "" : "elements ")(sizes are bounded before anything is allocated)"
        }
    }
}
