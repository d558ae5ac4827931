import MagicInitCore

// The backward pass (reverse-mode differentiation) of the layers a network of homogeneous
// layers is made of: the affine layers (convolution, inner product), ReLU, max and average
// pooling, dropout (the identity at inference), flatten and reshape. Naive Float64 loops that
// mirror the forward functions index for index; checked against
// ``Reference/numericalGradients(_:inputs:parameters:topGradients:step:)``.

extension Reference {
    /// The gradients of the scalar
    ///
    ///     L = Σ_{b ∈ topGradients} ⟨topGradients[b], value(b)⟩
    ///
    /// with respect to every blob and every parameter, by the chain rule through the nodes in
    /// reverse topological order (what SGD sees: for the random linear loss `ℓ = η · z_N` of
    /// Krähenbühl et al. 2016, §3, `topGradients` is `{z_N: η}` and the parameter gradients are
    /// `∂ℓ/∂W_k`).
    ///
    /// - Parameters:
    ///   - values: every blob's value from ``forward(_:inputs:parameters:)`` with the same
    ///     `parameters`.
    ///   - parameters: as for ``forward(_:inputs:parameters:)``.
    ///   - topGradients: blob id → `∂L/∂value(b)`, of that blob's size.
    /// - Returns: `∂L/∂value(b)` per blob id (empty for blobs that do not reach `L`) and
    ///   `∂L/∂θ` for every key of ``Graph/parameters``.
    /// - Precondition: every node on a path to `topGradients` is one of the kinds above
    ///   (LRN, sigmoid, tanh, concat, eltwise, softmax, batch norm and scale are not
    ///   differentiated here; the numerical gradients cover them).
    /// - Complexity: about twice the forward pass's multiply–adds for the affine layers.
    public static func backward(_ graph: Graph, values: [[Double]], parameters: [String: [Double]],
                                topGradients: [Int: [Double]]) -> (blobs: [[Double]], parameters: [String: [Double]]) {
        var gradients = [[Double]](repeating: [], count: graph.blobs.count)
        for (id, g) in topGradients {
            requireCount(g, graph.blobs[id].shape, "top gradient of '\(graph.blobs[id].label)'")
            gradients[id] = g
        }
        var parameterGradients: [String: [Double]] = [:]
        for spec in graph.parameters { parameterGradients[spec.key] = [Double](repeating: 0, count: spec.count) }
        for index in graph.nodes.indices.reversed() {
            let node = graph.nodes[index]
            guard node.tops.count == 1, !gradients[node.tops[0]].isEmpty else { continue }
            let dy = gradients[node.tops[0]]
            let bottom = node.bottoms[0]
            let x = values[bottom], shape = graph.blobs[bottom].shape
            let weights = node.parameters.map { parameters[$0.key]! }
            let dx: [Double]
            switch node.kind {
            case .convolution(let p):
                let (input, weight, bias) = convolutionBackward(x, shape: shape, weight: weights[0], dy: dy, p)
                dx = input
                parameterGradients[node.parameters[0].key] = weight
                if p.biasTerm { parameterGradients[node.parameters[1].key] = bias }
            case .innerProduct(let p):
                let (input, weight, bias) = innerProductBackward(x, shape: shape, weight: weights[0], dy: dy, p)
                dx = input
                parameterGradients[node.parameters[0].key] = weight
                if p.biasTerm { parameterGradients[node.parameters[1].key] = bias }
            case .relu(let slope):
                dx = zip(x, dy).map { $0 > 0 ? $1 : Double(slope) * $1 }
            case .pooling(let p):
                dx = poolingBackward(x, shape: shape, dy: dy, p)
            case .dropout, .flatten, .reshape:
                dx = dy
            default:
                preconditionFailure("Reference.backward: layer '\(node.name)' (\(node.kind.caffeType)) is not differentiated here")
            }
            if gradients[bottom].isEmpty {
                gradients[bottom] = dx
            } else {
                for j in dx.indices { gradients[bottom][j] += dx[j] }
            }
        }
        return (gradients, parameterGradients)
    }

