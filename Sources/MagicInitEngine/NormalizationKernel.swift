import CDNNL
import MagicInitCore

/// Caffe LRN across channels on oneDNN: `x / (k + α/n · Σ x²)^β`, the sum over `n`
/// neighbouring channels (clipped at the edges), exactly oneDNN's `lrn_across_channels`.
final class LRNKernel: Kernel {
    private let p: LRNParameters
    private let forwardPrimitive: Primitive
    private let workspace: Memory?
    private var backwardPrimitive: Primitive?

    init(node: Graph.Node, graph: Graph, bottoms: [Memory], context: DNNLContext) throws {
        guard case .lrn(let p) = node.kind else { preconditionFailure("LRNKernel built for \(node.kind.caffeType)") }
        self.p = p
        var data = bottoms[0].desc
        var d = dnnl_lrn_desc_t()
        try check(dnnl_lrn_forward_desc_init(&d, dnnl_forward_training, dnnl_lrn_across_channels, &data, Int64(p.localSize), p.alpha, p.beta, p.k), "describing LRN \(node.name)")
        forwardPrimitive = try Primitive(opDesc: &d, hint: nil, context, "LRN \(node.name)")
        let workspaceDesc = forwardPrimitive.md(dnnl_query_workspace_md)
        workspace = descBytes(workspaceDesc) > 0 ? try Memory(workspaceDesc, context) : nil
        super.init(base: node, graph: graph, bottoms: bottoms, context: context)
        tops = [try Memory(forwardPrimitive.md(dnnl_query_dst_md), context)]
    }

    override var backwardReads: [(Memory, SavedEncoding)] {
        [(bottoms[0], .raw)] + (workspace.map { [($0, .raw)] } ?? [])
    }

    override func forward() throws {
        var args: [(Int32, Memory)] = [(DNNL_ARG_SRC, bottoms[0]), (DNNL_ARG_DST, tops[0])]
        if let workspace { args.append((DNNL_ARG_WORKSPACE, workspace)) }
        try forwardPrimitive.execute(args, context)
    }

    override func backward(weights: Bool) throws {
        guard let sink = sinks[0] else { return }
        if backwardPrimitive == nil {
            var diff = diffs[0].desc, data = bottoms[0].desc
            var d = dnnl_lrn_desc_t()
            try check(dnnl_lrn_backward_desc_init(&d, dnnl_lrn_across_channels, &diff, &data, Int64(p.localSize), p.alpha, p.beta, p.k), "describing backward of LRN \(name)")
            backwardPrimitive = try Primitive(opDesc: &d, hint: forwardPrimitive, context, "backward of LRN \(name)")
        }
        let primitive = backwardPrimitive!
        let diffDst = try adapt(diffs[0], to: primitive.md(dnnl_query_diff_dst_md), slot: "diff_dst")
        try produce(into: sink, as: primitive.md(dnnl_query_diff_src_md), slot: "diff_src") { out in
            var args: [(Int32, Memory)] = [(DNNL_ARG_SRC, bottoms[0]), (DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_DIFF_SRC, out)]
            if let workspace { args.append((DNNL_ARG_WORKSPACE, workspace)) }
            try primitive.execute(args, context)
        }
    }
}

/// Caffe BatchNorm with global statistics on oneDNN batch normalisation
/// (`use_global_stats`): `(x − mean/f) / √(var/f + eps)`, where the factor rule is
/// Caffe's (`f = 0` zeroes mean and variance). No learned scale: that is Caffe's `Scale`.
final class BatchNormKernel: Kernel {
    private let eps: Float
    private let channels: Int
    private let forwardPrimitive: Primitive
    private var backwardPrimitive: Primitive?
    private let mean: Memory
    private let variance: Memory
    /// The stored (Caffe) blobs, kept to return them unchanged.
    private var stored: [ParameterRole: Tensor] = [:]

    init(node: Graph.Node, graph: Graph, bottoms: [Memory], context: DNNLContext) throws {
        guard case .batchNorm(let eps) = node.kind else { preconditionFailure("BatchNormKernel built for \(node.kind.caffeType)") }
        self.eps = eps
        channels = graph.blobs[node.bottoms[0]].shape[1]
        var data = bottoms[0].desc
        var d = dnnl_batch_normalization_desc_t()
        try check(dnnl_batch_normalization_forward_desc_init(&d, dnnl_forward_training, &data, eps, dnnl_use_global_stats.rawValue), "describing BatchNorm \(node.name)")
        forwardPrimitive = try Primitive(opDesc: &d, hint: nil, context, "BatchNorm \(node.name)")
        mean = try Memory(forwardPrimitive.md(dnnl_query_src_md, 1), context)
        variance = try Memory(forwardPrimitive.md(dnnl_query_src_md, 2), context)
        super.init(base: node, graph: graph, bottoms: bottoms, context: context)
        tops = [try Memory(forwardPrimitive.md(dnnl_query_dst_md), context)]
        stored[.movingAverageFactor] = Tensor(shape: [1], data: [1])
        stored[.runningMean] = Tensor(shape: [channels])
        stored[.runningVar] = Tensor(shape: [channels], repeating: 1)
        try refresh()
    }

    private func refresh() throws {
        let f = stored[.movingAverageFactor]!.data[0]
        let s: Float = f == 0 ? 0 : 1 / f
        try upload(Tensor(shape: [channels], data: stored[.runningMean]!.data.map { $0 * s }), into: mean, slot: "mean")
        try upload(Tensor(shape: [channels], data: stored[.runningVar]!.data.map { $0 * s }), into: variance, slot: "variance")
    }

    override func setParameter(_ role: ParameterRole, _ value: Tensor) throws {
        guard stored[role] != nil else { return try super.setParameter(role, value) }
        stored[role] = value
        try refresh()
    }

    override func parameter(_ role: ParameterRole) throws -> Tensor {
        guard let value = stored[role] else { return try super.parameter(role) }
        return value
    }

    /// Mean and variance are parameters; the input is read.
    override var backwardReads: [(Memory, SavedEncoding)] { [(bottoms[0], .raw)] }

    override func forward() throws {
        try forwardPrimitive.execute([(DNNL_ARG_SRC, bottoms[0]), (DNNL_ARG_MEAN, mean), (DNNL_ARG_VARIANCE, variance), (DNNL_ARG_DST, tops[0])], context)
    }

    override func backward(weights: Bool) throws {
        guard let sink = sinks[0] else { return }
        if backwardPrimitive == nil {
            var diff = diffs[0].desc, data = bottoms[0].desc
            var d = dnnl_batch_normalization_desc_t()
            try check(dnnl_batch_normalization_backward_desc_init(&d, dnnl_backward_data, &diff, &data, eps, dnnl_use_global_stats.rawValue), "describing backward of BatchNorm \(name)")
            backwardPrimitive = try Primitive(opDesc: &d, hint: forwardPrimitive, context, "backward of BatchNorm \(name)")
        }
        let primitive = backwardPrimitive!
        try produce(into: sink, as: primitive.md(dnnl_query_diff_src_md), slot: "diff_src") { out in
            try primitive.execute([(DNNL_ARG_SRC, bottoms[0]), (DNNL_ARG_MEAN, mean), (DNNL_ARG_VARIANCE, variance),
                                   (DNNL_ARG_DIFF_DST, diffs[0]), (DNNL_ARG_DIFF_SRC, out)], context)
        }
    }
}
