import CDNNL
import MagicInitCore

/// Caffe Eltwise. SUM runs on oneDNN's sum primitive (with the per-bottom coefficients)
/// and its backward on eltwise `linear` (`c_i · dy`); PRODUCT and MAX run in plain layout
/// in Swift (Caffe semantics: MAX routes the gradient to the first bottom holding the
/// maximum).
final class EltwiseLayerKernel: Kernel {
    private let p: EltwiseParameters
    private let sumPrimitive: Primitive?
    private var scalePrimitives: [Primitive] = []
    private let plain: dnnl_memory_desc_t

    init(node: Graph.Node, graph: Graph, bottoms: [Memory], context: DNNLContext) throws {
        guard case .eltwise(let p) = node.kind else { preconditionFailure("EltwiseLayerKernel built for \(node.kind.caffeType)") }
        self.p = p
        let y = graph.blobs[node.tops[0]].shape
        plain = try plainDesc(y)
        let topDesc: dnnl_memory_desc_t
        if p.operation == .sum {
            let scales = p.coefficients.isEmpty ? [Float](repeating: 1, count: bottoms.count) : p.coefficients
            var dst = bottoms[0].desc
            var pd: dnnl_primitive_desc_t?
            try bottoms.map(\.desc).withUnsafeBufferPointer { sources in
                try check(dnnl_sum_primitive_desc_create(&pd, &dst, Int32(sources.count), scales, sources.baseAddress, context.attributes, context.engine), "creating Eltwise SUM \(node.name)")
            }
            let primitive = try Primitive(pd: pd!, name: "Eltwise \(node.name)", context)
            sumPrimitive = primitive
            topDesc = primitive.md(dnnl_query_dst_md)
            for scale in scales {
                var data = topDesc
                var d = dnnl_eltwise_desc_t()
                try check(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, dnnl_eltwise_linear, &data, scale, 0), "describing the backward of Eltwise \(node.name)")
                scalePrimitives.append(try Primitive(opDesc: &d, hint: nil, context, "backward of Eltwise \(node.name)"))
            }
        } else {
            sumPrimitive = nil
            topDesc = plain
        }
        super.init(base: node, graph: graph, bottoms: bottoms, context: context)
        tops = [try Memory(topDesc, context)]
    }

    /// SUM's backward scales the gradient; PRODUCT and MAX read the bottoms.
    override var backwardReads: [(Memory, SavedEncoding)] { sumPrimitive != nil ? [] : bottoms.map { ($0, .raw) } }

    override func forward() throws {
        if let sumPrimitive {
            var args: [(Int32, Memory)] = [(DNNL_ARG_DST, tops[0])]
            for (i, b) in bottoms.enumerated() { args.append((DNNL_ARG_MULTIPLE_SRC + Int32(i), b)) }
            return try sumPrimitive.execute(args, context)
        }
        let inputs = try bottoms.enumerated().map { try adapt($1, to: plain, slot: "bottom \($0)").floats }
        let out = tops[0].floats
        let count = topShapes[0].reduce(1, *)
        for j in 0..<count {
            var acc = inputs[0][j]
            for input in inputs.dropFirst() {
                acc = p.operation == .product ? acc * input[j] : max(acc, input[j])
            }
            out[j] = acc
        }
    }

    override func backward(weights: Bool) throws {
        if sumPrimitive != nil {
            for (i, sink) in sinks.enumerated() {
                guard let sink else { continue }
                let primitive = scalePrimitives[i]
                try produce(into: sink, as: diffs[0].desc, slot: "diff \(i)") { out in
                    try primitive.execute([(DNNL_ARG_SRC, diffs[0]), (DNNL_ARG_DST, out)], context)
                }
            }
            return
        }
        let count = topShapes[0].reduce(1, *)
        let inputs = try bottoms.enumerated().map { try adapt($1, to: plain, slot: "bottom \($0)").floats }
        let dy = diffs[0].floats
        for (i, sink) in sinks.enumerated() {
            guard let sink else { continue }
            try produce(into: sink, as: plain, slot: "diff \(i)") { out in
                let dx = out.floats
                for j in 0..<count {
                    switch p.operation {
                    case .product:
                        var g = dy[j]
                        for (k, input) in inputs.enumerated() where k != i { g *= input[j] }
                        dx[j] = g
                    default:
                        // The first bottom holding the maximum receives the gradient.
                        var arg = 0
                        for k in 1..<inputs.count where inputs[k][j] > inputs[arg][j] { arg = k }
                        dx[j] = arg == i ? dy[j] : 0
                    }
                }
            }
        }
    }
}

