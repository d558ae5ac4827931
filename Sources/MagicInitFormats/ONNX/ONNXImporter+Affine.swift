import MagicInitCore

/// Operators with weights: convolutions, inner products (Gemm, MatMul), per-channel Mul and
/// Add (Scale and biases), BatchNormalization.
extension ONNXImporter {
    mutating func convolution(_ node: Onnx_NodeProto, index: Int, output: String,
                              _ unsupported: (String) -> ONNXError) throws(ONNXError) {
        let transposed = node.opType == "ConvTranspose"
        guard node.input.count >= 2 else { throw unsupported("needs an input and a weight") }
        let x = try blob(node.input[0], node: node, index: index)
        let w = try requireConstant(node.input[1], node: node, index: index)
        let input = shape(of: x)
        guard input.count == 4 else { throw unsupported("input '\(node.input[0])' has shape \(describeShape(input)); need (N, C, H, W)") }
        guard w.dims.count == 4 else { throw unsupported("weight '\(w.sourceName)' has dims \(describeShape(w.dims)); only 2-D convolutions (4-D weights) are supported") }
        let kernel = Size2(w.dims[2], w.dims[3])
        if let k = node.ints("kernel_shape"), k != [kernel.h, kernel.w] {
            throw unsupported("kernel_shape \(k) differs from the weight's \(kernel)")
        }
        let group = node.int("group", default: 1)
        let stride = try pair(node, "strides", default: 1, unsupported)
        let dilation = try pair(node, "dilations", default: 1, unsupported)
        let extent = Size2(dilation.h * (kernel.h - 1) + 1, dilation.w * (kernel.w - 1) + 1)
        let pad = try padding(node, input: input, extent: extent, stride: stride, allowSame: !transposed, unsupported)
        let numOutput: Int
        if transposed {
            guard (node.ints("output_padding") ?? []).allSatisfy({ $0 == 0 }), node.attribute("output_shape") == nil else {
                throw unsupported("output_padding and output_shape are not supported")
            }
            guard w.dims[0] == input[1] else {
                throw unsupported("weight dims \(describeShape(w.dims)) do not fit \(input[1]) input channels")
            }
            numOutput = w.dims[1] * group
        } else {
            guard w.dims[1] * group == input[1] else {
                throw unsupported("weight dims \(describeShape(w.dims)) with group \(group) do not fit \(input[1]) input channels")
            }
            numOutput = w.dims[0]
        }
        let bias = try node.input.count > 2 && !node.input[2].isEmpty ? requireConstant(node.input[2], node: node, index: index) : nil
        let layerName = parameterLayerName(tensor: w.sourceName, suffix: ".weight", node: node, index: index)
        let p = ConvolutionParameters(numOutput: numOutput, kernel: kernel, stride: stride, pad: pad, dilation: dilation,
                                      groups: group, biasTerm: bias != nil)
        try append(Layer(name: layerName, kind: transposed ? .deconvolution(p) : .convolution(p), bottoms: [x], tops: [output]),
                   node: node, index: index)
        try bind("\(layerName).weight", irShape: w.dims, to: w, node: node, index: index)
        if let bias {
            try bind("\(layerName).bias", irShape: [numOutput], to: bias, node: node, index: index)
        }
    }

    /// An inner product `(N, I) → (N, O)`; the weight is stored `(O, I)` or, `transposed`, `(I, O)`.
    mutating func innerProduct(_ node: Onnx_NodeProto, index: Int, input x: String, output: String,
                               weight: ONNXConstant, outputs: Int, fanIn: Int, transposed: Bool, bias: String?,
                               _ unsupported: (String) -> ONNXError) throws(ONNXError) {
        let s = shape(of: x)
        guard s.count == 2, s[1] == fanIn else {
            throw unsupported("input '\(x)' has shape \(describeShape(s)); the weight needs (N, \(fanIn))")
        }
        var biasConstant: ONNXConstant?
        if let bias {
            let c = try requireConstant(bias, node: node, index: index)
            guard c.count == outputs, c.dims == [outputs] || c.dims == [1, outputs] else {
                throw unsupported("bias '\(c.sourceName)' has dims \(describeShape(c.dims)); only (\(outputs)) or (1, \(outputs)) is supported")
            }
            biasConstant = c
        }
        let layerName = parameterLayerName(tensor: weight.sourceName, suffix: ".weight", node: node, index: index)
        try append(Layer(name: layerName, kind: .innerProduct(InnerProductParameters(numOutput: outputs, biasTerm: bias != nil)),
                         bottoms: [x], tops: [output]), node: node, index: index)
        try bind("\(layerName).weight", irShape: [outputs, fanIn], to: weight, transposed: transposed, node: node, index: index)
        if let biasConstant {
            try bind("\(layerName).bias", irShape: [outputs], to: biasConstant, node: node, index: index)
        }
    }

    /// Whether constant `c` broadcast against `shape` (numpy rules) holds one value per
    /// channel (axis 1).
    func isPerChannel(_ c: ONNXConstant, for shape: [Int]) -> Bool {
        guard shape.count >= 2, c.dims.count <= shape.count else { return false }
        let padded = Array(repeating: 1, count: shape.count - c.dims.count) + c.dims
        return padded[1] == shape[1] && padded.enumerated().allSatisfy { $0.offset == 1 || $0.element == 1 }
    }

