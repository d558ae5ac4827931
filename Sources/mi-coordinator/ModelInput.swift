import Foundation
import MagicInitCluster
import MagicInitCore
import MagicInitFormats
import MagicInitImages
import MagicInitWire

/// The network of a run — built-in, a Caffe prototxt, or an ONNX file — with what it
/// brings along (ONNX weights, a Caffe data layer's preprocessing), and how weights go back
/// into each output format.
struct ModelInput {
    var network: Network
    /// Short name for default output files.
    var name: String
    /// How workers obtain the same network.
    var wire: RunConfiguration.Model
    var onnx: ONNXModel?
    var caffePreprocessing: CaffePreprocessing?

    /// - Throws: the format's error (naming the file and the position, layer or node).
    static func load(builtin: String, model: String?) throws -> ModelInput {
        guard let model else {
            guard let network = BuiltinNetworks.network(named: builtin) else {
                throw ModelInputError.unknownBuiltin(builtin)
            }
            return ModelInput(network: network, name: builtin.lowercased(), wire: .builtin(name: builtin.lowercased()))
        }
        let base = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        switch URL(fileURLWithPath: model).pathExtension.lowercased() {
        case "prototxt", "pbtxt":
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: model)) } catch {
                throw ModelInputError.unreadable(model, (error as NSError).localizedDescription)
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw ModelInputError.unreadable(model, "not UTF-8 text; a .prototxt is the text file that describes the layers (weights go in --weights)")
            }
            let caffe = try Caffe.parsePrototxt(text, file: model)
            return ModelInput(network: caffe.network, name: base, wire: .caffePrototxt(text: text), caffePreprocessing: caffe.preprocessing)
        case "onnx":
            let onnx = try ONNXModel(path: model)
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: model)))
            return ModelInput(network: onnx.network, name: base, wire: .onnx(bytes: bytes), onnx: onnx)
        default:
            throw ModelInputError.unknownModelExtension(model)
        }
    }

    /// The preprocessing to use: the user's choice, else what the model implies (a Caffe data
    /// layer's BGR mean values; ImageNet statistics for ONNX; Caffe's for built-ins).
    func preprocessing(_ choice: PreprocessingPreset?) -> Preprocessing {
        if let choice { return choice.preset }
        if let p = caffePreprocessing, !p.meanValues.isEmpty {
            let m = p.meanValues.count == 3 ? p.meanValues : [Float](repeating: p.meanValues[0], count: 3)
            let scale = p.scale > 0 ? p.scale : 1
            return Preprocessing(channelOrder: .bgr, mean: SIMD3(m[0], m[1], m[2]), std: SIMD3(repeating: 1 / scale))
        }
        return onnx != nil ? .imagenet : .caffe
    }

    /// Starting weights from `path` (.safetensors keyed like the output, or a .caffemodel
    /// matched by layer name), or the ONNX file's own weights when `path` is nil.
    func startingWeights(_ path: String?) throws -> ParameterSet? {
        guard let path else { return onnx?.parameters }
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "caffemodel":
            return try Caffe.readWeights(path: path, for: Graph(network)).parameters
        case "safetensors":
            let tensors = try Safetensors.read(path: path).tensors
            guard let onnx else { return tensors }
            // ONNX runs write safetensors under the ONNX tensor names; read them back the same way.
            var byKey: ParameterSet = [:]
            for (key, name) in onnx.tensorNames { if let t = tensors[name] ?? tensors[key] { byKey[key] = t } }
            return byKey
        default:
            throw ModelInputError.unknownWeightsExtension(path)
        }
    }

    /// Writes `parameters` in the format of `path`'s extension (atomically).
    func write(_ parameters: ParameterSet, to path: String) throws {
        switch try ModelFormat(path: path) {
        case .safetensors:
            // ONNX tensor names and layouts; where the exporter merged equal initializers
            // (e.g. several all-zero biases) into one shared tensor that now needs different
            // values, the layers' own keys — PyTorch's state-dict names — are used instead.
            var tensors = parameters
            if let onnx {
                do { tensors = try onnx.stateDict(parameters) } catch let error as ONNXError {
                    // Only a shared tensor needing different values falls back; other errors stop the run.
                    guard case .conflictingSharedTensor = error else { throw error }
                    FileHandle.standardError.write(Data("[formats] \(error); writing the parameters under their layer keys\n".utf8))
                }
            }
            try Safetensors.write(tensors, metadata: ["format": "pt", "network": network.name, "generator": "MagicInit"], to: path)
        case .caffemodel:
            try Caffe.writeCaffemodel(parameters, graph: Graph(network), to: path)
        case .onnx:
            guard let onnx else { throw ModelInputError.onnxOutputNeedsONNXModel(path) }
            try onnx.write(parameters, to: path)
        }
    }

    /// Reads back a file written by ``write(_:to:)`` (for `--verify`).
    func readBack(_ path: String) throws -> ParameterSet {
        switch try ModelFormat(path: path) {
        case .safetensors: return try startingWeights(path) ?? [:]
        case .caffemodel: return try Caffe.readWeights(path: path, for: Graph(network)).parameters
        case .onnx: return try ONNXModel(path: path).parameters
        }
    }
}

enum ModelInputError: Error, CustomStringConvertible {
    case unknownBuiltin(String)
    case unreadable(String, String)
    case unknownModelExtension(String)
    case unknownWeightsExtension(String)
    case onnxOutputNeedsONNXModel(String)
    /// The file parsed but does not describe a network MagicInit can run (shapes, wiring).
    case invalidNetwork(String, String)

    var description: String {
        switch self {
        case .unknownBuiltin(let name): "unknown network '\(name)'; built-in networks: \(BuiltinNetworks.names.joined(separator: ", "))"
        case .unreadable(let path, let reason): "\(path): cannot read: \(reason)"
        case .unknownModelExtension(let path): "--model \(path): expected a Caffe .prototxt or an .onnx file"
        case .unknownWeightsExtension(let path): "--weights \(path): expected .safetensors or .caffemodel"
        case .onnxOutputNeedsONNXModel(let path): "--output \(path): an .onnx output needs an .onnx --model (its graph is written back with the new weights)"
        case .invalidNetwork(let path, let reason): "\(path): \(reason)"
        }
    }
}
