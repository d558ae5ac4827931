import MagicInitCore

/// How per-layer output scale factors travel through the network: given a factor `R_k`
/// on the output of every affine layer, the scale of every channel of every blob, assuming
/// the layers in between are positively homogeneous (ReLU, pooling, dropout, concat, sum).
/// The undo of Algorithm 2 divides each consumer's weight columns by these scales
/// (Krähenbühl et al. 2016, §3.2: "undo the scaling r_k in the layer above").
public struct ChannelScales: Sendable {
    public let graph: Graph
    /// Node indices of the affine layers, in topological order.
    public let affineNodes: [Int]
    /// Whether every layer between affine layers is homogeneous, so that the undo keeps
    /// the network function exactly (LRN, sigmoid, tanh, BatchNorm, softmax are not).
    public let isHomogeneous: Bool
    /// Names of the layers that break homogeneity.
    public let nonHomogeneousLayers: [String]

    public init(graph: Graph) {
        self.graph = graph
        affineNodes = graph.nodes.indices.filter { graph.nodes[$0].kind.isAffine }
        let breaking = graph.nodes.filter { node in
            switch node.kind {
            case .lrn, .sigmoid, .tanh, .batchNorm, .softmax: true
            case .relu(let slope): !slope.isFinite
            case .eltwise(let p): p.operation == .product
            default: false
            }
        }
        nonHomogeneousLayers = breaking.map(\.name)
        isHomogeneous = breaking.isEmpty
    }

    /// Channels of a blob (axis 1).
    func channels(_ blob: Int) -> Int { graph.blobs[blob].shape.count > 1 ? graph.blobs[blob].shape[1] : 1 }

    /// The scale of every channel of the bottom blob of each affine layer, given output
    /// factors `factors[k]` for the `k`-th affine layer. Non-homogeneous layers pass scales
    /// through unchanged (the approximation the reference code makes); so do layers whose
    /// channels are mixed (Reshape, Eltwise with unequal scales) when the scales agree, and
    /// otherwise the mean scale is used.
    public func bottomScales(factors: [Double]) -> [[Double]] {
        var scale = [[Double]?](repeating: nil, count: graph.blobs.count)
        for id in graph.inputs { scale[id] = [Double](repeating: 1, count: channels(id)) }
        var affineIndex: [Int: Int] = [:]
        for (k, n) in affineNodes.enumerated() { affineIndex[n] = k }
        for (n, node) in graph.nodes.enumerated() {
            let bottoms = node.bottoms.map { scale[$0]! }
            let out: [Double]
            switch node.kind {
            case .convolution, .deconvolution, .innerProduct:
                out = [Double](repeating: factors[affineIndex[n]!], count: channels(node.tops[0]))
            case .flatten(let axis, let end):
                let x = graph.blobs[node.bottoms[0]].shape
                let a = axis < 0 ? axis + x.count : axis
                let e = end < 0 ? end + x.count : end
                if a == 1 && e == x.count - 1 {
                    let inner = x.dropFirst(2).reduce(1, *)
                    out = bottoms[0].flatMap { [Double](repeating: $0, count: inner) }
                } else {
                    out = uniform(bottoms[0], count: channels(node.tops[0]))
                }
            case .reshape:
                out = uniform(bottoms[0], count: channels(node.tops[0]))
            case .concat(let axis):
                let a = axis < 0 ? axis + graph.blobs[node.tops[0]].shape.count : axis
                out = a == 1 ? bottoms.flatMap { $0 } : uniform(bottoms.flatMap { $0 }, count: channels(node.tops[0]))
            case .eltwise(let p):
                if p.operation == .product {
                    out = bottoms.dropFirst().reduce(bottoms[0]) { acc, b in zip(acc, b).map(*) }
                } else {
                    out = bottoms.allSatisfy({ $0 == bottoms[0] }) ? bottoms[0] : uniform(bottoms.flatMap { $0 }, count: bottoms[0].count)
                }
            default:
                out = bottoms[0]
            }
            for top in node.tops { scale[top] = out }
        }
        return affineNodes.map { scale[graph.nodes[$0].bottoms[0]]! }
    }

    private func uniform(_ values: [Double], count: Int) -> [Double] {
        let mean = values.isEmpty ? 1 : values.reduce(0, +) / Double(values.count)
        return [Double](repeating: mean, count: count)
    }
}
