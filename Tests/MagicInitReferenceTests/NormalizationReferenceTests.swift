import MagicInitCore
import MagicInitReference
import Testing

@Suite struct NormalizationReferenceTests {
    @Test func test_lrn_localSize3_sumsSquaresOfClippedNeighbours() {
        // One pixel, channels (1, 2, 3), n = 3, α = 3 (α/n = 1), β = 1/2, k = 1:
        // scale = 1 + (1 + 4), 1 + (1 + 4 + 9), 1 + (4 + 9) = 6, 15, 14; y = x/√scale.
        let y = Reference.lrn([1, 2, 3], shape: [1, 3, 1, 1], LRNParameters(localSize: 3, alpha: 3, beta: 0.5, k: 1))
        expectClose(y, [1 / 6.0.squareRoot(), 2 / 15.0.squareRoot(), 3 / 14.0.squareRoot()], tolerance: 1e-15)
    }

    @Test func test_lrn_localSize5_dividesAlphaBySizeEvenAtEdges() {
        // Channels (1, 2, 3, 4), n = 5 (half-width 2), α = 5 (α/n = 1), β = 1, k = 2:
        // scale = 2 + 14, 2 + 30, 2 + 30, 2 + 29 → y = 1/16, 2/32, 3/32, 4/31. Two pixels per
        // channel (the second is 0) check that channels, not pixels, are summed.
        let x: [Double] = [1, 0, 2, 0, 3, 0, 4, 0]
        let y = Reference.lrn(x, shape: [1, 4, 1, 2], LRNParameters(localSize: 5, alpha: 5, beta: 1, k: 2))
        expectClose(y, [1.0 / 16, 0, 2.0 / 32, 0, 3.0 / 32, 0, 4.0 / 31, 0], tolerance: 1e-15)
    }

    @Test func test_batchNorm_dividesStoredMomentsByFactor() {
        // f = 2: mean' = (1, 2), var' = (4, 9), eps = 0 → channel 0: (x − 1)/2, channel 1: (x − 2)/3.
        let x: [Double] = [1, 3, 2, 8, 5, 7, -1, 5]  // (2, 2, 2)
        let y = Reference.batchNorm(x, shape: [2, 2, 2], mean: [2, 4], variance: [8, 18], factor: [2], eps: 0)
        expectClose(y, [0, 1, 0, 2, 2, 3, -1, 1], tolerance: 1e-15)
    }

    @Test func test_batchNorm_zeroFactor_zeroesMomentsAndLeavesEps() {
        // Caffe: f = 0 → s = 0 → mean' = var' = 0 → y = x/√eps; eps = 1/4 → y = 2x.
        let x: [Double] = [1, -2, 3, 4]  // (1, 2) — rank 2 works too
        let y = Reference.batchNorm(x, shape: [2, 2], mean: [5, 6], variance: [7, 8], factor: [0], eps: 0.25)
        expectClose(y, [2, -4, 6, 8], tolerance: 0)
    }

    @Test func test_scale_appliesPerChannelGammaAndOptionalBeta() {
        let x: [Double] = [1, 2, 3, 4, 5, 6, 7, 8]  // (1, 2, 2, 2)
        let withBias = Reference.scale(x, shape: [1, 2, 2, 2], gamma: [2, -1], beta: [1, 10])
        expectClose(withBias, [3, 5, 7, 9, 5, 4, 3, 2], tolerance: 0)
        let withoutBias = Reference.scale(x, shape: [2, 2, 2], gamma: [2, -1], beta: nil)
        expectClose(withoutBias, [2, 4, -3, -4, 10, 12, -7, -8], tolerance: 0)
    }
}
