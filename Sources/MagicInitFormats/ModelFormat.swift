/// The weight-file formats MagicInit writes, chosen by the output file's extension.
public enum ModelFormat: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Caffe's binary `NetParameter` with the layer definitions and their blobs.
    case caffemodel
    /// An ONNX model: the input model with its weight tensors replaced.
    case onnx
    /// A safetensors file of float32 tensors keyed by parameter name (PyTorch state-dict keys
    /// when the network came from `torch.onnx.export`).
    case safetensors

    /// The format whose extension `path` ends with (case-insensitive).
    /// - Throws: ``FormatError/unknownExtension(path:supported:)``.
    public init(path: String) throws {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard let dot = name.lastIndex(of: "."),
              let format = ModelFormat(rawValue: name[name.index(after: dot)...].lowercased()) else {
            throw FormatError.unknownExtension(path: path, supported: ModelFormat.allCases.map(\.fileExtension))
        }
        self = format
    }

    /// The extension with its dot, e.g. `.caffemodel`.
    public var fileExtension: String { "." + rawValue }

    public var description: String { rawValue }
}

/// Errors at the file-system boundary and in choosing a format. Each names the file.
public enum FormatError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownExtension(path: String, supported: [String])
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)

    public var description: String {
        switch self {
        case .unknownExtension(let path, let supported):
            "\(path): cannot tell the output format from the extension; use one of \(supported.joined(separator: ", "))"
        case .unreadable(let path, let reason): "\(path): cannot read: \(reason)"
        case .unwritable(let path, let reason): "\(path): cannot write: \(reason)"
        }
    }
}
