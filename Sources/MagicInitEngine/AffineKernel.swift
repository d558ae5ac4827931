import CDNNL
import MagicInitCore

/// Convolution, deconvolution and inner product on oneDNN: forward, backward to the data
/// and backward to the weights and bias. Layouts of activations and weights are chosen by
/// oneDNN (`format_tag any`); user-facing weights keep Caffe's layout.
final class AffineKernel: Kernel {
    private enum Family { case convolution, deconvolution, innerProduct }
    private let family: Family
    private let forwardPrimitive: Primitive
    /// Weights in the user's (Caffe) layout: logical dims as oneDNN sees them, with the
    /// strides of the Caffe blob.
    private let userWeightsDesc: dnnl_memory_desc_t
    private let weightsShape: [Int]
    /// Weight dims as oneDNN sees them: `(O, I, kH, kW)`, `(G, O/G, I/G, kH, kW)` or `(O, C, H, W)`.
    private let logicalWeightsShape: [Int]
    private let weights: Memory
    private let bias: Memory?
    private let biasCount: Int
    private let opName: String
    private let algorithm: ConvolutionAlgorithm

    /// Built on first backward pass.
    private var backwardData: Primitive?
    private var backwardWeights: Primitive?
    private var diffWeights: Memory?
    private var diffBias: Memory?

    /// Convolution geometry for oneDNN: strides, dilations (d − 1), left and right padding.
    private let geometry: (strides: [Int], dilates: [Int], padL: [Int], padR: [Int])

