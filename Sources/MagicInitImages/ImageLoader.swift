import MagicInitCore

/// Turns image files into network input: decode, fit to `(H, W)`, normalise, planar.
///
/// A value type with no state; every call decodes afresh, so one loader may be used from
/// any number of tasks at once.
public struct ImageLoader: Sendable, Hashable {
    /// Per-image input shape `(3, H, W)`.
    public let inputShape: [Int]
    public var preprocessing: Preprocessing
    public var resize: ResizeMode

    /// Input height H in pixels.
    public var height: Int { inputShape[1] }
    /// Input width W in pixels.
    public var width: Int { inputShape[2] }

    /// - Parameter inputShape: the network's per-image input shape `(3, H, W)`, no batch axis.
    /// - Throws: ``ImageError/invalidInputShape(_:)`` unless it is `(3, H, W)` with H, W ≥ 1.
    public init(
        inputShape: [Int],
        preprocessing: Preprocessing = .caffe,
        resize: ResizeMode = .shorterSideThenCenterCrop
    ) throws {
        guard inputShape.count == 3, inputShape[0] == 3, inputShape[1] > 0, inputShape[2] > 0 else {
            throw ImageError.invalidInputShape(inputShape)
        }
        self.inputShape = inputShape
        self.preprocessing = preprocessing
        self.resize = resize
    }

    /// Fits an already decoded image to `(H, W)` and normalises it.
    /// - Returns: `(3, H, W)` Float32, see ``Preprocessing/planarCHW(_:)``.
    public func prepare(_ image: RGB8Image) -> [Float] {
        preprocessing.planarCHW(ImageGeometry.fit(image, width: width, height: height, mode: resize))
    }

    /// Loads one image file.
    /// - Parameter warn: receives non-fatal decoder warnings, one line each, naming `path`.
    /// - Returns: `(3, H, W)` Float32.
    /// - Throws: ``ImageError/unreadable(path:reason:)`` or ``ImageError/undecodable(path:reason:)``.
    public func load(path: String, warn: (String) -> Void = { _ in }) throws -> [Float] {
        prepare(try ImageDecoding.decodeFile(path: path, warn: warn))
    }

    /// Loads every usable file of `paths`, in order, skipping the ones that fail.
    ///
    /// Each skipped file is reported through `warn` as one line naming it,
    /// `[images] skipped <path>: <reason>`, and listed in ``ImageBatch/skipped``.
    /// - Returns: a batch of `N` = number of usable files; tensor `(N, 3, H, W)`.
    /// - Throws: ``ImageError/noUsableImages(tried:)`` if no file could be used
    ///   (including when `paths` is empty).
    public func loadBatch(paths: [String], warn: (String) -> Void) throws -> ImageBatch {
        let perImage = 3 * height * width
        var data: [Float] = []
        var loaded: [String] = []
        var skipped: [ImageBatch.Skipped] = []
        for path in paths {
            do {
                let image = try load(path: path, warn: warn)
                if data.isEmpty { data.reserveCapacity(perImage * paths.count) }
                data.append(contentsOf: image)
                loaded.append(path)
            } catch let error as ImageError {
                warn("[images] skipped \(path): \(error.reasonWithoutPath)")
                skipped.append(.init(path: path, error: error))
            }
        }
        guard !loaded.isEmpty else { throw ImageError.noUsableImages(tried: paths.count) }
        return ImageBatch(
            tensor: Tensor(shape: [loaded.count] + inputShape, data: data),
            loaded: loaded, skipped: skipped)
    }
}

/// The result of ``ImageLoader/loadBatch(paths:warn:)``.
public struct ImageBatch: Sendable, Equatable {
    /// A file left out of the batch and why.
    public struct Skipped: Sendable, Equatable {
        public var path: String
        public var error: ImageError
    }

    /// `(N, 3, H, W)`; image `n` is `loaded[n]`.
    public var tensor: Tensor
    /// The files in the batch, in tensor order.
    public var loaded: [String]
    /// The files that could not be used, in the order they were tried.
    public var skipped: [Skipped]
}

extension ImageError {
    /// The reason alone, for messages that name the file themselves.
    var reasonWithoutPath: String {
        switch self {
        case .unreadable(_, let reason): "cannot read: \(reason)"
        case .undecodable(_, let reason): "cannot decode: \(reason)"
        default: description
        }
    }
}
