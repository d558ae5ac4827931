import MagicInitCore

/// Errors at the image-input boundary. Every case about one file names it.
public enum ImageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be read (missing, unreadable, a directory, empty).
    case unreadable(path: String, reason: String)
    /// The bytes are not an image any decoder here understands, or are corrupt.
    case undecodable(path: String, reason: String)
    /// `loadBatch` found no usable image among `tried` paths.
    case noUsableImages(tried: Int)
    /// `listImages` found no image in a folder, list file or glob pattern.
    case noImagesFound(source: String)
    /// The network input is not `(3, H, W)` with positive H and W.
    case invalidInputShape([Int])

    /// The file the error is about, if it is about one file.
    public var path: String? {
        switch self {
        case .unreadable(let path, _), .undecodable(let path, _): path
        case .noUsableImages, .noImagesFound, .invalidInputShape: nil
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read '\(path)': \(reason)"
        case .undecodable(let path, let reason): "cannot decode '\(path)': \(reason)"
        case .noUsableImages(let tried): "no usable image among the \(tried) file(s) given"
        case .noImagesFound(let source): "no .jpg, .jpeg or .png image found in '\(source)'"
        case .invalidInputShape(let shape):
            "image input must have shape (3, H, W) with H, W ≥ 1, got \(describeShape(shape))"
        }
    }
}
