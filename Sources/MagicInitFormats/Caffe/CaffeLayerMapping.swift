import MagicInitCore

/// Caffe layer parameters ↔ ``LayerKind``, both directions, with Caffe's defaults.
enum CaffeLayerMapping {
    // MARK: - Caffe → IR

    static func kind(of layer: Caffe_LayerParameter, file: String, notes: inout [String]) throws(CaffeError) -> LayerKind {
        func unsupported(_ message: String) -> CaffeError {
            CaffeError.unsupportedSetting(file: file, layer: layer.name, message: message)
        }
        switch layer.type {
        case "Convolution":
            return .convolution(try convolution(layer.convolutionParam, unsupported))
        case "Deconvolution":
            return .deconvolution(try convolution(layer.convolutionParam, unsupported))
        case "InnerProduct":
            let p = layer.innerProductParam
            guard p.axis == 1 else { throw unsupported("InnerProduct axis \(p.axis); only axis 1 is supported") }
            guard !p.transpose else { throw unsupported("InnerProduct transpose: true (weights stored (I, O)) is not supported") }
            return .innerProduct(InnerProductParameters(numOutput: Int(p.numOutput), biasTerm: p.biasTerm))
        case "ReLU":
            return .relu(negativeSlope: layer.reluParam.negativeSlope)
        case "Sigmoid":
            return .sigmoid
        case "TanH":
            return .tanh
        case "LRN":
            let p = layer.lrnParam
            guard p.normRegion == .acrossChannels else {
                throw unsupported("LRN norm_region WITHIN_CHANNEL is not supported; only ACROSS_CHANNELS")
            }
            return .lrn(LRNParameters(localSize: Int(p.localSize), alpha: p.alpha, beta: p.beta, k: p.k))
        case "Pooling":
            return .pooling(try pooling(layer.poolingParam, unsupported))
        case "Dropout":
            return .dropout(ratio: layer.dropoutParam.dropoutRatio)
        case "Concat":
            let p = layer.concatParam
            return .concat(axis: p.hasAxis || !p.hasConcatDim ? Int(p.axis) : Int(p.concatDim))
        case "Eltwise":
            let p = layer.eltwiseParam
            let operation: EltwiseParameters.Operation = switch p.operation {
            case .prod: .product
            case .sum: .sum
            case .max: .max
            }
            return .eltwise(EltwiseParameters(operation: operation, coefficients: p.coeff))
        case "Softmax":
            return .softmax(axis: Int(layer.softmaxParam.axis))
        case "Flatten":
            return .flatten(axis: Int(layer.flattenParam.axis), endAxis: Int(layer.flattenParam.endAxis))
        case "Reshape":
            let p = layer.reshapeParam
            guard p.axis == 0, p.numAxes == -1 else {
                throw unsupported("Reshape with axis \(p.axis) and num_axes \(p.numAxes); only the full-shape form (axis 0, num_axes -1) is supported")
            }
            return .reshape(shape: p.shape.dim.map { Int($0) })
        case "BatchNorm":
            let p = layer.batchNormParam
            if p.hasUseGlobalStats && !p.useGlobalStats {
                notes.append("BatchNorm '\(layer.name)': use_global_stats is false; MagicInit uses the stored statistics (inference)")
            }
            return .batchNorm(eps: p.eps)
        case "Scale":
            let p = layer.scaleParam
            guard layer.bottom.count == 1 else {
                throw unsupported("Scale with \(layer.bottom.count) bottoms; only the one-bottom form with learned γ is supported")
            }
            guard p.axis == 1, p.numAxes == 1 else {
                throw unsupported("Scale axis \(p.axis), num_axes \(p.numAxes); only axis 1 with num_axes 1 (per channel) is supported")
            }
            return .scale(bias: p.biasTerm)
        default:
            throw CaffeError.unsupportedLayerType(file: file, layer: layer.name, type: layer.type,
                                                  supported: Caffe.supportedLayerTypes + Caffe.inputLayerTypes)
        }
    }