    /// - Parameters:
    ///   - plainWeights: the forward primitive takes the weights in the user's (Caffe) layout
    ///     rather than one oneDNN chooses (``Engine/Options/plainWeights``).
    ///   - sharing: the same node's kernel in another engine built alike: its weight and bias
    ///     buffers are used rather than new ones (when oneDNN chose the same layouts).
    init(node: Graph.Node, graph: Graph, bottoms: [Memory], context: DNNLContext, algorithm: ConvolutionAlgorithm,
         plainWeights: Bool = false, sharing: AffineKernel? = nil) throws {
        let x = graph.blobs[node.bottoms[0]].shape
        let y = graph.blobs[node.tops[0]].shape
        let hasBias: Bool
        var logicalWeights: [Int]
        var userWeights: dnnl_memory_desc_t
        switch node.kind {
        case .convolution(let p), .deconvolution(let p):
            let isConv: Bool
            if case .convolution = node.kind { isConv = true } else { isConv = false }
            family = isConv ? .convolution : .deconvolution
            hasBias = p.biasTerm
            let g = p.groups, o = p.numOutput, i = x[1], kh = p.kernel.h, kw = p.kernel.w
            // oneDNN wants (O, I, kH, kW) or grouped (G, O/G, I/G, kH, kW) for both conv and
            // deconv. Caffe's conv blob is exactly that; Caffe's deconv blob is
            // (I, O/G, kH, kW), i.e. O/G and I/G swapped, expressed through strides.
            logicalWeights = g == 1 ? [o, i, kh, kw] : [g, o / g, i / g, kh, kw]
            if isConv {
                userWeights = try plainDesc(logicalWeights)
            } else {
                let k = kh * kw
                let strides = g == 1 ? [k, o * k, kw, 1] : [(i / g) * (o / g) * k, k, (o / g) * k, kw, 1]
                userWeights = dnnl_memory_desc_t()
                var md = dnnl_memory_desc_t()
                try withDims(logicalWeights) { dims in
                    try withDims(strides) { st in
                        try check(dnnl_memory_desc_init_by_strides(&md, Int32(logicalWeights.count), dims, dnnl_f32, st), "describing deconvolution weights of \(node.name)")
                    }
                }
                userWeights = md
            }
            if isConv {
                geometry = ([p.stride.h, p.stride.w], [p.dilation.h - 1, p.dilation.w - 1], [p.pad.h, p.pad.w],
                            [AffineKernel.rightPad(input: x[2], output: y[2], kernel: kh, stride: p.stride.h, pad: p.pad.h, dilation: p.dilation.h),
                             AffineKernel.rightPad(input: x[3], output: y[3], kernel: kw, stride: p.stride.w, pad: p.pad.w, dilation: p.dilation.w)])
            } else {
                geometry = ([p.stride.h, p.stride.w], [p.dilation.h - 1, p.dilation.w - 1], [p.pad.h, p.pad.w],
                            [AffineKernel.rightPad(input: y[2], output: x[2], kernel: kh, stride: p.stride.h, pad: p.pad.h, dilation: p.dilation.h),
                             AffineKernel.rightPad(input: y[3], output: x[3], kernel: kw, stride: p.stride.w, pad: p.pad.w, dilation: p.dilation.w)])
            }
            biasCount = o
        case .innerProduct(let p):
            // oneDNN's inner product splits its reductions across threads, so its bits would
            // depend on the thread count, and replicas with different thread counts must
            // agree bit for bit (docs/DESIGN.md §3): it is planned and run on one thread (it is
            // memory-bound, so this costs little).
            family = .innerProduct
            hasBias = p.biasTerm
            logicalWeights = [p.numOutput] + x.dropFirst()
            userWeights = try plainDesc(logicalWeights)
            geometry = ([], [], [], [])
            biasCount = p.numOutput
        default:
            preconditionFailure("AffineKernel built for \(node.kind.caffeType)")
        }
        weightsShape = node.parameters[0].shape
        self.algorithm = algorithm
        logicalWeightsShape = logicalWeights
        userWeightsDesc = userWeights
        opName = "\(node.kind.caffeType) \(node.name)"

        convolutionShapes = (x, y)
        var src = try memoryDesc(x, dnnl_format_tag_any)
        var wts = plainWeights ? userWeights : try memoryDesc(logicalWeights, dnnl_format_tag_any)
        var dst = try memoryDesc(y, dnnl_format_tag_any)
        var biasDesc = try plainDesc([biasCount])
        let geometry = self.geometry
        let family = self.family
        let opName = self.opName
        // oneDNN plans a primitive's work split for the thread count current at creation:
        // inner products are planned (and run) on one thread, see `deterministic`.
        let savedThreads = omp_get_max_threads()
        if family == .innerProduct { omp_set_num_threads(1) }
        defer { omp_set_num_threads(savedThreads) }
        forwardPrimitive = try withUnsafeMutablePointer(to: &biasDesc) { biasPointer -> Primitive in
            let b: UnsafeMutablePointer<dnnl_memory_desc_t>? = hasBias ? biasPointer : nil
            switch family {
            case .convolution:
                var d = dnnl_convolution_desc_t()
                try AffineKernel.withGeometry(geometry) { s, dl, pl, pr in
                    try check(dnnl_dilated_convolution_forward_desc_init(&d, dnnl_forward_training, algorithm.dnnl(deconvolution: false), &src, &wts, b, &dst, s, dl, pl, pr), "describing \(opName)")
                }
                return try Primitive(opDesc: &d, hint: nil, context, opName)
            case .innerProduct:
                var d = dnnl_inner_product_desc_t()
                try check(dnnl_inner_product_forward_desc_init(&d, dnnl_forward_training, &src, &wts, b, &dst), "describing \(opName)")
                return try Primitive(opDesc: &d, hint: nil, context, opName)
            case .deconvolution:
                var d = dnnl_deconvolution_desc_t()
                try AffineKernel.withGeometry(geometry) { s, dl, pl, pr in
                    try check(dnnl_dilated_deconvolution_forward_desc_init(&d, dnnl_forward_training, dnnl_deconvolution_direct, &src, &wts, b, &dst, s, dl, pl, pr), "describing \(opName)")
                }
                return try Primitive(opDesc: &d, hint: nil, context, opName)
            }
        }
        let weightsDesc = forwardPrimitive.md(dnnl_query_weights_md)
        if let sharing, descEqual(sharing.weights.desc, weightsDesc), (sharing.bias == nil) == !hasBias {
            weights = try Memory(sharing: sharing.weights, context)
            bias = try sharing.bias.map { try Memory(sharing: $0, context) }
            weightsVersion = sharing.weightsVersion
            sharesWeights = true
        } else {
            weights = try Memory(weightsDesc, context)
            bias = hasBias ? try Memory(biasDesc, context) : nil
            weightsVersion = WeightsVersion()
            sharesWeights = false
        }
        super.init(base: node, graph: graph, bottoms: bottoms, context: context)
        let output = try Memory(forwardPrimitive.md(dnnl_query_dst_md), context)
        outputView = output
        tops = [output]
        inputView = bottoms[0]
    }

