import MagicInitCore
import MagicInitReference
import Testing

@Suite struct PoolingReferenceTests {
    /// x[h, w] = 4h + w + 1 on a 4×4 plane.
    let ramp = (1...16).map(Double.init)

    @Test func test_maxPool_k2s2_takesBlockMaxima() {
        let y = Reference.pooling(ramp, shape: [1, 1, 4, 4],
                                  PoolingParameters(method: .max, kernel: Size2(2), stride: Size2(2)))
        expectClose(y, [6, 8, 14, 16], tolerance: 0)
    }

    @Test func test_maxPool_ceilOverhang_clipsLastWindowToInput() {
        // H = 4, k 3, s 2, ceil → 2 outputs per axis; the second window [2, 5) is clipped to [2, 4).
        let x = pattern(16)  // rows: [-5, 2, -2, 5], [1, -3, 4, 0], [-4, 3, -1, -5], [2, -2, 5, 1]
        let y = Reference.pooling(x, shape: [1, 1, 4, 4],
                                  PoolingParameters(method: .max, kernel: Size2(3), stride: Size2(2)))
        expectClose(y, [4, 5, 5, 5], tolerance: 0)
    }

    @Test func test_maxPool_padding_neverWinsOverNegativeInputs() {
        // All inputs negative; the zero padding must not appear in the output.
        let x = ramp.map { -$0 }
        let y = Reference.pooling(x, shape: [1, 1, 4, 4],
                                  PoolingParameters(method: .max, kernel: Size2(3), stride: Size2(2), pad: Size2(1)))
        expectClose(y, [-1, -2, -4, -5, -6, -8, -13, -14, -16], tolerance: 0)
    }

    @Test func test_averagePool_caffeDivisor_countsPaddingButNotCeilOverhang() {
        // H = 4, k 3, s 2, p 1, ceil → 3 outputs per axis (the clip rule does not fire:
        // (3 − 1)·2 = 4 < H + p = 5). Along each axis the windows start at −1, 1, 3:
        //   hend = min(hstart + 3, H + p = 5) = 2, 4, 5 → divisor extents 3, 3, 2
        //   clipped windows [0, 2), [1, 4), [3, 4).
        // So the first window counts its padding row in the divisor (3, not 2), and the last
        // counts its padding row (index 4) but not the ceil overhang (index 5): 2, not 3.
        // E.g. y[0, 0] = (1 + 2 + 5 + 6)/9 = 14/9 and y[2, 2] = 16/4 = 4.
        let y = Reference.pooling(ramp, shape: [1, 1, 4, 4],
                                  PoolingParameters(method: .average, kernel: Size2(3), stride: Size2(2), pad: Size2(1)))
        let expected = [56.0, 120, 72, 228, 396, 216, 162, 270, 144].map { $0 / 36 }
        expectClose(y, expected, tolerance: 1e-15)
    }

    @Test func test_averagePool_noPadCeilOverhang_dividesByClippedWindow() {
        // H = 4, k 3, s 2, no pad, ceil → 2 per axis; hend = min(hstart + 3, H + 0) = 3, 4,
        // so the overhanging second window [2, 4) divides by 2 per axis, not 3.
        let y = Reference.pooling(ramp, shape: [1, 1, 4, 4],
                                  PoolingParameters(method: .average, kernel: Size2(3), stride: Size2(2)))
        // y[0,0] = mean of rows 0–2, cols 0–2 = 6; y[0,1] = rows 0–2, cols 2–3 = 7.5;
        // y[1,0] = rows 2–3, cols 0–2 = 12; y[1,1] = (11 + 12 + 15 + 16)/4 = 13.5.
        expectClose(y, [6, 7.5, 12, 13.5], tolerance: 1e-15)
    }

    @Test func test_averagePool_floorRounding_dropsOverhangingWindow() {
        let y = Reference.pooling(ramp, shape: [1, 1, 4, 4],
                                  PoolingParameters(method: .average, kernel: Size2(3), stride: Size2(2), roundMode: .floor))
        expectClose(y, [6], tolerance: 1e-15)
    }

    @Test func test_globalPooling_reducesEachPlaneToOneValue() {
        // Two channels: the ramp and its negation; the kernel field is ignored when global.
        let x = ramp + ramp.map { -2 * $0 }
        let average = Reference.pooling(x, shape: [1, 2, 4, 4],
                                        PoolingParameters(method: .average, kernel: Size2(2), global: true))
        expectClose(average, [8.5, -17], tolerance: 1e-15)
        let maximum = Reference.pooling(x, shape: [1, 2, 4, 4], PoolingParameters(method: .max, global: true))
        expectClose(maximum, [16, -2], tolerance: 0)
    }

    @Test func test_pooling_rectangularWindowsPerBatchAndChannel() {
        // (2, 1, 2, 4) with a 1×2 window, stride (1, 2): pairs along the width.
        let x: [Double] = [1, 3, 5, 7, 2, 4, 6, 8, -1, -3, -5, -7, 0, 0, 1, -1]
        let p = PoolingParameters(method: .average, kernel: Size2(1, 2), stride: Size2(1, 2))
        expectClose(Reference.pooling(x, shape: [2, 1, 2, 4], p), [2, 6, 3, 7, -2, -6, 0, 0], tolerance: 0)
    }
}
