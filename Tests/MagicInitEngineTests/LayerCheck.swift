import MagicInitCore
import MagicInitEngine
import MagicInitReference

/// Compares the oneDNN engine with the Float64 reference on one small network:
/// forward values of every blob, and backward gradients (inputs and parameters) against
/// central finite differences of the reference's forward pass.
struct LayerCheck {
    let graph: Graph
    let inputs: [Tensor]
    let parameters: ParameterSet
    let topGradients: [Int: Tensor]

    /// Random inputs `N(0, 1)`, parameters `N(0, parameterStd²)`, top gradients `N(0, 1)`
    /// on every output, all from Philox streams keyed by `seed`.
    init(_ network: Network, batchSize: Int = 2, seed: UInt64 = 7, parameterStd: Double = 0.3,
         fixed: ParameterSet = [:]) throws {
        let graph = try Graph(network, batchSize: batchSize)
        self.graph = graph
        inputs = graph.inputs.enumerated().map { slot, id in
            let shape = graph.blobs[id].shape
            return Tensor(shape: shape, data: Philox(seed: seed, stream: Philox.stream("input", slot)).gaussians(count: shape.reduce(1, *)))
        }
        var parameters: ParameterSet = [:]
        for (i, spec) in graph.parameters.enumerated() {
            parameters[spec.key] = fixed[spec.key] ?? Tensor(shape: spec.shape, data: Philox(seed: seed, stream: Philox.stream("parameter", i)).gaussians(count: spec.count, std: parameterStd))
        }
        self.parameters = parameters
        var tops: [Int: Tensor] = [:]
        for id in graph.outputs {
            let shape = graph.blobs[id].shape
            tops[id] = Tensor(shape: shape, data: Philox(seed: seed, stream: Philox.stream("top", id)).gaussians(count: shape.reduce(1, *)))
        }
        topGradients = tops
    }

    func makeEngine() throws -> Engine {
        let engine = try Engine(graph: graph, options: .init(gradientToInputs: true))
        try engine.setParameters(parameters)
        for (slot, x) in inputs.enumerated() { try engine.setInput(x, at: slot) }
        return engine
    }

    /// Largest `|engine − reference|` over every blob, divided by the largest `|reference|`
    /// of that blob (at least 1e-3), and the blob where it occurred.
    func forwardError() throws -> (error: Double, blob: String) {
        let engine = try makeEngine()
        try engine.forward()
        let reference = Reference.forward(graph, inputs: inputs, parameters: parameters)
        var worst = (0.0, "")
        for id in graph.blobs.indices {
            let got = try engine.value(of: id).data
            let error = LayerCheck.relativeError(got.map(Double.init), reference[id])
            if error > worst.0 { worst = (error, graph.blobs[id].label) }
        }
        return worst
    }

    /// Largest relative error of the engine's input and parameter gradients against
    /// finite differences of `L = Σ ⟨topGradient, output⟩`, and where it occurred.
    func backwardError() throws -> (error: Double, what: String) {
        let engine = try makeEngine()
        try engine.forward()
        for (id, g) in topGradients { try engine.setGradient(g, of: id) }
        try engine.backward(weights: true)
        let numeric = Reference.numericalGradients(
            graph, inputs: inputs.map { $0.data.map(Double.init) },
            parameters: parameters.mapValues { $0.data.map(Double.init) },
            topGradients: topGradients.mapValues { $0.data.map(Double.init) })
        var worst = (0.0, "")
        for (slot, id) in graph.inputs.enumerated() {
            let error = LayerCheck.relativeError(try engine.gradient(of: id).data.map(Double.init), numeric.inputs[slot])
            if error > worst.0 { worst = (error, "d/d\(graph.blobs[id].label)") }
        }
        for spec in graph.parameters where spec.role == .weight || spec.role == .bias {
            if case .batchNorm = graph.nodes[graph.node(named: spec.layer)!].kind { continue }
            let error = LayerCheck.relativeError(try engine.parameterGradient(spec.key).data.map(Double.init), numeric.parameters[spec.key]!)
            if error > worst.0 { worst = (error, "d/d\(spec.key)") }
        }
        return worst
    }

