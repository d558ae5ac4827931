import Foundation
import MagicInitCore
import SwiftProtobuf

/// An ONNX model translated onto MagicInit's graph IR, keeping the original file so the
/// weights can be written back with everything else unchanged.
///
/// Each IR parameter is bound to the ONNX tensor (an initializer or a `Constant` node) it
/// came from, possibly reshaped (a bias stored `(1, C, 1, 1)`) or transposed (a `MatMul` or
/// `Gemm transB=0` weight stored `(I, O)`). When the model came from `torch.onnx.export`,
/// initializer names are PyTorch state-dict names (`features.0.weight`) and an affine layer
/// is named after its weight minus `.weight`, so its IR keys equal the state-dict keys.
public struct ONNXModel: Sendable {
    /// Operators that MagicInit translates (default domain).
    public static let supportedOperators = [
        "Add", "AveragePool", "BatchNormalization", "Concat", "Constant", "Conv", "ConvTranspose",
        "Dropout", "Flatten", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Identity", "LRN",
        "LeakyRelu", "MatMul", "MaxPool", "Mul", "Relu", "Reshape", "Sigmoid", "Softmax", "Tanh",
        "Transpose",
    ]

    /// The file the model was read from (used in messages).
    public let file: String
    public let network: Network
    /// The model's weights in IR layout, keyed by ``ParameterSpec/key``.
    public let parameters: ParameterSet
    /// For each network input read through a leading `Transpose` (an NHWC model exported
    /// from TensorFlow), the permutation that was absorbed: the IR input is NCHW.
    public let inputPermutations: [String: [Int]]
    /// The default-domain opset the model imports.
    public let opsetVersion: Int
    /// What was folded, assumed or rewritten, one sentence each.
    public let notes: [String]

    let proto: Onnx_ModelProto
    let bindings: [String: ONNXBinding]

    /// IR parameter key → name of the ONNX tensor holding it. Keys without an entry (the
    /// BatchNorm moving-average factor, which ONNX does not have) are synthesised.
    public var tensorNames: [String: String] { bindings.mapValues(\.tensorName) }

    /// Reads and translates the model at `path`.
    /// - Throws: ``FormatError`` if unreadable; ``ONNXError`` naming the file and node.
    public init(path: String, options: ONNXImportOptions = ONNXImportOptions()) throws {
        try self.init(serializedData: FileIO.read(path), file: path, options: options)
    }

    /// Translates the bytes of an ONNX model; `file` names it in messages.
    public init(serializedData data: Data, file: String = "<onnx>", options: ONNXImportOptions = ONNXImportOptions()) throws {
        let proto: Onnx_ModelProto
        do {
            proto = try Onnx_ModelProto(serializedBytes: data)
        } catch {
            throw ONNXError.malformed(file: file, message: "\(error)")
        }
        guard proto.hasGraph else { throw ONNXError.malformed(file: file, message: "the model has no graph") }
        var importer = ONNXImporter(file: file, model: proto, options: options)
        let result = try importer.run()
        self.file = file
        self.proto = proto
        self.network = result.network
        self.parameters = result.parameters
        self.bindings = result.bindings
        self.inputPermutations = result.inputPermutations
        self.opsetVersion = result.opset
        self.notes = result.notes
    }

    /// The model's bytes with the tensors bound to `parameters` replaced (parameters not in
    /// the set keep their stored values) and everything else unchanged. A BatchNorm
    /// moving-average factor `f ≠ 1` is folded into the stored mean and variance (÷ f).
    /// - Throws: ``ONNXError/parameterShapeMismatch(file:key:expected:actual:)``,
    ///   ``ONNXError/conflictingSharedTensor(file:tensor:keys:)``.
    public func serialized(with parameters: ParameterSet) throws -> Data {
        var model = proto
        for values in try storedValues(parameters).values {
            switch values.location {
            case .initializer(let i):
                ONNXTensorData.setFloats(values.data, in: &model.graph.initializer[i])
            case .constantNode(let n):
                let a = model.graph.node[n].attribute.firstIndex { $0.name == "value" }!
                ONNXTensorData.setFloats(values.data, in: &model.graph.node[n].attribute[a].t)
            }
        }
        do {
            return try model.serializedBytes()
        } catch {
            throw ONNXError.malformed(file: file, message: "cannot encode: \(error)")
        }
    }

