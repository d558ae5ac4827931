import MagicInitCore
import MagicInitStatistics
import Testing

/// The channel-blocked accumulators (oneDNN's `nChw8c`/`nChw16c` activations read in place)
/// against the independent row-major references, on the same values.
@Suite struct ChannelBlockedTests {
    /// `values` (row-major `(N, C, spatial)`) laid out channel-blocked with `block`, image
    /// and block strides padded by `slack` floats; padding lanes and slack hold NaN, so any
    /// read of them would show.
    static func blocked(_ values: [Float], shape: [Int], block: Int, slack: Int) -> ([Float], ChannelBlockedLayout) {
        let (n, c) = (shape[0], shape[1]), spatial = shape.dropFirst(2).reduce(1, *)
        let blocks = (c + block - 1) / block
        let blockStride = spatial * block + slack
        let layout = ChannelBlockedLayout(images: n, channels: c, spatial: spatial, block: block,
                                          imageStride: blocks * blockStride + slack, blockStride: blockStride)
        var out = [Float](repeating: .nan, count: layout.count)
        for i in 0..<n {
            for ch in 0..<c {
                for s in 0..<spatial { out[layout.offset(image: i, channel: ch, position: s)] = values[(i * c + ch) * spatial + s] }
            }
        }
        return (out, layout)
    }

    @Test(arguments: [([3, 10, 5, 7], 8), ([2, 16, 4, 4], 16), ([4, 24, 9, 3], 8), ([3, 5, 1, 1], 16)])
    func test_blockedMoments_matchRowMajorReference(shape: [Int], block: Int) {
        let values = gaussianBlob(shape, purpose: "blocked moments", index: block)
        let (data, layout) = Self.blocked(values, shape: shape, block: block, slack: 3)
        let counted = shape[0] - 1
        let firstImages = Array(values.prefix(counted * values.count / shape[0]))
        let reference = naiveChannelMoments(firstImages, shape: [counted] + shape.dropFirst())
        let moments = data.withUnsafeBufferPointer { ChannelMoments(accumulating: $0.baseAddress!, layout: layout, images: counted) }
        #expect(moments.count == Int64(counted * layout.spatial))
        expectRelativelyClose(moments.mean, reference.mean, tolerance: 1e-12, "mean \(shape) block \(block)")
        expectRelativelyClose(moments.variance, reference.variance, tolerance: 1e-11, "variance \(shape) block \(block)")
    }

    @Test(arguments: [([3, 10, 5, 7], 8), ([2, 16, 4, 4], 16), ([4, 24, 9, 3], 8)])
    func test_blockedSquares_matchRowMajorReference(shape: [Int], block: Int) {
        let values = gaussianBlob(shape, purpose: "blocked squares", index: block)
        let (data, layout) = Self.blocked(values, shape: shape, block: block, slack: 5)
        let counted = shape[0] - 1
        let firstImages = Array(values.prefix(counted * values.count / shape[0]))
        let (channels, images) = data.withUnsafeBufferPointer {
            SquareSums.channelsAndImages($0.baseAddress!, layout: layout, images: counted)
        }
        #expect(channels.count == Int64(counted * layout.spatial))
        expectRelativelyClose(channels.sumOfSquares, SquareSumsTests.naiveSquares(firstImages, shape: [counted] + shape.dropFirst()),
                              tolerance: 1e-12, "Σx² \(shape) block \(block)")
        #expect(images.imageCount == Int64(counted))
        expectRelativelyClose([images.sum], [SquareSumsTests.naiveSquaredNorms(firstImages, images: counted)],
                              tolerance: 1e-12, "Σ‖y‖² \(shape) block \(block)")
    }

    @Test func test_plainLayout_isTheRowMajorAccumulator() {
        let shape = [3, 6, 4, 5]
        let values = gaussianBlob(shape, purpose: "plain layout")
        let layout = ChannelBlockedLayout.plain(shape: shape)
        #expect(layout.isPlain)
        let viaLayout = values.withUnsafeBufferPointer { ChannelMoments(accumulating: $0.baseAddress!, layout: layout, images: 3) }
        #expect(viaLayout == ChannelMoments(accumulating: Tensor(shape: shape, data: values)))
    }
}
