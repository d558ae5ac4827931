import Foundation
import MagicInitCore

/// Already preprocessed network inputs read from a file (`mi-coordinator --inputs`): one
/// float32 tensor `(N, C, H, W)` — N images, C channels (1 for greyscale), H × W pixels —
/// used as they are: no decoding, resizing or mean subtraction.
///
/// Formats, by extension: `.safetensors` holding exactly one tensor (any name), or `.npy`
/// (``NPY``).
public enum InputTensors {
    /// The extensions ``read(path:)`` accepts.
    public static let extensions = ["safetensors", "npy"]

    /// Reads the input tensor of `path`.
    /// - Returns: `(N, C, H, W)` float32, N, C, H, W ≥ 1, every value finite.
    /// - Throws: ``FormatError/unreadable(path:reason:)``, ``SafetensorsError`` or ``NPYError``
    ///   for a damaged file, or ``InputTensorsError`` naming the file: another extension,
    ///   a safetensors file with other than one tensor, a rank other than 4, an empty axis,
    ///   a value that is not finite.
    public static func read(path: String) throws -> Tensor {
        let tensor: Tensor
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "safetensors":
            let file = try Safetensors.read(path: path)
            guard file.tensors.count == 1, let only = file.tensors.first else {
                throw InputTensorsError.tensorCount(file: path, names: file.tensors.keys.sorted())
            }
            tensor = only.value
        case "npy":
            tensor = try NPY.read(path: path)
        default:
            throw InputTensorsError.unknownExtension(file: path)
        }
        guard tensor.shape.count == 4 else { throw InputTensorsError.rank(file: path, shape: tensor.shape) }
        guard tensor.shape.allSatisfy({ $0 >= 1 }) else { throw InputTensorsError.emptyAxis(file: path, shape: tensor.shape) }
        if let bad = tensor.data.firstIndex(where: { !$0.isFinite }) {
            let perImage = tensor.count / tensor.shape[0]
            throw InputTensorsError.notFinite(file: path, image: bad / perImage, value: tensor.data[bad])
        }
        return tensor
    }

    /// Checks that `tensor` `(N, C, H, W)` fits a network whose per-image input is
    /// `inputShape` `(C, H, W)`.
    /// - Throws: ``InputTensorsError/shapeMismatch(file:shape:networkInput:)``.
    public static func check(_ tensor: Tensor, fits inputShape: [Int], file: String) throws {
        guard Array(tensor.shape.dropFirst()) == inputShape else {
            throw InputTensorsError.shapeMismatch(file: file, shape: tensor.shape, networkInput: inputShape)
        }
    }
}

/// Errors of an input tensor file; each names the file.
public enum InputTensorsError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownExtension(file: String)
    /// A safetensors file must hold exactly one tensor; these are its names.
    case tensorCount(file: String, names: [String])
    case rank(file: String, shape: [Int])
    case emptyAxis(file: String, shape: [Int])
    case notFinite(file: String, image: Int, value: Float)
    /// The tensor `(N, C, H, W)` does not fit the network's per-image input `(C, H, W)`.
    case shapeMismatch(file: String, shape: [Int], networkInput: [Int])

    public var description: String {
        switch self {
        case .unknownExtension(let file):
            "\(file): expected a .safetensors (one tensor) or .npy file of float32 inputs (N, C, H, W)"
        case .tensorCount(let file, let names):
            "\(file): holds \(names.count) tensors (\(names.joined(separator: ", "))); --inputs needs exactly one, (N, C, H, W)"
        case .rank(let file, let shape):
            "\(file): inputs of shape \(describeShape(shape)) have rank \(shape.count); expected (N, C, H, W)"
        case .emptyAxis(let file, let shape):
            "\(file): inputs of shape \(describeShape(shape)) hold no image; every axis of (N, C, H, W) must be at least 1"
        case .notFinite(let file, let image, let value):
            "\(file): image \(image) holds \(value); inputs must be finite"
        case .shapeMismatch(let file, let shape, let networkInput):
            "\(file): inputs of shape \(describeShape(shape)) do not fit the network's input \(describeShape(networkInput)) per image; expected (N, \(networkInput.map(String.init).joined(separator: ", ")))"
        }
    }
}