    /// Writes ``serialized(with:)`` to `path` atomically.
    public func write(_ parameters: ParameterSet, to path: String) throws {
        try FileIO.writeAtomically(serialized(with: parameters), to: path)
    }

    /// The tensors as they would be stored in the ONNX file, keyed by ONNX tensor name and in
    /// its layout: for a model from `torch.onnx.export`, a PyTorch state dict (write it with
    /// ``Safetensors/write(_:metadata:to:)`` for `model.load_state_dict`). Tensors the set
    /// does not cover keep their stored values.
    public func stateDict(_ parameters: ParameterSet) throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        let replaced = try storedValues(parameters)
        for binding in bindings.values where result[binding.tensorName] == nil {
            let data = replaced[binding.tensorName]?.data ?? original(binding)
            result[binding.tensorName] = Tensor(shape: binding.storedShape, data: data)
        }
        return result
    }

    /// The stored (ONNX-layout) values for every tensor a parameter in `parameters` binds to.
    private func storedValues(_ parameters: ParameterSet) throws -> [String: (location: ONNXTensorLocation, data: [Float])] {
        var result: [String: (location: ONNXTensorLocation, data: [Float], key: String)] = [:]
        for key in bindings.keys.sorted() {
            let binding = bindings[key]!
            guard let tensor = parameters[key] else { continue }
            guard tensor.shape == binding.irShape else {
                throw ONNXError.parameterShapeMismatch(file: file, key: key, expected: binding.irShape, actual: tensor.shape)
            }
            var data = binding.transposed ? Self.transpose(tensor.data, rows: binding.irShape[0], columns: binding.irShape[1]) : tensor.data
            if let factorKey = binding.factorKey, let f = parameters[factorKey]?.data.first, f != 1 {
                let scale: Float = f == 0 ? 0 : 1 / f  // Caffe's BatchNorm rule
                data = data.map { $0 * scale }
            }
            if let previous = result[binding.tensorName] {
                guard previous.data == data else {
                    throw ONNXError.conflictingSharedTensor(file: file, tensor: binding.tensorName, keys: [previous.key, key])
                }
                continue
            }
            result[binding.tensorName] = (binding.location, data, key)
        }
        return result.mapValues { ($0.location, $0.data) }
    }

    private func original(_ binding: ONNXBinding) -> [Float] {
        let tensor: Onnx_TensorProto = switch binding.location {
        case .initializer(let i): proto.graph.initializer[i]
        case .constantNode(let n): proto.graph.node[n].attribute.first { $0.name == "value" }!.t
        }
        return (try? ONNXTensorData.floats(tensor)) ?? []
    }

    /// `(rows, columns)` row-major → `(columns, rows)` row-major.
    static func transpose(_ values: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        for r in 0..<rows {
            for c in 0..<columns { out[c * rows + r] = values[r * columns + c] }
        }
        return out
    }
}

/// Choices for translating an ONNX model.
public struct ONNXImportOptions: Sendable, Hashable {
    /// Per-image shapes (no batch axis, in the ONNX input's own layout) for inputs whose
    /// declared shape has unknown extents, e.g. `["x": [3, 48, 192]]`.
    public var inputShapes: [String: [Int]]

    public init(inputShapes: [String: [Int]] = [:]) {
        self.inputShapes = inputShapes
    }
}

/// Where a tensor lives in the model.
enum ONNXTensorLocation: Sendable, Hashable {
    /// Index in `graph.initializer`.
    case initializer(Int)
    /// Index in `graph.node` of a `Constant` node with a `value` tensor.
    case constantNode(Int)
}

/// How one IR parameter is stored in the ONNX file.
struct ONNXBinding: Sendable, Hashable {
    var tensorName: String
    var location: ONNXTensorLocation
    /// The tensor's dims in the file.
    var storedShape: [Int]
    /// The parameter's shape in the IR.
    var irShape: [Int]
    /// Stored as the transpose of the 2-D IR matrix (`(I, O)` for an `(O, I)` weight);
    /// otherwise the same values in the same order, only the dims differ.
    var transposed: Bool
    /// A parameter the stored values are divided by when written (BatchNorm's factor).
    var factorKey: String?
}
