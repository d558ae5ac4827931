import MagicInitAlgorithms
import MagicInitCore
import MagicInitStatistics

/// The in-process ``StatisticsSource``: one ``ChunkCollector`` holding every chunk,
/// partial statistics merged in chunk order (Chan's formula for moments).
public actor LocalStatisticsSource: StatisticsSource {
    public nonisolated let graph: Graph
    private let collector: ChunkCollector
    private let seed: UInt64
    private let progress: ProgressHandler?
    private nonisolated let chunkTotal: Int

    /// - Parameters:
    ///   - images: all sample images, `(N, 3, H, W)`, split into chunks of `chunkSize` in order.
    ///   - seed: seed of the top gradients η.
    ///   - keepAffineInputs: Algorithm 1 keeps every affine layer's input, so Algorithm 2's
    ///     first measurement with weight gradients needs no second forward pass
    ///     (``ChunkCollector/Options/keepsAffineInputs``).
    public init(network: Network, images: Tensor, chunkSize: Int, seed: UInt64, threads: Int? = nil,
                keepAffineInputs: Bool = false, progress: ProgressHandler? = nil) throws {
        self.progress = progress
        let collector = try ChunkCollector(network: network, chunkSize: chunkSize,
                                           options: .init(threads: threads, keepsAffineInputs: keepAffineInputs))
        let chunks = LocalStatisticsSource.chunks(of: images, size: chunkSize)
        chunkTotal = chunks.count
        try collector.add(chunks)
        self.collector = collector
        self.graph = collector.graph
        self.seed = seed
    }

    /// `images` cut into chunks of `size` images in order (the last may be smaller).
    public static func chunks(of images: Tensor, size: Int) -> [Chunk] {
        let n = images.shape[0], perImage = images.count / max(n, 1)
        return Chunk.ranges(images: n, size: size).enumerated().map { index, range in
            Chunk(index: index, firstImage: range.lowerBound,
                  images: Tensor(shape: [range.count] + images.shape.dropFirst(),
                                 data: Array(images.data[(range.lowerBound * perImage)..<(range.upperBound * perImage)])))
        }
    }

    public func apply(_ directives: [WeightDirective]) async throws {
        try collector.apply(directives)
    }

    public func outputMoments(layer: String) async throws -> ChannelMoments {
        let parts = try collector.outputMoments(layer: layer, chunkDone: reporter(graph.algorithm1Phase(layer: layer)))
        var merged = ChannelMoments(channelCount: parts[0].moments.channelCount)
        for part in parts { merged.merge(part.moments) }
        return merged
    }

    public nonisolated var chunkCount: Int { chunkTotal }

    public func measure(step: Int, weightGradients: Bool, groups: [Range<Int>]) async throws -> [NetworkMeasurement] {
        let only = groups.chunkSet
        let images = collector.imageCount(of: only)
        let parts = try collector.measure(step: step, seed: seed, weightGradients: weightGradients, only: only,
                                          chunkDone: reporter(measurementPhase(chunks: only.count, of: chunkTotal), total: images))
        return try groups.merged(Dictionary(uniqueKeysWithValues: parts.map { ($0.chunk, $0.measurement) }))
    }

    /// A per-chunk callback that reports images done so far for `phase`.
    private func reporter(_ phase: String, total: Int? = nil) -> (Chunk) -> Void {
        guard let progress else { return { _ in } }
        var done = 0
        let total = total ?? collector.imageCount
        progress(ProgressEvent(phase: phase, imagesDone: 0, imagesTotal: total))
        return { chunk in
            done += chunk.imageCount
            progress(ProgressEvent(phase: phase, imagesDone: done, imagesTotal: total))
        }
    }

    public func parameters() async throws -> ParameterSet {
        collector.parameters
    }
}
