import MagicInitCore

/// Errors reading or writing ONNX models. Each names the file and, where there is one, the
/// node (its name and op type) or tensor.
public enum ONNXError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Operators MagicInit cannot run, each with the nodes that use it.
    public struct UnsupportedOperator: Sendable, Equatable {
        public var opType: String
        public var nodes: [String]
    }

    case malformed(file: String, message: String)
    case unsupportedOperators(file: String, operators: [UnsupportedOperator], supported: [String])
    /// A supported operator used in a way MagicInit cannot run (asymmetric padding, …).
    case unsupportedUse(file: String, node: String, opType: String, message: String)
    /// An input that must be a constant (weights, a shape) is computed at run time.
    case notConstant(file: String, node: String, opType: String, input: String)
    case undefinedValue(file: String, node: String, value: String)
    case missingInputShape(file: String, input: String, message: String)
    case unsupportedTensor(file: String, tensor: String, message: String)
    /// The translated network does not compile (shapes do not fit).
    case invalidNetwork(file: String, message: String)
    case parameterShapeMismatch(file: String, key: String, expected: [Int], actual: [Int])
    /// Two parameters stored in one shared ONNX tensor received different values.
    case conflictingSharedTensor(file: String, tensor: String, keys: [String])

    public var description: String {
        switch self {
        case .malformed(let file, let message):
            "\(file): not a valid ONNX model: \(message)"
        case .unsupportedOperators(let file, let operators, let supported):
            "\(file): MagicInit cannot run " + operators.map { op in
                let shown = op.nodes.prefix(3).map { "'\($0)'" }.joined(separator: ", ")
                let more = op.nodes.count > 3 ? " and \(op.nodes.count - 3) more" : ""
                return "\(op.opType) (node\(op.nodes.count == 1 ? "" : "s") \(shown)\(more))"
            }.joined(separator: "; ") + ". Supported operators: \(supported.joined(separator: ", "))"
        case .unsupportedUse(let file, let node, let opType, let message):
            "\(file): node '\(node)' (\(opType)): \(message)"
        case .notConstant(let file, let node, let opType, let input):
            "\(file): node '\(node)' (\(opType)): input '\(input)' must be a constant (an initializer or a Constant node)"
        case .undefinedValue(let file, let node, let value):
            "\(file): node '\(node)' reads '\(value)', which no earlier node, input or initializer defines"
        case .missingInputShape(let file, let input, let message):
            "\(file): input '\(input)': \(message)"
        case .unsupportedTensor(let file, let tensor, let message):
            "\(file): tensor '\(tensor)': \(message)"
        case .invalidNetwork(let file, let message):
            "\(file): \(message)"
        case .parameterShapeMismatch(let file, let key, let expected, let actual):
            "\(file): parameter '\(key)' has shape \(describeShape(actual)); the network needs \(describeShape(expected))"
        case .conflictingSharedTensor(let file, let tensor, let keys):
            "\(file): tensor '\(tensor)' is shared by \(keys.joined(separator: ", ")), which were given different values"
        }
    }
}
