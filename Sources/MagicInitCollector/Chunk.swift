import MagicInitCore

/// A chunk of sample images: a fixed-size group numbered independently of how many
/// workers there are (docs/DESIGN.md §3). Every statistic is computed per chunk.
public struct Chunk: Sendable {
    /// Chunk number, 0…M−1.
    public var index: Int
    /// Global index of the chunk's first image (for the per-image top gradients η).
    public var firstImage: Int
    /// The preprocessed images, `(n, C, H, W)` with `n ≤` the chunk size.
    public var images: Tensor

    public init(index: Int, firstImage: Int, images: Tensor) {
        self.index = index
        self.firstImage = firstImage
        self.images = images
    }

    public var imageCount: Int { images.shape[0] }

    /// The image ranges of chunks `0, 1, …` for `count` images cut in order into chunks of
    /// `size` (the last may be smaller). Every place that cuts images into chunks uses this,
    /// so chunk numbers mean the same images everywhere.
    public static func ranges(images count: Int, size: Int) -> [Range<Int>] {
        stride(from: 0, to: count, by: size).map { $0..<min($0 + size, count) }
    }
}
