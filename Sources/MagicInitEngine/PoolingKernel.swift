import CDNNL
import MagicInitCore

/// Caffe max / average pooling on oneDNN. Output extents follow Caffe (ceil rounding with
/// its clip rule); oneDNN gets the right padding that produces them. Average pooling runs
/// oneDNN's `avg_exclude_padding` and then multiplies each output position by
/// `valid / caffeCount`, where Caffe's divisor counts the window clipped to the padded
/// input `[−pad, H + pad)` (so it counts padding but not the ceil overhang); the factor map
/// is all ones — and skipped — for the usual pad-free or overhang-free layers.
final class PoolingKernel: Kernel {
    private let forwardPrimitive: Primitive
    let workspace: Memory?
    let geometry: (kernel: [Int], strides: [Int], padL: [Int], padR: [Int])
    let algorithm: dnnl_alg_kind_t
    /// `(1, 1, OH, OW)` factors for average pooling, `nil` when all are 1.
    private let correction: (factors: Memory, forward: Primitive, pooled: Memory)?
    private var backwardPrimitive: Primitive?
    private var backwardCorrection: Primitive?

    init(node: Graph.Node, graph: Graph, bottoms: [Memory], context: DNNLContext) throws {
        guard case .pooling(let p) = node.kind else { preconditionFailure("PoolingKernel built for \(node.kind.caffeType)") }
        let x = graph.blobs[node.bottoms[0]].shape
        let y = graph.blobs[node.tops[0]].shape
        let (k, s, pad) = ShapeInference.poolingWindow(p, input: x)
        let padR = [(y[2] - 1) * s.h + k.h - x[2] - pad.h, (y[3] - 1) * s.w + k.w - x[3] - pad.w].map { max($0, 0) }
        geometry = ([k.h, k.w], [s.h, s.w], [pad.h, pad.w], padR)
        algorithm = p.method == .max ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding
        var src = bottoms[0].desc
        var dst = try memoryDesc(y, dnnl_format_tag_any)
        var d = dnnl_pooling_v2_desc_t()
        let name = "Pooling \(node.name)"
        let algorithm = self.algorithm
        try PoolingKernel.withGeometry(geometry) { kp, sp, dp, lp, rp in
            try check(dnnl_pooling_v2_forward_desc_init(&d, dnnl_forward_training, algorithm, &src, &dst, sp, kp, dp, lp, rp), "describing \(name)")
        }
        forwardPrimitive = try Primitive(opDesc: &d, hint: nil, context, name)
        let workspaceDesc = forwardPrimitive.md(dnnl_query_workspace_md)
        workspace = descBytes(workspaceDesc) > 0 ? try Memory(workspaceDesc, context) : nil
        let dstDesc = forwardPrimitive.md(dnnl_query_dst_md)

        if p.method == .average {
            let factors = PoolingKernel.caffeAverageFactors(input: [x[2], x[3]], output: [y[2], y[3]], kernel: [k.h, k.w], stride: [s.h, s.w], pad: [pad.h, pad.w])
            if factors.contains(where: { $0 != 1 }) {
                let factorDesc = try plainDesc([1, 1, y[2], y[3]])
                let factorMemory = try Memory(factorDesc, context)
                factors.withUnsafeBufferPointer { factorMemory.floats.update(from: $0.baseAddress!, count: $0.count) }
                var a = dstDesc, b = factorDesc, c = dstDesc
                var bd = dnnl_binary_desc_t()
                try check(dnnl_binary_desc_init(&bd, dnnl_binary_mul, &a, &b, &c), "describing the divisor correction of \(name)")
                correction = (factorMemory, try Primitive(opDesc: &bd, hint: nil, context, "divisor correction of \(name)"), try Memory(dstDesc, context))
            } else {
                correction = nil
            }
        } else {
            correction = nil
        }
        super.init(base: node, graph: graph, bottoms: bottoms, context: context)
        tops = [try Memory(dstDesc, context)]
    }

    /// `valid / caffeCount` per output position, row-major `(OH, OW)`.
    static func caffeAverageFactors(input: [Int], output: [Int], kernel: [Int], stride: [Int], pad: [Int]) -> [Float] {
        func axis(_ a: Int) -> [Double] {
            (0..<output[a]).map { o in
                let start = o * stride[a] - pad[a]
                let caffeEnd = min(start + kernel[a], input[a] + pad[a])
                let caffeCount = caffeEnd - start
                let valid = min(start + kernel[a], input[a]) - max(start, 0)
                return Double(valid) / Double(caffeCount)
            }
        }
        let h = axis(0), w = axis(1)
        return h.flatMap { fh in w.map { fw in Float(fh * fw) } }
    }

    private static func withGeometry(_ g: (kernel: [Int], strides: [Int], padL: [Int], padR: [Int]),
                                     _ body: (UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>) throws -> Void) throws {
        try withDims(g.kernel) { k in
            try withDims(g.strides) { s in
                try withDims([0, 0]) { d in
                    try withDims(g.padL) { l in
                        try withDims(g.padR) { r in try body(k, s, d, l, r) }
                    }
                }
            }
        }
    }

    /// Max pooling's backward reads the argmax workspace; average pooling nothing.
    override var backwardReads: [(Memory, SavedEncoding)] { workspace.map { [($0, .raw)] } ?? [] }

    override func forward() throws {
        var args: [(Int32, Memory)] = [(DNNL_ARG_SRC, bottoms[0])]
        if let workspace { args.append((DNNL_ARG_WORKSPACE, workspace)) }
        if let correction {
            try forwardPrimitive.execute(args + [(DNNL_ARG_DST, correction.pooled)], context)
            try correction.forward.execute([(DNNL_ARG_SRC_0, correction.pooled), (DNNL_ARG_SRC_1, correction.factors), (DNNL_ARG_DST, tops[0])], context)
        } else {
            try forwardPrimitive.execute(args + [(DNNL_ARG_DST, tops[0])], context)
        }
    }

    override func backward(weights: Bool) throws {
        guard let sink = sinks[0] else { return }
        if backwardPrimitive == nil {
            var diffSrc = try memoryDesc(bottomShapes[0], dnnl_format_tag_any)
            var diffDst = diffs[0].desc
            var d = dnnl_pooling_v2_desc_t()
            try PoolingKernel.withGeometry(geometry) { kp, sp, dp, lp, rp in
                try check(dnnl_pooling_v2_backward_desc_init(&d, algorithm, &diffSrc, &diffDst, sp, kp, dp, lp, rp), "describing backward of Pooling \(name)")
            }
            backwardPrimitive = try Primitive(opDesc: &d, hint: forwardPrimitive, context, "backward of Pooling \(name)")
        }
        let primitive = backwardPrimitive!
        var diffDst = diffs[0]
        if let correction {
            // d(out)/d(pooled) is the factor map: scale the incoming gradient by it.
            let scaled = try scratch(diffs[0].desc, slot: "scaled diff_dst")
            try correction.forward.execute([(DNNL_ARG_SRC_0, diffs[0]), (DNNL_ARG_SRC_1, correction.factors), (DNNL_ARG_DST, scaled)], context)
            diffDst = scaled
        }
        diffDst = try adapt(diffDst, to: primitive.md(dnnl_query_diff_dst_md), slot: "diff_dst")
        try produce(into: sink, as: primitive.md(dnnl_query_diff_src_md), slot: "diff_src") { out in
            var args: [(Int32, Memory)] = [(DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_DIFF_SRC, out)]
            if let workspace { args.append((DNNL_ARG_WORKSPACE, workspace)) }
            try primitive.execute(args, context)
        }
    }
}