    static func relativeError(_ got: [Double], _ expected: [Double]) -> Double {
        precondition(got.count == expected.count, "sizes differ: \(got.count) vs \(expected.count)")
        let scale = max(expected.map(abs).max() ?? 0, 1e-3)
        var worst = 0.0
        for (a, b) in zip(got, expected) { worst = max(worst, abs(a - b) / scale) }
        return worst
    }
}

/// One-layer (or few-layer) networks on small random shapes.
enum Cases {
    static func single(_ name: String, input: [Int], _ kind: LayerKind) -> Network {
        var b = NetworkBuilder(name: name, shape: input)
        b.add("layer", kind)
        return b.network
    }

    static func conv(_ o: Int, k: Size2, s: Size2 = Size2(1), p: Size2 = Size2(0), d: Size2 = Size2(1), g: Int = 1, bias: Bool = true) -> LayerKind {
        .convolution(.init(numOutput: o, kernel: k, stride: s, pad: p, dilation: d, groups: g, biasTerm: bias))
    }

    static func deconv(_ o: Int, k: Size2, s: Size2 = Size2(1), p: Size2 = Size2(0), d: Size2 = Size2(1), g: Int = 1) -> LayerKind {
        .deconvolution(.init(numOutput: o, kernel: k, stride: s, pad: p, dilation: d, groups: g))
    }

    static func pool(_ m: PoolingParameters.Method, k: Int, s: Int, p: Int = 0, round: PoolingParameters.RoundMode = .ceil, global: Bool = false) -> LayerKind {
        .pooling(.init(method: m, kernel: Size2(k), stride: Size2(s), pad: Size2(p), global: global, roundMode: round))
    }

    /// Two inputs → two convolutions (blocked layouts) → `combine` → ReLU; the first input
    /// also feeds both convolutions' sibling so its gradient is accumulated over edges.
    static func twoBranches(_ name: String, _ combine: LayerKind, channels: (Int, Int) = (8, 8)) -> Network {
        var network = Network(name: name, inputs: [.init(name: "a", shape: [3, 6, 6]), .init(name: "b", shape: [3, 6, 6])], layers: [])
        network.layers = [
            Layer(name: "convA", kind: conv(channels.0, k: Size2(3), p: Size2(1)), bottoms: ["a"], tops: ["ya"]),
            Layer(name: "convB", kind: conv(channels.1, k: Size2(3), p: Size2(1)), bottoms: ["a"], tops: ["yb"]),
            Layer(name: "convC", kind: conv(channels.1, k: Size2(1)), bottoms: ["b"], tops: ["yc"]),
            Layer(name: "mix", kind: combine, bottoms: name == "concat" ? ["ya", "yb", "yc"] : ["yb", "yc"], tops: ["mixed"]),
            Layer(name: "relu", kind: .relu(negativeSlope: 0), bottoms: ["mixed"], tops: ["mixed"]),
        ]
        return network
    }

