import MagicInitCollector
import MagicInitCore
import MagicInitImages

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
        var files: [ChunkAssignment.ImageFile] = []
        var data: [Float] = []
        var skipped: [String] = []
        for path in paths {
            do {
                let bytes = try ImageDecoding.readFile(path: path)
                let image = try ImageDecoding.decode(bytes, path: path, warn: warn)
                data += loader.prepare(image)
                files.append(.init(name: path, bytes: bytes))
            } catch {
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