    /// One (h, w) pair from Caffe's `repeated` form (0, 1 or 2 values) or the `_h`/`_w` pair.
    private static func pair(_ values: [UInt32], h: UInt32?, w: UInt32?, default value: Int, name: String,
                             _ unsupported: (String) -> CaffeError) throws(CaffeError) -> Size2 {
        if h != nil || w != nil {
            guard let h, let w else { throw unsupported("\(name)_h and \(name)_w must be given together") }
            guard values.isEmpty else { throw unsupported("give either \(name) or \(name)_h/\(name)_w, not both") }
            return Size2(Int(h), Int(w))
        }
        switch values.count {
        case 0: return Size2(value)
        case 1: return Size2(Int(values[0]))
        case 2: return Size2(Int(values[0]), Int(values[1]))
        default: throw unsupported("\(values.count) values for \(name); only 2-D (1 or 2 values) is supported")
        }
    }

    private static func convolution(_ p: Caffe_ConvolutionParameter,
                                    _ unsupported: (String) -> CaffeError) throws(CaffeError) -> ConvolutionParameters {
        guard p.axis == 1 else { throw unsupported("convolution axis \(p.axis); only axis 1 (channels) is supported") }
        guard !p.kernelSize.isEmpty || p.hasKernelH || p.hasKernelW else { throw unsupported("kernel_size is missing") }
        let kernel = try pair(p.kernelSize, h: p.hasKernelH ? p.kernelH : nil, w: p.hasKernelW ? p.kernelW : nil,
                              default: 1, name: "kernel", unsupported)
        let stride = try pair(p.stride, h: p.hasStrideH ? p.strideH : nil, w: p.hasStrideW ? p.strideW : nil,
                              default: 1, name: "stride", unsupported)
        let pad = try pair(p.pad, h: p.hasPadH ? p.padH : nil, w: p.hasPadW ? p.padW : nil,
                           default: 0, name: "pad", unsupported)
        let dilation = try pair(p.dilation, h: nil, w: nil, default: 1, name: "dilation", unsupported)
        return ConvolutionParameters(numOutput: Int(p.numOutput), kernel: kernel, stride: stride, pad: pad,
                                     dilation: dilation, groups: Int(p.group), biasTerm: p.biasTerm)
    }

    private static func pooling(_ p: Caffe_PoolingParameter,
                                _ unsupported: (String) -> CaffeError) throws(CaffeError) -> PoolingParameters {
        let method: PoolingParameters.Method
        switch p.pool {
        case .max: method = .max
        case .ave: method = .average
        case .stochastic: throw unsupported("STOCHASTIC pooling is not supported; only MAX and AVE")
        }
        var result = PoolingParameters(method: method, global: p.globalPooling,
                                       roundMode: p.roundMode == .floor ? .floor : .ceil)
        if !p.globalPooling {
            guard p.hasKernelSize || p.hasKernelH || p.hasKernelW else { throw unsupported("pooling kernel_size is missing") }
            result.kernel = try pair(p.hasKernelSize ? [p.kernelSize] : [], h: p.hasKernelH ? p.kernelH : nil,
                                     w: p.hasKernelW ? p.kernelW : nil, default: 1, name: "kernel", unsupported)
        }
        result.pad = p.hasPadH || p.hasPadW ? Size2(Int(p.padH), Int(p.padW)) : Size2(Int(p.pad))
        if p.hasStrideH || p.hasStrideW {
            guard p.hasStrideH, p.hasStrideW else { throw unsupported("stride_h and stride_w must be given together") }
            result.stride = Size2(Int(p.strideH), Int(p.strideW))
        } else {
            result.stride = Size2(Int(p.stride))
        }
        return result
    }

    // MARK: - IR → Caffe