    /// The backward pass of ``convolution(_:shape:weight:bias:_:)``: with
    /// `dy = ∂L/∂y`, `(N, O, H', W')`,
    ///
    ///     ∂L/∂W[o, c, kh, kw] = Σ_{n, h', w'} dy[n, o, h', w'] · x[n, g·I/G + c, h'·s − p + kh·d, w'·s − p + kw·d]
    ///     ∂L/∂x[n, i, ih, iw] = Σ over the (o, h', w', kh, kw) that read it of dy · W
    ///     ∂L/∂b[o]            = Σ_{n, h', w'} dy[n, o, h', w']
    ///
    /// - Returns: `dx` `(N, I, H, W)`, `dW` `(O, I/G, kH, kW)`, `db` `(O)`.
    /// - Complexity: `2·N·O·H'·W'·(I/G)·kH·kW` multiply–adds.
    public static func convolutionBackward(_ x: [Double], shape: [Int], weight: [Double], dy: [Double],
                                           _ p: ConvolutionParameters) -> (dx: [Double], dW: [Double], db: [Double]) {
        let (n, inputs, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let outputs = p.numOutput
        let inputsPerGroup = inputs / p.groups, outputsPerGroup = outputs / p.groups
        let (kH, kW) = (p.kernel.h, p.kernel.w)
        let outH = ShapeInference.convolutionOutput(h, kernel: kH, stride: p.stride.h, pad: p.pad.h, dilation: p.dilation.h)
        let outW = ShapeInference.convolutionOutput(w, kernel: kW, stride: p.stride.w, pad: p.pad.w, dilation: p.dilation.w)
        requireCount(dy, [n, outputs, outH, outW], "convolution output gradient")
        var dx = [Double](repeating: 0, count: x.count)
        var dW = [Double](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: outputs)
        for image in 0..<n {
            for o in 0..<outputs {
                let group = o / outputsPerGroup
                for oh in 0..<outH {
                    for ow in 0..<outW {
                        let g = dy[((image * outputs + o) * outH + oh) * outW + ow]
                        db[o] += g
                        for c in 0..<inputsPerGroup {
                            let i = group * inputsPerGroup + c
                            for kh in 0..<kH {
                                let ih = oh * p.stride.h - p.pad.h + kh * p.dilation.h
                                guard ih >= 0, ih < h else { continue }
                                for kw in 0..<kW {
                                    let iw = ow * p.stride.w - p.pad.w + kw * p.dilation.w
                                    guard iw >= 0, iw < w else { continue }
                                    let wIndex = ((o * inputsPerGroup + c) * kH + kh) * kW + kw
                                    let xIndex = ((image * inputs + i) * h + ih) * w + iw
                                    dW[wIndex] += g * x[xIndex]
                                    dx[xIndex] += g * weight[wIndex]
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dx, dW, db)
    }

    /// The backward pass of ``innerProduct(_:shape:weight:bias:_:)``:
    /// `∂L/∂W[o, i] = Σ_n dy[n, o] · x[n, i]`, `∂L/∂x[n, i] = Σ_o dy[n, o] · W[o, i]`,
    /// `∂L/∂b[o] = Σ_n dy[n, o]`.
    /// - Returns: `dx` of `x`'s size, `dW` `(O, I)`, `db` `(O)`.
    /// - Complexity: `2·N·O·I` multiply–adds.
    public static func innerProductBackward(_ x: [Double], shape: [Int], weight: [Double], dy: [Double],
                                            _ p: InnerProductParameters) -> (dx: [Double], dW: [Double], db: [Double]) {
        let n = shape[0]
        let features = elementCount(Array(shape.dropFirst()))
        let outputs = p.numOutput
        requireCount(dy, [n, outputs], "inner product output gradient")
        var dx = [Double](repeating: 0, count: x.count)
        var dW = [Double](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: outputs)
        for image in 0..<n {
            for o in 0..<outputs {
                let g = dy[image * outputs + o]
                db[o] += g
                for i in 0..<features {
                    dW[o * features + i] += g * x[image * features + i]
                    dx[image * features + i] += g * weight[o * features + i]
                }
            }
        }
        return (dx, dW, db)
    }

    /// The backward pass of ``pooling(_:shape:_:)`` with the same windows: max pooling sends
    /// each output's gradient to the first position (row-major within the clipped window)
    /// holding the window's maximum, as Caffe's argmax does; average pooling spreads it
    /// evenly over the clipped window with the forward pass's divisor.
    /// - Parameters:
    ///   - x: the pooling's input, `(N, C, H, W)`.
    ///   - dy: `∂L/∂y`, `(N, C, H', W')`.
    /// - Returns: `∂L/∂x`, `(N, C, H, W)`.
    public static func poolingBackward(_ x: [Double], shape: [Int], dy: [Double], _ p: PoolingParameters) -> [Double] {
        let (n, channels, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (kernel, stride, pad, outH, outW) = poolingGeometry(shape: shape, p)
        requireCount(dy, [n, channels, outH, outW], "pooling output gradient")
        var dx = [Double](repeating: 0, count: x.count)
        for plane in 0..<(n * channels) {
            let base = plane * h * w
            for oh in 0..<outH {
                for ow in 0..<outW {
                    let g = dy[(plane * outH + oh) * outW + ow]
                    var hStart = oh * stride.h - pad.h, wStart = ow * stride.w - pad.w
                    switch p.method {
                    case .max:
                        let hEnd = min(hStart + kernel.h, h), wEnd = min(wStart + kernel.w, w)
                        hStart = max(hStart, 0); wStart = max(wStart, 0)
                        var best = -Double.infinity, at: Int?
                        for ih in hStart..<max(hEnd, hStart) {
                            for iw in wStart..<max(wEnd, wStart) where x[base + ih * w + iw] > best {
                                best = x[base + ih * w + iw]
                                at = base + ih * w + iw
                            }
                        }
                        if let at { dx[at] += g }
                    case .average:
                        var hEnd = min(hStart + kernel.h, h + pad.h), wEnd = min(wStart + kernel.w, w + pad.w)
                        let poolSize = Double((hEnd - hStart) * (wEnd - wStart))
                        hStart = max(hStart, 0); wStart = max(wStart, 0)
                        hEnd = min(hEnd, h); wEnd = min(wEnd, w)
                        for ih in hStart..<max(hEnd, hStart) {
                            for iw in wStart..<max(wEnd, wStart) { dx[base + ih * w + iw] += g / poolSize }
                        }
                    }
                }
            }
        }
        return dx
    }
}