    /// Shapes the primitives see: the bottom's and the top's.
    private var convolutionShapes: (x: [Int], y: [Int]) = ([], [])
    private var inputView: Memory!
    private var outputView: Memory!
    private var diffView: Memory?
    private var sinkView: Memory?

    /// Right padding that makes oneDNN's output extent equal Caffe's:
    /// `(out − 1)·stride + dilation·(kernel − 1) + 1 − input − padLeft`.
    static func rightPad(input: Int, output: Int, kernel: Int, stride: Int, pad: Int, dilation: Int) -> Int {
        (output - 1) * stride + dilation * (kernel - 1) + 1 - input - pad
    }

    private static func withGeometry(_ g: (strides: [Int], dilates: [Int], padL: [Int], padR: [Int]),
                                     _ body: (UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>) throws -> Void) throws {
        try withDims(g.strides) { s in
            try withDims(g.dilates) { d in
                try withDims(g.padL) { l in
                    try withDims(g.padR) { r in try body(s, d, l, r) }
                }
            }
        }
    }

    /// The implementation oneDNN chose for the forward pass.
    var implementation: String { forwardPrimitive.implementation }

    /// Runs `body` on one OpenMP thread when this is an inner product: with several threads
    /// oneDNN splits the long reductions of these layers between them, and the sum order —
    /// hence the last bits — would depend on the thread count of the replica.
    private func deterministic(_ body: () throws -> Void) throws {
        guard family == .innerProduct else { return try body() }
        let saved = omp_get_max_threads()
        omp_set_num_threads(1)
        defer { omp_set_num_threads(saved) }
        try body()
    }

    /// ``weights`` in backward-data's layout, and the ``weightsVersion`` it was made from.
    private var backwardDataWeights: (memory: Memory, version: Int)?

    /// Counts writes to ``weights``; shared by the kernels of engines that share the buffer,
    /// so a write through any of them renews every backward-data copy.
    final class WeightsVersion: @unchecked Sendable { var value = 0 }
    private let weightsVersion: WeightsVersion

    /// Whether this kernel uses another engine's weight buffer.
    let sharesWeights: Bool

    /// Backward to data needs only the weights.
    override var backwardReads: [(Memory, SavedEncoding)] { [] }

    override func forward() throws {
        try deterministic { try forwardPass() }
    }

    private func forwardPass() throws {
        let src = try adapt(inputView, to: forwardPrimitive.md(dnnl_query_src_md), slot: "src")
        var args: [(Int32, Memory)] = [(DNNL_ARG_SRC, src), (DNNL_ARG_WEIGHTS, weights), (DNNL_ARG_DST, outputView)]
        if let bias { args.append((DNNL_ARG_BIAS, bias)) }
        try forwardPrimitive.execute(args, context)
    }

