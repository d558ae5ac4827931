import MagicInitCore

/// Errors reading or writing Caffe files. Each names the file and, where there is one, the
/// layer and the position in the text.
public enum CaffeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The prototxt is not valid protobuf text format.
    case syntax(file: String, position: TextPosition, message: String)
    /// A field has a value of the wrong kind, or a name Caffe does not know.
    case invalidField(file: String, position: TextPosition?, field: String, message: String)
    /// A caffemodel is not a binary `NetParameter`.
    case malformedBinary(file: String, message: String)
    case unsupportedLayerType(file: String, layer: String, type: String, supported: [String])
    /// A layer of a supported type uses a setting MagicInit cannot run.
    case unsupportedSetting(file: String, layer: String, message: String)
    /// The network's input shape cannot be determined.
    case missingInputShape(file: String, input: String, message: String)
    case noInputs(file: String)
    case blobCountMismatch(file: String, layer: String, expected: Int, actual: Int)
    case blobShapeMismatch(file: String, layer: String, blob: Int, expected: [Int], actual: [Int])
    case blobDataCount(file: String, layer: String, blob: Int, shape: [Int], actual: Int)
    /// A parameter needed to write a caffemodel is absent or has the wrong shape.
    case missingParameter(file: String, key: String)
    case parameterShapeMismatch(file: String, key: String, expected: [Int], actual: [Int])

    public var description: String {
        switch self {
        case .syntax(let file, let position, let message):
            "\(file):\(position.line):\(position.column): syntax error: \(message)"
        case .invalidField(let file, let position, let field, let message):
            "\(file)\(position.map { ":\($0.line):\($0.column)" } ?? ""): field '\(field)': \(message)"
        case .malformedBinary(let file, let message):
            "\(file): not a Caffe binary NetParameter (caffemodel): \(message)"
        case .unsupportedLayerType(let file, let layer, let type, let supported):
            "\(file): layer '\(layer)' has type '\(type)', which MagicInit does not support; supported types: \(supported.joined(separator: ", "))"
        case .unsupportedSetting(let file, let layer, let message):
            "\(file): layer '\(layer)': \(message)"
        case .missingInputShape(let file, let input, let message):
            "\(file): input '\(input)': \(message)"
        case .noInputs(let file):
            "\(file): the network declares no input (no input:, input_shape, Input, Data or ImageData layer)"
        case .blobCountMismatch(let file, let layer, let expected, let actual):
            "\(file): layer '\(layer)' has \(actual) weight blob(s); the network needs \(expected)"
        case .blobShapeMismatch(let file, let layer, let blob, let expected, let actual):
            "\(file): layer '\(layer)' blob \(blob) has shape \(describeShape(actual)); the network needs \(describeShape(expected))"
        case .blobDataCount(let file, let layer, let blob, let shape, let actual):
            "\(file): layer '\(layer)' blob \(blob) of shape \(describeShape(shape)) holds \(actual) values"
        case .missingParameter(let file, let key):
            "\(file): no value for parameter '\(key)'"
        case .parameterShapeMismatch(let file, let key, let expected, let actual):
            "\(file): parameter '\(key)' has shape \(describeShape(actual)); the network needs \(describeShape(expected))"
        }
    }
}