    /// The Caffe layer for `layer`, without blobs.
    static func layerParameter(_ layer: Layer) -> Caffe_LayerParameter {
        var l = Caffe_LayerParameter()
        l.name = layer.name
        l.type = layer.kind.caffeType
        l.bottom = layer.bottoms
        l.top = layer.tops
        switch layer.kind {
        case .convolution(let p):
            l.convolutionParam = convolutionParameter(p)
        case .deconvolution(let p):
            l.convolutionParam = convolutionParameter(p)
        case .innerProduct(let p):
            l.innerProductParam.numOutput = UInt32(p.numOutput)
            if !p.biasTerm { l.innerProductParam.biasTerm = false }
        case .relu(let slope):
            if slope != 0 { l.reluParam.negativeSlope = slope }
        case .sigmoid, .tanh:
            break
        case .lrn(let p):
            l.lrnParam.localSize = UInt32(p.localSize)
            l.lrnParam.alpha = p.alpha
            l.lrnParam.beta = p.beta
            l.lrnParam.k = p.k
        case .pooling(let p):
            var q = Caffe_PoolingParameter()
            q.pool = p.method == .max ? .max : .ave
            if p.global {
                q.globalPooling = true
            } else {
                if p.kernel.h == p.kernel.w { q.kernelSize = UInt32(p.kernel.h) } else { q.kernelH = UInt32(p.kernel.h); q.kernelW = UInt32(p.kernel.w) }
                if p.stride.h == p.stride.w { q.stride = UInt32(p.stride.h) } else { q.strideH = UInt32(p.stride.h); q.strideW = UInt32(p.stride.w) }
                if p.pad.h == p.pad.w { if p.pad.h != 0 { q.pad = UInt32(p.pad.h) } } else { q.padH = UInt32(p.pad.h); q.padW = UInt32(p.pad.w) }
            }
            if p.roundMode == .floor { q.roundMode = .floor }
            l.poolingParam = q
        case .dropout(let ratio):
            l.dropoutParam.dropoutRatio = ratio
        case .concat(let axis):
            l.concatParam.axis = Int32(axis)
        case .eltwise(let p):
            l.eltwiseParam.operation = switch p.operation {
            case .sum: .sum
            case .product: .prod
            case .max: .max
            }
            l.eltwiseParam.coeff = p.coefficients
        case .softmax(let axis):
            l.softmaxParam.axis = Int32(axis)
        case .flatten(let axis, let endAxis):
            l.flattenParam.axis = Int32(axis)
            l.flattenParam.endAxis = Int32(endAxis)
        case .reshape(let shape):
            l.reshapeParam.shape.dim = shape.map { Int64($0) }
        case .batchNorm(let eps):
            l.batchNormParam.useGlobalStats = true
            l.batchNormParam.eps = eps
        case .scale(let bias):
            l.scaleParam.biasTerm = bias
        }
        return l
    }

    private static func convolutionParameter(_ p: ConvolutionParameters) -> Caffe_ConvolutionParameter {
        var c = Caffe_ConvolutionParameter()
        c.numOutput = UInt32(p.numOutput)
        if !p.biasTerm { c.biasTerm = false }
        if p.kernel.h == p.kernel.w { c.kernelSize = [UInt32(p.kernel.h)] } else { c.kernelH = UInt32(p.kernel.h); c.kernelW = UInt32(p.kernel.w) }
        if p.stride.h == p.stride.w { if p.stride.h != 1 { c.stride = [UInt32(p.stride.h)] } } else { c.strideH = UInt32(p.stride.h); c.strideW = UInt32(p.stride.w) }
        if p.pad.h == p.pad.w { if p.pad.h != 0 { c.pad = [UInt32(p.pad.h)] } } else { c.padH = UInt32(p.pad.h); c.padW = UInt32(p.pad.w) }
        if p.dilation.h == p.dilation.w { if p.dilation.h != 1 { c.dilation = [UInt32(p.dilation.h)] } } else { c.dilation = [UInt32(p.dilation.h), UInt32(p.dilation.w)] }
        if p.groups != 1 { c.group = UInt32(p.groups) }
        return c
    }
}

extension Caffe {
    /// A `NetParameter` with `network`'s inputs (`input` + `input_shape`, batch 1) and layers.
    static func netParameter(for network: Network) -> Caffe_NetParameter {
        var net = Caffe_NetParameter()
        net.name = network.name
        for input in network.inputs {
            net.input.append(input.name)
            var shape = Caffe_BlobShape()
            shape.dim = ([1] + input.shape).map { Int64($0) }
            net.inputShape.append(shape)
        }
        net.layer = network.layers.map(CaffeLayerMapping.layerParameter)
        return net
    }
}