    private func buildBackward() throws {
        guard backwardData == nil else { return }
        let (x, y) = convolutionShapes
        var diffSrc = try memoryDesc(x, dnnl_format_tag_any)
        var diffDst = try memoryDesc(y, dnnl_format_tag_any)
        var src = try memoryDesc(x, dnnl_format_tag_any)
        var wts = try memoryDesc(logicalWeightsShape, dnnl_format_tag_any)
        var diffWts = wts
        var diffBiasDesc = try plainDesc([biasCount])
        let hasBias = bias != nil
        switch family {
        case .innerProduct:
            var dd = dnnl_inner_product_desc_t(), dw = dnnl_inner_product_desc_t()
            try check(dnnl_inner_product_backward_data_desc_init(&dd, &diffSrc, &wts, &diffDst), "describing backward-data of \(opName)")
            try withUnsafeMutablePointer(to: &diffBiasDesc) { b in
                try check(dnnl_inner_product_backward_weights_desc_init(&dw, &src, &diffWts, hasBias ? b : nil, &diffDst), "describing backward-weights of \(opName)")
            }
            backwardData = try Primitive(opDesc: &dd, hint: forwardPrimitive, context, "backward-data of \(opName)")
            backwardWeights = try Primitive(opDesc: &dw, hint: forwardPrimitive, context, "backward-weights of \(opName)")
        case .convolution:
            var dd = dnnl_convolution_desc_t(), dw = dnnl_convolution_desc_t()
            let algorithm = self.algorithm.dnnl(deconvolution: false)
            try AffineKernel.withGeometry(geometry) { s, dl, pl, pr in
                try check(dnnl_dilated_convolution_backward_data_desc_init(&dd, algorithm, &diffSrc, &wts, &diffDst, s, dl, pl, pr), "describing backward-data of \(opName)")
                try withUnsafeMutablePointer(to: &diffBiasDesc) { b in
                    try check(dnnl_dilated_convolution_backward_weights_desc_init(&dw, algorithm, &src, &diffWts, hasBias ? b : nil, &diffDst, s, dl, pl, pr), "describing backward-weights of \(opName)")
                }
            }
            backwardData = try Primitive(opDesc: &dd, hint: forwardPrimitive, context, "backward-data of \(opName)")
            backwardWeights = try Primitive(opDesc: &dw, hint: forwardPrimitive, context, "backward-weights of \(opName)")
        case .deconvolution:
            var dd = dnnl_deconvolution_desc_t(), dw = dnnl_deconvolution_desc_t()
            try AffineKernel.withGeometry(geometry) { s, dl, pl, pr in
                try check(dnnl_dilated_deconvolution_backward_data_desc_init(&dd, dnnl_deconvolution_direct, &diffSrc, &wts, &diffDst, s, dl, pl, pr), "describing backward-data of \(opName)")
                try withUnsafeMutablePointer(to: &diffBiasDesc) { b in
                    try check(dnnl_dilated_deconvolution_backward_weights_desc_init(&dw, dnnl_deconvolution_direct, &src, &diffWts, hasBias ? b : nil, &diffDst, s, dl, pl, pr), "describing backward-weights of \(opName)")
                }
            }
            backwardData = try Primitive(opDesc: &dd, hint: forwardPrimitive, context, "backward-data of \(opName)")
            backwardWeights = try Primitive(opDesc: &dw, hint: forwardPrimitive, context, "backward-weights of \(opName)")
        }
    }

    /// The weight-gradient buffers, allocated on the first pass that asks for weight
    /// gradients (as large as the weights: VGG-16's are 553 MB, never touched by passes
    /// that only need gradients of the data).
    private func weightGradientBuffers() throws -> (Memory, Memory?) {
        if let diffWeights { return (diffWeights, diffBias) }
        let weights = try Memory(backwardWeights!.md(dnnl_query_diff_weights_md), context)
        let bias = self.bias != nil ? try Memory(backwardWeights!.md(dnnl_query_diff_weights_md, 1), context) : nil
        (diffWeights, diffBias) = (weights, bias)
        return (weights, bias)
    }

    override func backward(weights computeWeights: Bool) throws {
        try deterministic {
            try buildBackward()
            try backwardPass(weights: computeWeights)
        }
    }