    static let all: [(String, Network)] = [
        ("conv k3 p1", single("c", input: [3, 7, 7], conv(4, k: Size2(3), p: Size2(1)))),
        ("conv k3 s2 p1 non-square input", single("c", input: [3, 8, 9], conv(5, k: Size2(3), s: Size2(2), p: Size2(1)))),
        ("conv k5 s3 p2 (floor)", single("c", input: [2, 11, 10], conv(3, k: Size2(5), s: Size2(3), p: Size2(2)))),
        ("conv groups 2", single("c", input: [4, 6, 6], conv(6, k: Size2(3), g: 2))),
        ("conv dilation 2", single("c", input: [3, 9, 9], conv(4, k: Size2(3), p: Size2(2), d: Size2(2)))),
        ("conv 3x1 no bias", single("c", input: [3, 6, 5], conv(4, k: Size2(3, 1), p: Size2(1, 0), bias: false))),
        ("conv 16 channels (blocked)", single("c", input: [16, 5, 5], conv(16, k: Size2(3), p: Size2(1)))),
        ("deconv k3 s2 p1", single("d", input: [4, 4, 4], deconv(3, k: Size2(3), s: Size2(2), p: Size2(1)))),
        ("deconv groups 2", single("d", input: [4, 3, 3], deconv(6, k: Size2(2), s: Size2(2), g: 2))),
        ("deconv dilation 2", single("d", input: [3, 4, 4], deconv(2, k: Size2(3), p: Size2(1), d: Size2(2)))),
        ("inner product from 4-D", single("ip", input: [3, 4, 4], .innerProduct(.init(numOutput: 5)))),
        ("inner product from 2-D", single("ip", input: [7], .innerProduct(.init(numOutput: 4)))),
        ("inner product no bias", single("ip", input: [6], .innerProduct(.init(numOutput: 3, biasTerm: false)))),
        ("relu", single("a", input: [3, 5, 5], .relu(negativeSlope: 0))),
        ("leaky relu 0.1", single("a", input: [3, 5, 5], .relu(negativeSlope: 0.1))),
        ("sigmoid", single("a", input: [3, 5, 5], .sigmoid)),
        ("tanh", single("a", input: [3, 5, 5], .tanh)),
        ("lrn 5 across channels", single("n", input: [7, 4, 4], .lrn(.init(localSize: 5, alpha: 0.5, beta: 0.75, k: 2)))),
        ("lrn 3 across channels", single("n", input: [4, 3, 3], .lrn(.init(localSize: 3, alpha: 1.0, beta: 0.6, k: 1)))),
        ("max pool k3 s2 ceil", single("p", input: [3, 7, 7], pool(.max, k: 3, s: 2))),
        ("max pool k3 s2 ceil overhang", single("p", input: [3, 6, 6], pool(.max, k: 3, s: 2))),
        ("max pool k3 s2 p1", single("p", input: [3, 6, 6], pool(.max, k: 3, s: 2, p: 1))),
        ("max pool k2 s2 floor", single("p", input: [3, 7, 7], pool(.max, k: 2, s: 2, round: .floor))),
        ("avg pool k3 s2 p1 ceil (Caffe divisor)", single("p", input: [3, 6, 6], pool(.average, k: 3, s: 2, p: 1))),
        ("avg pool k3 s2 ceil overhang no pad", single("p", input: [3, 6, 6], pool(.average, k: 3, s: 2))),
        ("avg pool k3 s1 p1", single("p", input: [3, 5, 5], pool(.average, k: 3, s: 1, p: 1))),
        ("global avg pool", single("p", input: [5, 4, 3], pool(.average, k: 1, s: 1, global: true))),
        ("global max pool", single("p", input: [5, 4, 3], pool(.max, k: 1, s: 1, global: true))),
        ("dropout", single("x", input: [3, 4, 4], .dropout(ratio: 0.5))),
        ("flatten", single("x", input: [3, 4, 4], .flatten(axis: 1, endAxis: -1))),
        ("reshape", single("x", input: [4, 3, 2], .reshape(shape: [0, 6, -1, 2]))),
        ("softmax on (N, C)", single("s", input: [5], .softmax(axis: 1))),
        ("softmax on (N, C, H, W)", single("s", input: [4, 3, 3], .softmax(axis: 1))),
        ("scale with bias", single("s", input: [4, 3, 3], .scale(bias: true))),
        ("scale without bias", single("s", input: [4, 3, 3], .scale(bias: false))),
        ("concat of three branches", twoBranches("concat", .concat(axis: 1), channels: (8, 5))),
        ("eltwise sum with coefficients", twoBranches("sum", .eltwise(.init(operation: .sum, coefficients: [0.5, -2])))),
        ("eltwise product", twoBranches("product", .eltwise(.init(operation: .product)))),
        ("eltwise max", twoBranches("max", .eltwise(.init(operation: .max)))),
    ]
}
