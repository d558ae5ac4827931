import CDNNL
import MagicInitCore

/// ReLU (leaky), Sigmoid and TanH on oneDNN eltwise primitives, in the layout of the bottom.
/// Backward uses the forward input (`src`) formulation, except for a ReLU with slope ≥ 0,
/// whose backward reads the forward output (`dst`).
final class ActivationKernel: Kernel {
    private let algorithm: dnnl_alg_kind_t
    private let alpha: Float
    private let forwardPrimitive: Primitive
    private var backwardPrimitive: Primitive?

    /// - Parameter inPlace: write the output over the input (a ReLU with slope ≥ 0 only).
    init(node: Graph.Node, graph: Graph, bottoms: [Memory], context: DNNLContext, inPlace: Bool = false) throws {
        switch node.kind {
        // With a slope ≥ 0 the output is positive exactly where the input is, so the
        // backward pass reads the output (oneDNN's `use_dst_for_bwd` form): the input need
        // not be kept, or even written (see `Engine.restore(_:into:through:)`).
        case .relu(let slope) where slope >= 0: (algorithm, alpha) = (dnnl_eltwise_relu_use_dst_for_bwd, slope)
        case .relu(let slope): (algorithm, alpha) = (dnnl_eltwise_relu, slope)
        case .sigmoid: (algorithm, alpha) = (dnnl_eltwise_logistic, 0)
        case .tanh: (algorithm, alpha) = (dnnl_eltwise_tanh, 0)
        default: preconditionFailure("ActivationKernel built for \(node.kind.caffeType)")
        }
        var data = bottoms[0].desc
        var d = dnnl_eltwise_desc_t()
        try check(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_training, algorithm, &data, alpha, 0), "describing \(node.kind.caffeType) \(node.name)")
        forwardPrimitive = try Primitive(opDesc: &d, hint: nil, context, "\(node.kind.caffeType) \(node.name)")
        super.init(base: node, graph: graph, bottoms: bottoms, context: context)
        precondition(!inPlace || algorithm == dnnl_eltwise_relu_use_dst_for_bwd, "in-place \(node.kind.caffeType) \(node.name)")
        let dst = forwardPrimitive.md(dnnl_query_dst_md)
        // oneDNN's eltwise runs in place (same memory as source and destination, and as
        // gradient in and out); its output has the input's layout.
        tops = [inPlace && descEqual(dst, bottoms[0].desc) ? bottoms[0] : try Memory(dst, context)]
    }

    /// Whether backward reads the forward output rather than the input.
    private var usesOutput: Bool { algorithm == dnnl_eltwise_relu_use_dst_for_bwd }

    /// ReLU's backward only asks whether its input (equally, its output) is positive.
    override var backwardReads: [(Memory, SavedEncoding)] {
        usesOutput ? [(tops[0], .positivity)] : [(bottoms[0], algorithm == dnnl_eltwise_relu ? .positivity : .raw)]
    }

    override func forward() throws {
        try forwardPrimitive.execute([(DNNL_ARG_SRC, bottoms[0]), (DNNL_ARG_DST, tops[0])], context)
    }

    /// Backward from the saved signs of the output (bits of `memory`, which must be this
    /// kernel's output): one masked copy of the gradient. `false` (nothing done) unless this
    /// is a plain ReLU (slope 0) that reads its output, with the gradients in its layout.
    func backward(positivity words: [UInt64], of memory: Memory) throws -> Bool {
        guard usesOutput, alpha == 0, memory.dataPointer == tops[0].dataPointer, memory.byteCount == tops[0].byteCount,
              descEqual(diffs[0].desc, tops[0].desc) else { return false }
        guard let sink = sinks[0] else { return true }
        guard descEqual(sink.desc, tops[0].desc) else { return false }
        Engine.maskPositive(words, diff: diffs[0].floats, into: sink.floats, count: tops[0].byteCount / 4)
        return true
    }

    override func backward(weights: Bool) throws {
        guard let sink = sinks[0] else { return }
        if backwardPrimitive == nil {
            var diff = diffs[0].desc, data = usesOutput ? tops[0].desc : bottoms[0].desc
            var d = dnnl_eltwise_desc_t()
            try check(dnnl_eltwise_backward_desc_init(&d, algorithm, &diff, &data, alpha, 0), "describing backward of \(name)")
            backwardPrimitive = try Primitive(opDesc: &d, hint: forwardPrimitive, context, "backward of \(name)")
        }
        let primitive = backwardPrimitive!
        try produce(into: sink, as: primitive.md(dnnl_query_diff_src_md), slot: "diff_src") { out in
            let data = usesOutput ? (DNNL_ARG_DST, tops[0]) : (DNNL_ARG_SRC, bottoms[0])
            try primitive.execute([data, (DNNL_ARG_DIFF_DST, diffs[0]), (DNNL_ARG_DIFF_SRC, out)], context)
        }
    }
}
