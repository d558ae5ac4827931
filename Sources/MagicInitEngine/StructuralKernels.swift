import CDNNL
import MagicInitCore

/// Caffe Concat on oneDNN's concat primitive (layout of the result chosen by oneDNN).
/// Backward: the top's gradient in plain layout, sliced per bottom along the axis.
final class ConcatKernel: Kernel {
    private let axis: Int
    private let forwardPrimitive: Primitive
    private var plainDiff: Memory?
    private var slices: [Memory] = []

    init(node: Graph.Node, graph: Graph, bottoms: [Memory], context: DNNLContext) throws {
        guard case .concat(let axisIn) = node.kind else { preconditionFailure("ConcatKernel built for \(node.kind.caffeType)") }
        let y = graph.blobs[node.tops[0]].shape
        axis = axisIn < 0 ? axisIn + y.count : axisIn
        var dst = try memoryDesc(y, dnnl_format_tag_any)
        let sources = bottoms.map(\.desc)
        var pd: dnnl_primitive_desc_t?
        let axis = self.axis
        try sources.withUnsafeBufferPointer {
            try check(dnnl_concat_primitive_desc_create(&pd, &dst, Int32($0.count), Int32(axis), $0.baseAddress, context.attributes, context.engine), "creating Concat \(node.name)")
        }
        forwardPrimitive = try Primitive(pd: pd!, name: "Concat \(node.name)", context)
        super.init(base: node, graph: graph, bottoms: bottoms, context: context)
        tops = [try Memory(forwardPrimitive.md(dnnl_query_dst_md), context)]
    }

    override var backwardReads: [(Memory, SavedEncoding)] { [] }

    override func forward() throws {
        var args: [(Int32, Memory)] = [(DNNL_ARG_DST, tops[0])]
        for (i, b) in bottoms.enumerated() { args.append((DNNL_ARG_MULTIPLE_SRC + Int32(i), b)) }
        try forwardPrimitive.execute(args, context)
    }

    override func backward(weights: Bool) throws {
        let y = topShapes[0]
        if plainDiff == nil {
            let plain = try Memory(plainDesc(y), context)
            plainDiff = plain
            var offset = 0
            for shape in bottomShapes {
                var offsets = [Int](repeating: 0, count: y.count)
                offsets[axis] = offset
                var sub = dnnl_memory_desc_t()
                var parent = plain.desc
                try withDims(shape) { dims in
                    try withDims(offsets) { off in
                        try check(dnnl_memory_desc_init_submemory(&sub, &parent, dims, off), "slicing the gradient of Concat \(name)")
                    }
                }
                slices.append(try Memory(viewing: plain, as: sub, context))
                offset += shape[axis]
            }
        }
        try copy(diffs[0], into: plainDiff!, slot: "plain diff")
        for (i, sink) in sinks.enumerated() {
            guard let sink else { continue }
            try copy(slices[i], into: sink, slot: "slice \(i)")
        }
    }
}

/// Dropout (identity at inference), Flatten and Reshape: the data is copied unchanged
/// (row-major order) into a plain top of the new shape; Dropout keeps the bottom's layout.
final class IdentityKernel: Kernel {
    /// The top's buffer seen with the bottom's dims (plain), for Flatten / Reshape.
    private var topAsBottom: Memory?
    private var diffAsBottom: Memory?
    private let forwardReorder: Reorder
    private let keepsLayout: Bool

    init(node: Graph.Node, graph: Graph, bottoms: [Memory], context: DNNLContext) throws {
        let x = graph.blobs[node.bottoms[0]].shape
        let y = graph.blobs[node.tops[0]].shape
        let keepsLayout: Bool
        if case .dropout = node.kind { keepsLayout = true } else { keepsLayout = false }
        self.keepsLayout = keepsLayout
        let top = try Memory(keepsLayout ? bottoms[0].desc : plainDesc(y), context)
        let view = keepsLayout ? top : try Memory(viewing: top, as: plainDesc(x), context)
        forwardReorder = try Reorder(from: bottoms[0].desc, to: view.desc, context, "\(node.kind.caffeType) \(node.name)")
        super.init(base: node, graph: graph, bottoms: bottoms, context: context)
        tops = [top]
        topAsBottom = view
    }

    override var backwardReads: [(Memory, SavedEncoding)] { [] }

    override func forward() throws {
        try forwardReorder.run(bottoms[0], topAsBottom!, context)
    }

    override func backward(weights: Bool) throws {
        guard let sink = sinks[0] else { return }
        if diffAsBottom == nil {
            diffAsBottom = keepsLayout ? diffs[0] : try Memory(viewing: diffs[0], as: plainDesc(bottomShapes[0]), context)
        }
        try copy(diffAsBottom!, into: sink, slot: "diff")
    }
}

/// Softmax along an axis on oneDNN's softmax (accurate) primitive.
final class SoftmaxKernel: Kernel {
    private let axis: Int
    private let forwardPrimitive: Primitive
    private var backwardPrimitive: Primitive?

    init(node: Graph.Node, graph: Graph, bottoms: [Memory], context: DNNLContext) throws {
        guard case .softmax(let axisIn) = node.kind else { preconditionFailure("SoftmaxKernel built for \(node.kind.caffeType)") }
        let x = graph.blobs[node.bottoms[0]].shape
        axis = axisIn < 0 ? axisIn + x.count : axisIn
        var src = bottoms[0].desc
        var dst = bottoms[0].desc
        var d = dnnl_softmax_v2_desc_t()
        try check(dnnl_softmax_v2_forward_desc_init(&d, dnnl_forward_training, dnnl_softmax_accurate, &src, &dst, Int32(axis)), "describing Softmax \(node.name)")
        forwardPrimitive = try Primitive(opDesc: &d, hint: nil, context, "Softmax \(node.name)")
        super.init(base: node, graph: graph, bottoms: bottoms, context: context)
        tops = [try Memory(forwardPrimitive.md(dnnl_query_dst_md), context)]
    }

    /// Softmax's backward reads its output.
    override var backwardReads: [(Memory, SavedEncoding)] { [(tops[0], .raw)] }

    override func forward() throws {
        try forwardPrimitive.execute([(DNNL_ARG_SRC, bottoms[0]), (DNNL_ARG_DST, tops[0])], context)
    }

    override func backward(weights: Bool) throws {
        guard let sink = sinks[0] else { return }
        if backwardPrimitive == nil {
            var diffSrc = sink.desc, diffDst = diffs[0].desc, dst = tops[0].desc
            var d = dnnl_softmax_v2_desc_t()
            try check(dnnl_softmax_v2_backward_desc_init(&d, dnnl_softmax_accurate, &diffSrc, &diffDst, &dst, Int32(axis)), "describing backward of Softmax \(name)")
            backwardPrimitive = try Primitive(opDesc: &d, hint: forwardPrimitive, context, "backward of Softmax \(name)")
        }
        let primitive = backwardPrimitive!
        try produce(into: sink, as: primitive.md(dnnl_query_diff_src_md), slot: "diff_src") { out in
            try primitive.execute([(DNNL_ARG_DST, tops[0]), (DNNL_ARG_DIFF_DST, diffs[0]), (DNNL_ARG_DIFF_SRC, out)], context)
        }
    }
}
