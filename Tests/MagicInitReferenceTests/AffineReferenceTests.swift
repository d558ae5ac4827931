import MagicInitCore
import MagicInitReference
import Testing

@Suite struct AffineReferenceTests {
    @Test func test_convolution_sobelOnRamp_givesConstantGradientPlusBias() {
        // x[h, w] = 4h + w + 1 rises by 1 per column, so the 3×3 Sobel cross-correlation
        // [[1, 0, −1], [2, 0, −2], [1, 0, −1]] is (1 + 2 + 1)·(−2) = −8 at every valid position.
        let x = (1...16).map(Double.init)
        let sobel: [Double] = [1, 0, -1, 2, 0, -2, 1, 0, -1]
        let y = Reference.convolution(x, shape: [1, 1, 4, 4], weight: sobel, bias: [0.5],
                                      ConvolutionParameters(numOutput: 1, kernel: Size2(3)))
        expectClose(y, [-7.5, -7.5, -7.5, -7.5], tolerance: 0)
    }

    @Test func test_convolution_groupsStridePadDilation_matchesNumpy() {
        // x (1, 4, 4, 3), G = 2, O = 4, k (3, 2), s (2, 1), p (1, 1), d (1, 2) → (1, 4, 2, 3).
        // Expected: numpy over an explicitly zero-padded array with strided, dilated slices.
        let p = ConvolutionParameters(numOutput: 4, kernel: Size2(3, 2), stride: Size2(2, 1), pad: Size2(1, 1),
                                      dilation: Size2(1, 2), groups: 2)
        let x = pattern(48)
        let w = pattern(48, multiplier: 5, modulus: 7, offset: 3, divisor: 2)
        let y = Reference.convolution(x, shape: [1, 4, 4, 3], weight: w, bias: [-1.5, -0.5, 0.5, 1.5], p)
        let expected: [Double] = [-7.5, 13.5, 1, -4, -8.5, -2, 3.5, 0.5, -5.5, 4.5, -3.5, -7.5,
                                  2.5, 13.5, -1.5, 9.5, 5, -5.5, 6, 10.5, -1.5, 5, 0, 0.5]
        expectClose(y, expected, tolerance: 1e-12)
    }

    @Test func test_deconvolution_strideEqualsKernel_tilesScaledKernels() {
        // Each input pixel writes its own non-overlapping 2×2 copy of the kernel; group g
        // maps input channel g to output channel g only.
        let p = ConvolutionParameters(numOutput: 2, kernel: Size2(2), stride: Size2(2), groups: 2)
        let weight: [Double] = [1, 2, 3, 4, 5, 6, 7, 8]  // (I = 2, O/G = 1, 2, 2)
        let y = Reference.deconvolution([1, 2], shape: [1, 2, 1, 1], weight: weight, bias: [0.5, -1], p)
        expectClose(y, [1.5, 2.5, 3.5, 4.5, 9, 11, 13, 15], tolerance: 0)
    }

    @Test func test_deconvolution_overlapAndPad_sumsContributionsThenCrops() {
        // H = 2, k 2, s 1, p 1 → H' = 1·(2 − 1) + 2 − 1 − 2 = 1. Output (0, 0) = padded
        // position (1, 1), reached by x[h, w] through W[1 − h, 1 − w]:
        // 1·1000 + 2·100 + 3·10 + 4·1 = 1234.
        let p = ConvolutionParameters(numOutput: 1, kernel: Size2(2), pad: Size2(1), biasTerm: false)
        let y = Reference.deconvolution([1, 2, 3, 4], shape: [1, 1, 2, 2], weight: [1, 10, 100, 1000], bias: nil, p)
        expectClose(y, [1234], tolerance: 0)
    }

    @Test func test_deconvolution_isAdjointOfConvolution_withGroupsStridePadDilation() {
        // ⟨conv(x), y⟩ = ⟨x, deconv(y)⟩ with the same weights, no bias: the conv weight
        // (O, I/G, kH, kW) is the deconv weight (I_deconv = O, O_deconv/G = I/G, kH, kW).
        // Sizes chosen so that the deconvolution maps (3, 3) back to exactly (7, 8).
        let (n, i, o, g) = (2, 4, 6, 2)
        let conv = ConvolutionParameters(numOutput: o, kernel: Size2(3, 2), stride: Size2(2, 3), pad: Size2(1, 0),
                                         dilation: Size2(2, 1), groups: g, biasTerm: false)
        var deconv = conv
        deconv.numOutput = i
        let x = pattern(n * i * 7 * 8, multiplier: 13, modulus: 17, offset: 8, divisor: 4)
        let weight = pattern(o * (i / g) * 3 * 2, multiplier: 5, modulus: 9, offset: 4, divisor: 2)
        let y = pattern(n * o * 3 * 3, multiplier: 3, modulus: 7, offset: 3)

        let convX = Reference.convolution(x, shape: [n, i, 7, 8], weight: weight, bias: nil, conv)
        let deconvY = Reference.deconvolution(y, shape: [n, o, 3, 3], weight: weight, bias: nil, deconv)
        #expect(convX.count == y.count && deconvY.count == x.count)
        let lhs = dot(convX, y), rhs = dot(x, deconvY)
        #expect(abs(lhs - rhs) <= 1e-9 * max(1, abs(lhs)), "⟨conv x, y⟩ = \(lhs), ⟨x, deconv y⟩ = \(rhs)")
        #expect(lhs != 0, "degenerate test: both sides are 0")
    }

    @Test func test_innerProduct_flattensAxesOneOnward() {
        // x (2, 1, 2, 2) flattens to (2, 4); W (2, 4); y[n, o] = b[o] + Σ_i W[o, i] x[n, i].
        let x: [Double] = [1, 2, 3, 4, -1, 0, 2, 1]
        let w: [Double] = [1, 0, -1, 2, 0.5, 0.5, 0.5, 0.5]
        let y = Reference.innerProduct(x, shape: [2, 1, 2, 2], weight: w, bias: [10, -10],
                                       InnerProductParameters(numOutput: 2))
        // n = 0: 1 − 3 + 8 = 6 → 16; 0.5·10 = 5 → −5.  n = 1: −1 − 2 + 2 = −1 → 9; 0.5·2 = 1 → −9.
        expectClose(y, [16, -5, 9, -9], tolerance: 0)
    }

    @Test func test_innerProduct_withoutBias_isMatrixProduct() {
        let y = Reference.innerProduct([1, 2, 3], shape: [1, 3], weight: [1, 1, 1, 0, 0, 2], bias: nil,
                                       InnerProductParameters(numOutput: 2, biasTerm: false))
        expectClose(y, [6, 6], tolerance: 0)
    }
}