    mutating func addOrMultiply(_ node: Onnx_NodeProto, index: Int, output: String,
                                _ unsupported: (String) -> ONNXError) throws(ONNXError) {
        guard node.input.count == 2 else { throw unsupported("needs two inputs") }
        let isAdd = node.opType == "Add"
        let (c0, c1) = (constant(node.input[0]), constant(node.input[1]))
        switch (c0, c1) {
        case (nil, nil):
            let a = try blob(node.input[0], node: node, index: index)
            let b = try blob(node.input[1], node: node, index: index)
            guard shape(of: a) == shape(of: b) else {
                throw unsupported("broadcasting \(describeShape(shape(of: a))) with \(describeShape(shape(of: b))) is not supported; only inputs of equal shape (Eltwise)")
            }
            try append(Layer(name: plainLayerName(node, index: index),
                             kind: .eltwise(EltwiseParameters(operation: isAdd ? .sum : .product)),
                             bottoms: [a, b], tops: [output]), node: node, index: index)
        case (let c?, nil), (nil, let c?):
            let value = c0 == nil ? node.input[0] : node.input[1]
            let x = try blob(value, node: node, index: index)
            let s = shape(of: x)
            if isAdd {
                guard try foldBias(c, into: value, output: output, node: node, index: index) else {
                    throw unsupported("adding constant '\(c.sourceName)' (dims \(describeShape(c.dims))) is supported only as a per-channel bias of the Conv, Gemm, MatMul or per-channel Mul right before it")
                }
            } else {
                guard isPerChannel(c, for: s) else {
                    throw unsupported("multiplying \(describeShape(s)) by constant '\(c.sourceName)' (dims \(describeShape(c.dims))) is supported only per channel (one value per channel of axis 1)")
                }
                let layerName = parameterLayerName(tensor: c.sourceName, suffix: ".weight", node: node, index: index)
                try append(Layer(name: layerName, kind: .scale(bias: false), bottoms: [x], tops: [output]), node: node, index: index)
                try bind("\(layerName).weight", irShape: [s[1]], to: c, node: node, index: index)
            }
        case (.some, .some):
            throw unsupported("both inputs are constants; MagicInit does not fold constant expressions")
        }
    }

    /// Turns `Add(value, c)` into the bias of the layer that produced `value`, when that
    /// layer is an affine layer or a Scale without a bias, `value` is read by nothing else and
    /// `c` holds one value per channel.
    mutating func foldBias(_ c: ONNXConstant, into value: String, output: String,
                           node: Onnx_NodeProto, index: Int) throws(ONNXError) -> Bool {
        guard alias[value] == nil, let li = producer[value], useCount[value] == 1,
              layers[li].tops == [value], !layers[li].bottoms.contains(value),
              let s = shapes[value], isPerChannel(c, for: s) else { return false }
        var layer = layers[li]
        switch layer.kind {
        case .convolution(var p) where !p.biasTerm:
            p.biasTerm = true
            layer.kind = .convolution(p)
        case .deconvolution(var p) where !p.biasTerm:
            p.biasTerm = true
            layer.kind = .deconvolution(p)
        case .innerProduct(var p) where !p.biasTerm:
            p.biasTerm = true
            layer.kind = .innerProduct(p)
        case .scale(false):
            layer.kind = .scale(bias: true)
        default:
            return false
        }
        layer.tops = [output]
        layers[li] = layer
        shapes[output] = s
        producer[output] = li
        shapes[value] = nil
        producer[value] = nil
        try bind("\(layer.name).bias", irShape: [s[1]], to: c, node: node, index: index)
        foldedBiases += 1
        return true
    }

    /// ONNX `BatchNormalization` = IR `BatchNorm` (mean, variance, factor 1) followed by an
    /// in-place `Scale` with bias (γ, β), as Caffe models write it.
    mutating func batchNormalization(_ node: Onnx_NodeProto, index: Int, output: String,
                                     _ unsupported: (String) -> ONNXError) throws(ONNXError) {
        guard node.input.count == 5 else { throw unsupported("needs 5 inputs (X, scale, B, mean, var)") }
        guard node.int("training_mode", default: 0) == 0 else { throw unsupported("training_mode=1 is not supported") }
        guard node.int("spatial", default: 1) == 1 else { throw unsupported("spatial=0 is not supported") }
        let x = try blob(node.input[0], node: node, index: index)
        let s = shape(of: x)
        guard s.count >= 2 else { throw unsupported("input has shape \(describeShape(s)); need a channel axis") }
        let channels = s[1]
        var c: [ONNXConstant] = []
        for i in 1...4 {
            let constant = try requireConstant(node.input[i], node: node, index: index)
            guard constant.count == channels else {
                throw unsupported("'\(constant.sourceName)' has \(constant.count) values for \(channels) channels")
            }
            c.append(constant)
        }
        let (gamma, beta, mean, variance) = (c[0], c[1], c[2], c[3])
        let base: String
        if mean.sourceName.hasSuffix(".running_mean") {
            base = parameterLayerName(tensor: mean.sourceName, suffix: ".running_mean", node: node, index: index)
        } else {
            base = parameterLayerName(tensor: gamma.sourceName, suffix: ".weight", node: node, index: index)
        }
        let scaleName = uniqueName(base + ".affine")
        try append(Layer(name: base, kind: .batchNorm(eps: node.float("epsilon", default: 1e-5)), bottoms: [x], tops: [output]),
                   node: node, index: index)
        try append(Layer(name: scaleName, kind: .scale(bias: true), bottoms: [output], tops: [output]), node: node, index: index)
        let factor = "\(base).\(ParameterRole.movingAverageFactor.rawValue)"
        synthesized[factor] = Tensor(shape: [1], data: [1])
        try bind("\(base).running_mean", irShape: [channels], to: mean, factorKey: factor, node: node, index: index)
        try bind("\(base).running_var", irShape: [channels], to: variance, factorKey: factor, node: node, index: index)
        try bind("\(scaleName).weight", irShape: [channels], to: gamma, node: node, index: index)
        try bind("\(scaleName).bias", irShape: [channels], to: beta, node: node, index: index)
    }
}
