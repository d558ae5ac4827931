/// Where the values of a blob `(N, C, spatial…)` sit in a channel-blocked float32 buffer,
/// the layout oneDNN picks for activations (`nChw8c` on AVX2, `nChw16c` on AVX-512):
///
///     offset(n, c, s) = n·imageStride + (c / block)·blockStride + s·block + c % block
///
/// with `s` the row-major index over the spatial dimensions. Plain row-major `NCHW` is the
/// case `block = 1`, `blockStride = spatial`, `imageStride = C·spatial`. Channels are padded
/// to a multiple of `block`; the padding holds zeros and must keep them.
public struct ChannelBlockedLayout: Sendable, Equatable, CustomStringConvertible {
    /// N, C, and the product of the spatial extents.
    public let images: Int
    public let channels: Int
    public let spatial: Int
    /// Channels per block (1 for plain row-major).
    public let block: Int
    /// Floats between consecutive images and between consecutive channel blocks.
    public let imageStride: Int
    public let blockStride: Int

    /// - Precondition: positive `block`; strides large enough that blocks do not overlap.
    public init(images: Int, channels: Int, spatial: Int, block: Int, imageStride: Int, blockStride: Int) {
        precondition(images >= 0 && channels >= 0 && spatial >= 0 && block >= 1, "bad channel-blocked layout")
        precondition(blockStride >= spatial * block && imageStride >= ((channels + block - 1) / block) * blockStride,
                     "overlapping channel-blocked layout")
        self.images = images
        self.channels = channels
        self.spatial = spatial
        self.block = block
        self.imageStride = imageStride
        self.blockStride = blockStride
    }

    /// Plain row-major `(N, C, spatial…)`.
    public static func plain(shape: [Int]) -> ChannelBlockedLayout {
        precondition(shape.count >= 2, "a blob needs shape (N, C, …), got \(shape)")
        let spatial = shape.dropFirst(2).reduce(1, *)
        return ChannelBlockedLayout(images: shape[0], channels: shape[1], spatial: spatial, block: 1,
                                    imageStride: shape[1] * spatial, blockStride: spatial)
    }

    /// Whether this is dense plain row-major `NCHW`.
    public var isPlain: Bool { block == 1 && blockStride == spatial && imageStride == channels * spatial }

    /// Number of channel blocks, `⌈C / block⌉`.
    public var channelBlocks: Int { (channels + block - 1) / block }

    /// Floats the buffer spans (padding included).
    public var count: Int { images * imageStride }

    /// Offset of value `(n, c, s)`.
    @inline(__always)
    public func offset(image n: Int, channel c: Int, position s: Int) -> Int {
        n * imageStride + (c / block) * blockStride + s * block + c % block
    }

    public var description: String {
        "(\(images), \(channels), \(spatial)) in blocks of \(block) (strides \(imageStride), \(blockStride))"
    }
}
