import Testing
import MagicInitCore
@testable import MagicInitCollector

/// Eq. 4's `Σ x(j)²` per column of a convolution, read from a channel-blocked input with the
/// row/column-sum method, against the row-major prefix-sum method on the same values.
@Suite struct InputSquaresTests {
    @Test(arguments: [(3, 1, 1, 8), (3, 0, 1, 16), (5, 1, 2, 8), (1, 0, 1, 8), (7, 3, 1, 8)])
    func test_blockedStrideOne_matchesRowMajor(kernel: Int, pad: Int, dilation: Int, block: Int) throws {
        var builder = NetworkBuilder(name: "squares", shape: [11, 13, 10])
        builder.conv("conv", 6, kernel: kernel, pad: pad, dilation: dilation)
        let graph = try Graph(builder.network, batchSize: 3)
        let node = graph.nodes[0]
        let shape = graph.blobs[node.bottoms[0]].shape, outputShape = graph.blobs[node.tops[0]].shape
        let (n, c, spatial) = (shape[0], shape[1], shape[2] * shape[3])
        let values = Philox(seed: 8, stream: Philox.stream("input squares", kernel, pad, dilation)).gaussians(count: shape.reduce(1, *))
        // Blocked copy; padding lanes and slack hold NaN, which would show if read.
        let blocks = (c + block - 1) / block, blockStride = spatial * block + 2
        let layout = ChannelBlockedLayout(images: n, channels: c, spatial: spatial, block: block,
                                          imageStride: blocks * blockStride + 1, blockStride: blockStride)
        var blocked = [Float](repeating: .nan, count: layout.count)
        for i in 0..<n {
            for ch in 0..<c {
                for s in 0..<spatial { blocked[layout.offset(image: i, channel: ch, position: s)] = values[(i * c + ch) * spatial + s] }
            }
        }
        let images = 2
        let plain = values.withUnsafeBufferPointer {
            ColumnStatistics.inputSquares(node, x: $0, shape: shape, images: images, outputShape: outputShape)
        }
        let fast = try #require(blocked.withUnsafeBufferPointer {
            ColumnStatistics.inputSquares(node, blocked: $0.baseAddress!, layout: layout, shape: shape, images: images, outputShape: outputShape)
        })
        #expect(fast.count == plain.count)
        #expect(fast.sums.count == c * kernel * kernel)
        let worst = zip(fast.sums, plain.sums).map { abs($0 - $1) / max(abs($1), 1e-300) }.max() ?? 0
        #expect(worst <= 1e-12, "largest relative difference \(worst)")
        #expect(plain.sums.allSatisfy { $0 > 0 })
    }
}