    private func backwardPass(weights computeWeights: Bool) throws {
        try buildBackward()
        if diffView == nil { diffView = diffs[0] }
        if sinkView == nil, let sink = sinks[0] { sinkView = sink }
        if let sink = sinkView, let backwardData {
            let diffDst = try adapt(diffView!, to: backwardData.md(dnnl_query_diff_dst_md), slot: "bwd-data diff_dst")
            // The weights in backward-data's layout: reordered once per weight change, not per pass.
            if backwardDataWeights?.version != weightsVersion.value {
                backwardDataWeights = (try adapt(weights, to: backwardData.md(dnnl_query_weights_md), slot: "bwd-data weights"), weightsVersion.value)
            }
            let w = backwardDataWeights!.memory
            try produce(into: sink, as: backwardData.md(dnnl_query_diff_src_md), slot: "diff_src") { out in
                try backwardData.execute([(DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_WEIGHTS, w), (DNNL_ARG_DIFF_SRC, out)], context)
            }
        }
        if computeWeights, let backwardWeights {
            let (diffWeights, diffBias) = try weightGradientBuffers()
            let src = try adapt(inputView, to: backwardWeights.md(dnnl_query_src_md), slot: "bwd-weights src")
            let diffDst = try adapt(diffView!, to: backwardWeights.md(dnnl_query_diff_dst_md), slot: "bwd-weights diff_dst")
            var args: [(Int32, Memory)] = [(DNNL_ARG_SRC, src), (DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_DIFF_WEIGHTS, diffWeights)]
            if let diffBias { args.append((DNNL_ARG_DIFF_BIAS, diffBias)) }
            try backwardWeights.execute(args, context)
        }
    }

    override func setParameter(_ role: ParameterRole, _ value: Tensor) throws {
        switch role {
        case .weight:
            try upload(value, into: weights, userDesc: userWeightsDesc, slot: "weights")
            weightsVersion.value += 1
        case .bias:
            guard let bias else { return try super.setParameter(role, value) }
            try upload(value, into: bias, slot: "bias")
        default: try super.setParameter(role, value)
        }
    }

    override func plainParameterBuffer(_ role: ParameterRole) -> UnsafeMutableBufferPointer<Float>? {
        guard role == .weight, descEqual(weights.desc, userWeightsDesc) else { return nil }
        return UnsafeMutableBufferPointer(start: weights.floats, count: weightsShape.reduce(1, *))
    }

    override func parameterWritten(_ role: ParameterRole) {
        if role == .weight { weightsVersion.value += 1 }
    }

    override func parameter(_ role: ParameterRole) throws -> Tensor {
        switch role {
        case .weight: return try download(weights, shape: weightsShape, userDesc: userWeightsDesc)
        case .bias:
            guard let bias else { return try super.parameter(role) }
            return try download(bias, shape: [biasCount])
        default: return try super.parameter(role)
        }
    }

    override func parameterGradient(_ role: ParameterRole) throws -> Tensor {
        switch role {
        case .weight:
            guard let diffWeights else { throw EngineError.missingParameter("gradient of \(name).weight (run backward with weights first)") }
            return try download(diffWeights, shape: weightsShape, userDesc: userWeightsDesc)
        case .bias:
            guard let diffBias else { throw EngineError.missingParameter("gradient of \(name).bias (run backward with weights first)") }
            return try download(diffBias, shape: [biasCount])
        default: return try super.parameterGradient(role)
        }
    }
}

/// Which convolution algorithm oneDNN may use.
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    /// Direct convolution (exact up to float32 summation order).
    case direct
    /// oneDNN picks (Winograd where it is faster; slightly larger rounding error).
    case auto

    func dnnl(deconvolution: Bool) -> dnnl_alg_kind_t {
        switch self {
        case .direct: dnnl_convolution_direct
        case .auto: dnnl_convolution_auto
        }
    }
}
