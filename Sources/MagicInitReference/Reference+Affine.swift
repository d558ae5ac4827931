import MagicInitCore

// The affine layers of the paper (§2): convolution, deconvolution, inner product.

extension Reference {
    /// Caffe `Convolution` (a cross-correlation, as every framework computes it), grouped,
    /// strided, padded with zeros and dilated:
    ///
    ///     y[n, o, h', w'] = b[o] + Σ_{c < I/G} Σ_{kh, kw} W[o, c, kh, kw] · x[n, g·I/G + c, h'·s − p + kh·d, w'·s − p + kw·d]
    ///
    /// where `g = ⌊o / (O/G)⌋` is the group of output channel `o` and `x` reads 0 outside the
    /// input (zero padding).
    /// - Parameters:
    ///   - x: activations, `(N, I, H, W)`.
    ///   - shape: `[N, I, H, W]`.
    ///   - weight: `(O, I/G, kH, kW)`.
    ///   - bias: `(O)`, or `nil` without a bias term.
    ///   - p: `O = p.numOutput`, `G = p.groups`, kernel, stride, pad and dilation per axis.
    /// - Returns: `(N, O, H', W')`, `H' = ⌊(H + 2p − d(kH − 1) − 1)/s⌋ + 1`
    ///   (``ShapeInference/convolutionOutput(_:kernel:stride:pad:dilation:)``).
    /// - Complexity: `N·O·H'·W'·(I/G)·kH·kW` multiply–adds.
    public static func convolution(_ x: [Double], shape: [Int], weight: [Double], bias: [Double]?,
                                   _ p: ConvolutionParameters) -> [Double] {
        let (n, inputs, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let outputs = p.numOutput
        let inputsPerGroup = inputs / p.groups, outputsPerGroup = outputs / p.groups
        let (kH, kW) = (p.kernel.h, p.kernel.w)
        let outH = ShapeInference.convolutionOutput(h, kernel: kH, stride: p.stride.h, pad: p.pad.h, dilation: p.dilation.h)
        let outW = ShapeInference.convolutionOutput(w, kernel: kW, stride: p.stride.w, pad: p.pad.w, dilation: p.dilation.w)
        requireCount(x, shape, "convolution input")
        requireCount(weight, [outputs, inputsPerGroup, kH, kW], "convolution weight")
        if let bias { requireCount(bias, [outputs], "convolution bias") }

        var y = [Double](repeating: 0, count: n * outputs * outH * outW)
        for image in 0..<n {
            for o in 0..<outputs {
                let group = o / outputsPerGroup
                for oh in 0..<outH {
                    for ow in 0..<outW {
                        var sum = bias?[o] ?? 0
                        for c in 0..<inputsPerGroup {
                            let i = group * inputsPerGroup + c
                            for kh in 0..<kH {
                                let ih = oh * p.stride.h - p.pad.h + kh * p.dilation.h
                                guard ih >= 0, ih < h else { continue }
                                for kw in 0..<kW {
                                    let iw = ow * p.stride.w - p.pad.w + kw * p.dilation.w
                                    guard iw >= 0, iw < w else { continue }
                                    sum += weight[((o * inputsPerGroup + c) * kH + kh) * kW + kw]
                                        * x[((image * inputs + i) * h + ih) * w + iw]
                                }
                            }
                        }
                        y[((image * outputs + o) * outH + oh) * outW + ow] = sum
                    }
                }
            }
        }
        return y
    }

    /// Caffe `Deconvolution` = the backward-data pass of a convolution (PyTorch
    /// `ConvTranspose2d`): every input pixel scatters its kernel-weighted value,
    ///
    ///     y[n, o, h·s − p + kh·d, w·s − p + kw·d] += x[n, i, h, w] · W[i, o − g·O/G, kh, kw]
    ///
    /// for every input channel `i` of group `g = ⌊i / (I/G)⌋` and output channel `o` of the
    /// same group; targets outside the output are dropped (the padding is cropped); then
    /// `y[n, o, ·, ·] += b[o]`. With the same weights and no bias it is the adjoint of
    /// ``convolution(_:shape:weight:bias:_:)``: `⟨conv(x), y⟩ = ⟨x, deconv(y)⟩`.
    /// - Parameters:
    ///   - x: activations, `(N, I, H, W)`.
    ///   - shape: `[N, I, H, W]`.
    ///   - weight: `(I, O/G, kH, kW)` (Caffe's layout: input channels first).
    ///   - bias: `(O)`, or `nil` without a bias term.
    ///   - p: `O = p.numOutput`, `G = p.groups`, kernel, stride, pad and dilation per axis.
    /// - Returns: `(N, O, H', W')`, `H' = s(H − 1) + d(kH − 1) + 1 − 2p`
    ///   (``ShapeInference/deconvolutionOutput(_:kernel:stride:pad:dilation:)``).
    /// - Complexity: `N·I·H·W·(O/G)·kH·kW` multiply–adds.
    public static func deconvolution(_ x: [Double], shape: [Int], weight: [Double], bias: [Double]?,
                                     _ p: ConvolutionParameters) -> [Double] {
        let (n, inputs, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let outputs = p.numOutput
        let inputsPerGroup = inputs / p.groups, outputsPerGroup = outputs / p.groups
        let (kH, kW) = (p.kernel.h, p.kernel.w)
        let outH = ShapeInference.deconvolutionOutput(h, kernel: kH, stride: p.stride.h, pad: p.pad.h, dilation: p.dilation.h)
        let outW = ShapeInference.deconvolutionOutput(w, kernel: kW, stride: p.stride.w, pad: p.pad.w, dilation: p.dilation.w)
        requireCount(x, shape, "deconvolution input")
        requireCount(weight, [inputs, outputsPerGroup, kH, kW], "deconvolution weight")
        if let bias { requireCount(bias, [outputs], "deconvolution bias") }

        var y = [Double](repeating: 0, count: n * outputs * outH * outW)
        for image in 0..<n {
            for i in 0..<inputs {
                let group = i / inputsPerGroup
                for ih in 0..<h {
                    for iw in 0..<w {
                        let value = x[((image * inputs + i) * h + ih) * w + iw]
                        for c in 0..<outputsPerGroup {
                            let o = group * outputsPerGroup + c
                            for kh in 0..<kH {
                                let oh = ih * p.stride.h - p.pad.h + kh * p.dilation.h
                                guard oh >= 0, oh < outH else { continue }
                                for kw in 0..<kW {
                                    let ow = iw * p.stride.w - p.pad.w + kw * p.dilation.w
                                    guard ow >= 0, ow < outW else { continue }
                                    y[((image * outputs + o) * outH + oh) * outW + ow] +=
                                        value * weight[((i * outputsPerGroup + c) * kH + kh) * kW + kw]
                                }
                            }
                        }
                    }
                }
            }
        }
        if let bias {
            let plane = outH * outW
            for image in 0..<n {
                for o in 0..<outputs {
                    let base = (image * outputs + o) * plane
                    for j in 0..<plane { y[base + j] += bias[o] }
                }
            }
        }
        return y
    }

    /// Caffe `InnerProduct` (axis 1): flattens axes 1… of `x` to `I` features, then
    ///
    ///     y[n, o] = b[o] + Σ_i W[o, i] · x[n, i]
    ///
    /// - Parameters:
    ///   - x: activations, `(N, …)` with `I` = product of the non-batch extents.
    ///   - shape: `[N, …]`.
    ///   - weight: `(O, I)`.
    ///   - bias: `(O)`, or `nil` without a bias term.
    ///   - p: `O = p.numOutput`.
    /// - Returns: `(N, O)`.
    /// - Complexity: `N·O·I` multiply–adds.
    public static func innerProduct(_ x: [Double], shape: [Int], weight: [Double], bias: [Double]?,
                                    _ p: InnerProductParameters) -> [Double] {
        let n = shape[0]
        let features = elementCount(Array(shape.dropFirst()))
        let outputs = p.numOutput
        requireCount(x, shape, "inner product input")
        requireCount(weight, [outputs, features], "inner product weight")
        if let bias { requireCount(bias, [outputs], "inner product bias") }

        var y = [Double](repeating: 0, count: n * outputs)
        for image in 0..<n {
            for o in 0..<outputs {
                var sum = bias?[o] ?? 0
                for i in 0..<features {
                    sum += weight[o * features + i] * x[image * features + i]
                }
                y[image * outputs + o] = sum
            }
        }
        return y
    }
}
