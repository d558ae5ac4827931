import MagicInitCore

extension Reference {
    /// Caffe `Pooling`, max or average, with Caffe's exact windows.
    ///
    /// The output size is ``ShapeInference/poolingOutput(_:kernel:stride:pad:roundMode:anyPad:)``
    /// (ceil rounding with Caffe's clip rule, or floor); global pooling takes the whole plane
    /// (``ShapeInference/poolingWindow(_:input:)``). Along each axis output index `ph` covers
    /// `hstart = ph·s − p` up to, but excluding, `hstart + k`:
    ///
    /// - **max**: the maximum over the window clipped to the input,
    ///   `[max(hstart, 0), min(hstart + k, H))`; padding never wins. An empty window (only
    ///   possible with ceil rounding, no padding and stride > kernel) gives Caffe's
    ///   `−FLT_MAX`.
    /// - **average** (Caffe `AVE`): `hend = min(hstart + k, H + p)`; the divisor
    ///   `(hend − hstart)·(wend − wstart)` is taken *before* clipping `hstart` to ≥ 0 and
    ///   `hend` to ≤ H, so padding cells count in the divisor (zeros) but the part of the
    ///   last window hanging past `H + p` under ceil rounding does not; the sum runs over the
    ///   clipped window.
    ///
    /// - Parameters:
    ///   - x: activations, `(N, C, H, W)`.
    ///   - shape: `[N, C, H, W]`.
    ///   - p: method, kernel, stride, pad, rounding, global.
    /// - Returns: `(N, C, H', W')`.
    /// - Complexity: `N·C·H'·W'·kH·kW` comparisons or additions.
    public static func pooling(_ x: [Double], shape: [Int], _ p: PoolingParameters) -> [Double] {
        let (n, channels, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (kernel, stride, pad, outH, outW) = poolingGeometry(shape: shape, p)
        requireCount(x, shape, "pooling input")

        var y = [Double](repeating: 0, count: n * channels * outH * outW)
        for plane in 0..<(n * channels) {
            let base = plane * h * w
            for oh in 0..<outH {
                for ow in 0..<outW {
                    var hStart = oh * stride.h - pad.h, wStart = ow * stride.w - pad.w
                    let value: Double
                    switch p.method {
                    case .max:
                        let hEnd = min(hStart + kernel.h, h), wEnd = min(wStart + kernel.w, w)
                        hStart = max(hStart, 0); wStart = max(wStart, 0)
                        var best = -Double(Float.greatestFiniteMagnitude)
                        for ih in hStart..<max(hEnd, hStart) {
                            for iw in wStart..<max(wEnd, wStart) {
                                best = max(best, x[base + ih * w + iw])
                            }
                        }
                        value = best
                    case .average:
                        var hEnd = min(hStart + kernel.h, h + pad.h), wEnd = min(wStart + kernel.w, w + pad.w)
                        let poolSize = (hEnd - hStart) * (wEnd - wStart)
                        hStart = max(hStart, 0); wStart = max(wStart, 0)
                        hEnd = min(hEnd, h); wEnd = min(wEnd, w)
                        var sum = 0.0
                        for ih in hStart..<max(hEnd, hStart) {
                            for iw in wStart..<max(wEnd, wStart) {
                                sum += x[base + ih * w + iw]
                            }
                        }
                        value = sum / Double(poolSize)
                    }
                    y[(plane * outH + oh) * outW + ow] = value
                }
            }
        }
        return y
    }

    /// The window (``ShapeInference/poolingWindow(_:input:)``) and output size `H' × W'` of
    /// pooling `p` over an input of shape `[N, C, H, W]`, as Caffe computes them.
    static func poolingGeometry(shape: [Int], _ p: PoolingParameters)
        -> (kernel: Size2, stride: Size2, pad: Size2, outH: Int, outW: Int) {
        let (kernel, stride, pad) = ShapeInference.poolingWindow(p, input: shape)
        let anyPad = pad.h > 0 || pad.w > 0
        let outH = ShapeInference.poolingOutput(shape[2], kernel: kernel.h, stride: stride.h, pad: pad.h,
                                                roundMode: p.roundMode, anyPad: anyPad)
        let outW = ShapeInference.poolingOutput(shape[3], kernel: kernel.w, stride: stride.w, pad: pad.w,
                                                roundMode: p.roundMode, anyPad: anyPad)
        return (kernel, stride, pad, outH, outW)
    }
}