/// Caffe Scale (per-channel `γ_c x + β_c`, channel axis 1) on oneDNN binary primitives
/// with a broadcast `(1, C, 1, …)` operand; the parameter gradients `Σ dy·x` and `Σ dy`
/// are reduced in plain layout in Float64.
final class ScaleKernel: Kernel {
    private let channels: Int
    private let gamma: Memory
    private let beta: Memory?
    private let multiply: Primitive
    private let add: Primitive?
    private var backwardMultiply: Primitive?
    private var gradients: [ParameterRole: Tensor] = [:]

    init(node: Graph.Node, graph: Graph, bottoms: [Memory], context: DNNLContext) throws {
        guard case .scale(let hasBias) = node.kind else { preconditionFailure("ScaleKernel built for \(node.kind.caffeType)") }
        let x = graph.blobs[node.bottoms[0]].shape
        channels = x[1]
        let broadcast = [1, x[1]] + [Int](repeating: 1, count: x.count - 2)
        let paramDesc = try plainDesc(broadcast)
        gamma = try Memory(paramDesc, context)
        beta = hasBias ? try Memory(paramDesc, context) : nil
        var a = bottoms[0].desc, b = paramDesc, c = bottoms[0].desc
        var d = dnnl_binary_desc_t()
        try check(dnnl_binary_desc_init(&d, dnnl_binary_mul, &a, &b, &c), "describing Scale \(node.name)")
        multiply = try Primitive(opDesc: &d, hint: nil, context, "Scale \(node.name)")
        if hasBias {
            var e = dnnl_binary_desc_t()
            try check(dnnl_binary_desc_init(&e, dnnl_binary_add, &a, &b, &c), "describing the bias of Scale \(node.name)")
            add = try Primitive(opDesc: &e, hint: nil, context, "bias of Scale \(node.name)")
        } else {
            add = nil
        }
        super.init(base: node, graph: graph, bottoms: bottoms, context: context)
        tops = [try Memory(bottoms[0].desc, context)]
        gamma.write([Float](repeating: 1, count: channels))
    }

    /// Backward to data multiplies by γ only.
    override var backwardReads: [(Memory, SavedEncoding)] { [] }

    override func forward() throws {
        try multiply.execute([(DNNL_ARG_SRC_0, bottoms[0]), (DNNL_ARG_SRC_1, gamma), (DNNL_ARG_DST, tops[0])], context)
        if let add, let beta {
            try add.execute([(DNNL_ARG_SRC_0, tops[0]), (DNNL_ARG_SRC_1, beta), (DNNL_ARG_DST, tops[0])], context)
        }
    }

    override func backward(weights: Bool) throws {
        if let sink = sinks[0] {
            try produce(into: sink, as: diffs[0].desc, slot: "diff_src") { out in
                try multiply.execute([(DNNL_ARG_SRC_0, diffs[0]), (DNNL_ARG_SRC_1, gamma), (DNNL_ARG_DST, out)], context)
            }
        }
        guard weights else { return }
        let shape = bottomShapes[0]
        let plain = try plainDesc(shape)
        let x = try adapt(bottoms[0], to: plain, slot: "plain src").floats
        let dy = try adapt(diffs[0], to: plain, slot: "plain diff_dst").floats
        let inner = shape.dropFirst(2).reduce(1, *)
        var dGamma = [Double](repeating: 0, count: channels), dBeta = dGamma
        for n in 0..<shape[0] {
            for c in 0..<channels {
                let base = (n * channels + c) * inner
                for j in base..<(base + inner) {
                    dGamma[c] += Double(dy[j]) * Double(x[j])
                    dBeta[c] += Double(dy[j])
                }
            }
        }
        gradients[.weight] = Tensor(shape: [channels], data: dGamma.map(Float.init))
        if beta != nil { gradients[.bias] = Tensor(shape: [channels], data: dBeta.map(Float.init)) }
    }

    override func setParameter(_ role: ParameterRole, _ value: Tensor) throws {
        switch role {
        case .weight: gamma.write(value.data)
        case .bias:
            guard let beta else { return try super.setParameter(role, value) }
            beta.write(value.data)
        default: try super.setParameter(role, value)
        }
    }

    override func parameter(_ role: ParameterRole) throws -> Tensor {
        switch role {
        case .weight: return Tensor(shape: [channels], data: gamma.read(channels))
        case .bias:
            guard let beta else { return try super.parameter(role) }
            return Tensor(shape: [channels], data: beta.read(channels))
        default: return try super.parameter(role)
        }
    }

    override func parameterGradient(_ role: ParameterRole) throws -> Tensor {
        guard let g = gradients[role] else {
            throw EngineError.missingParameter("gradient of \(name).\(role.rawValue) (run backward with weights first)")
        }
        return g
    }
}
