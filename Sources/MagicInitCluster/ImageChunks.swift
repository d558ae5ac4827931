import Dispatch
import MagicInitCollector
import MagicInitCore
import MagicInitImages
import Synchronization

/// Cuts the sample images into chunks (fixed size, numbered in listing order, independent
/// of the number of workers) carrying the encoded files, and decodes them once here so a
/// file that cannot be decoded is skipped with a warning before any worker sees it.
public enum ImageChunks {
    public struct Plan: Sendable {
        /// Chunks with the encoded image bytes, for workers.
        public var assignments: [ChunkAssignment]
        /// The same images preprocessed, `(N, 3, H, W)` (for in-process runs and checks).
        public var tensor: Tensor
        public var loaded: [String]
        public var skipped: [String]
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
