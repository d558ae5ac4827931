import Dispatch
import MagicInitCollector
import MagicInitCore
import MagicInitImages
import MagicInitWire
import Synchronization

/// Cuts the sample images into chunks (fixed size, numbered in image order, independent
/// of the number of workers): chunks of encoded files, decoded once here so a file that
/// cannot be decoded is skipped with a warning before any worker sees it, or slices of an
/// already preprocessed input tensor.
public enum ImageChunks {
    public struct Plan: Sendable {
        /// Chunks with the encoded image bytes or the tensor slices, for workers.
        public var assignments: [ChunkAssignment]
        /// The same images preprocessed, `(N, C, H, W)` (for in-process runs and checks).
        public var tensor: Tensor
        /// The image files used, in tensor order (empty for tensor inputs).
        public var loaded: [String]
        public var skipped: [String]
        /// N, the images of the run.
        public var imageCount: Int { tensor.shape[0] }
    }

    /// Chunks of `chunkSize` images (the last may be smaller) sliced from `inputs`.
    /// - Parameter inputs: preprocessed inputs `(N, C, H, W)`, N ≥ 1.
    public static func plan(inputs: Tensor, chunkSize: Int) -> Plan {
        precondition(inputs.shape.count == 4 && inputs.shape[0] >= 1 && chunkSize >= 1, "inputs \(inputs.shape), chunk size \(chunkSize)")
        let perImage = inputs.count / inputs.shape[0]
        let assignments = Chunk.ranges(images: inputs.shape[0], size: chunkSize).enumerated().map { index, range in
            let slice = Tensor(shape: [range.count] + inputs.shape.dropFirst(),
                               data: Array(inputs.data[(range.lowerBound * perImage)..<(range.upperBound * perImage)]))
            return ChunkAssignment(index: index, firstImage: range.lowerBound, inputs: .tensor(slice))
        }
        return Plan(assignments: assignments, tensor: inputs, loaded: [], skipped: [])
    }

    /// - Throws: ``ImageError/noUsableImages(tried:)`` when nothing decodes.
    public static func plan(paths: [String], chunkSize: Int, loader: ImageLoader, warn: (String) -> Void) throws -> Plan {
        // Files are read and decoded in parallel (libjpeg-turbo/stb are reentrant); results,
        // warnings and skips are then taken in listing order.
        let decoded = Mutex<[Int: Result<(bytes: [UInt8], prepared: [Float], warnings: [String]), Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: paths.count) { i in
            var warnings: [String] = []
            let result = Result { () -> (bytes: [UInt8], prepared: [Float], warnings: [String]) in
                let bytes = try ImageDecoding.readFile(path: paths[i])
                let image = try ImageDecoding.decode(bytes, path: paths[i]) { warnings.append($0) }
                return (bytes, loader.prepare(image), warnings)
            }
            decoded.withLock { $0[i] = result }
        }
        let results = decoded.withLock { $0 }
        var files: [ChunkAssignment.ImageFile] = []
        var data: [Float] = []
        var skipped: [String] = []
        for (i, path) in paths.enumerated() {
            switch results[i]! {
            case .success(let image):
                image.warnings.forEach(warn)
                data += image.prepared
                files.append(.init(name: path, bytes: image.bytes))
            case .failure(let error):
                warn("[images] skipped \(path): \(error)")
                skipped.append(path)
            }
        }
        guard !files.isEmpty else { throw ImageError.noUsableImages(tried: paths.count) }
        let assignments = Chunk.ranges(images: files.count, size: chunkSize).enumerated().map { index, range in
            ChunkAssignment(index: index, firstImage: range.lowerBound, images: Array(files[range]))
        }
        return Plan(assignments: assignments, tensor: Tensor(shape: [files.count] + loader.inputShape, data: data),
                    loaded: files.map(\.name), skipped: skipped)
    }
}
