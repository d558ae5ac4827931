import Foundation
import MagicInitCore

/// How per-layer output scale factors travel through the network: given a factor `R_k` on
/// the output of every affine layer, the factor every channel of every blob carries. The
/// undo of Algorithm 2 divides each consumer's weight columns by these factors
/// (Krähenbühl et al. 2016, §3.2: "undo the scaling r_k in the layer above";
/// docs/DESIGN.md §2, "Residual sums and normalisation").
///
/// Exact (the network function is kept up to one global factor) through:
/// * positively homogeneous layers (ReLU, max/average pooling, dropout, concat): the factor
///   passes;
/// * `BatchNorm` (inference mode): it absorbs the factor `s` of its input channel when its
///   running mean is multiplied by `s` and its variance set so that
///   `var' + eps = s² (var + eps)` (``normalizationDirectives(factors:parameters:)``); its
///   output carries no factor;
/// * `Scale` with a bias: the bias is multiplied by the factor its channel carries, so
///   `γ (s x) + s β = s (γ x + β)`;
/// * an `Eltwise` sum or max: its inputs' factors are *tied* (channel by channel they must
///   be one factor, which the output carries); a channel-mixing `Reshape`/`Flatten` ties
///   every channel it mixes. An input that carries no factor (the images, a BatchNorm output)
///   pins the factors tied to it at 1.
///
/// The tied factors form classes; ``tie(_:)`` projects any factors onto them. Layers that
/// are not homogeneous (LRN, sigmoid, tanh, softmax, an `Eltwise` product) pass the factor
/// through as an approximation (the reference code's), and the closed form is then not exact.
public struct ChannelScales: Sendable {
    public let graph: Graph
    /// Node indices of the affine layers, in topological order.
    public let affineNodes: [Int]
    /// Whether the closed form is exact: every layer between affine layers is homogeneous
    /// or absorbs the factor as described above.
    public let isHomogeneous: Bool
    /// Names of the layers that break homogeneity.
    public let nonHomogeneousLayers: [String]
    /// Per affine layer, the class of factors it is tied to: the smallest affine index in
    /// the class, or `nil` when the class is pinned at 1.
    public let tiedClass: [Int?]
    /// Per affine layer `k`, per channel of its bottom blob: the affine layer whose factor
    /// the channel carries, or -1 for none.
    let bottomSources: [[Int]]
    /// BatchNorm and Scale-with-bias nodes and, per channel of their input, the affine
    /// layer whose factor it carries (-1: none).
    let normalizations: [(node: Int, sources: [Int])]

    public init(graph: Graph) {
        self.graph = graph
        let affine = graph.nodes.indices.filter { graph.nodes[$0].kind.isAffine }
        affineNodes = affine
        let pin = affine.count
        var classes = UnionFind(count: affine.count + 1)
        func tie(_ ids: [Int]) {
            guard let first = ids.first else { return }
            for id in ids.dropFirst() { classes.union(first < 0 ? pin : first, id < 0 ? pin : id) }
        }
        func channels(_ blob: Int) -> Int { graph.blobs[blob].shape.count > 1 ? graph.blobs[blob].shape[1] : 1 }
        var source = [[Int]?](repeating: nil, count: graph.blobs.count)
        for id in graph.inputs { source[id] = [Int](repeating: -1, count: channels(id)) }
        var affineIndex: [Int: Int] = [:]
        for (k, n) in affine.enumerated() { affineIndex[n] = k }
        var breaking: [String] = []
        var normalizations: [(node: Int, sources: [Int])] = []
        /// One source for every channel, all tied together (a layer mixing channels).
        func mixed(_ ids: [Int], count: Int) -> [Int] {
            tie(ids)
            return [Int](repeating: ids.first { $0 >= 0 } ?? -1, count: count)
        }
        for (n, node) in graph.nodes.enumerated() {
            let bottoms = node.bottoms.map { source[$0]! }
            let out: [Int]
            switch node.kind {
            case .convolution, .deconvolution, .innerProduct:
                out = [Int](repeating: affineIndex[n]!, count: channels(node.tops[0]))
            case .flatten(let axis, let end):
                let x = graph.blobs[node.bottoms[0]].shape
                let a = axis < 0 ? axis + x.count : axis
                let e = end < 0 ? end + x.count : end
                if a == 1 && e == x.count - 1 {
                    let inner = x.dropFirst(2).reduce(1, *)
                    out = bottoms[0].flatMap { [Int](repeating: $0, count: inner) }
                } else {
                    out = mixed(bottoms[0], count: channels(node.tops[0]))
                }
            case .reshape:
                out = bottoms[0].count == channels(node.tops[0]) && graph.blobs[node.bottoms[0]].shape.count >= 2
                    && Array(graph.blobs[node.bottoms[0]].shape.prefix(2)) == Array(graph.blobs[node.tops[0]].shape.prefix(2))
                    ? bottoms[0] : mixed(bottoms[0], count: channels(node.tops[0]))
            case .concat(let axis):
                let a = axis < 0 ? axis + graph.blobs[node.tops[0]].shape.count : axis
                out = a == 1 ? bottoms.flatMap { $0 } : mixed(bottoms.flatMap { $0 }, count: channels(node.tops[0]))
            case .eltwise(let p) where p.operation != .product:
                for c in bottoms[0].indices { tie(bottoms.map { $0[c] }) }
                out = bottoms[0].indices.map { c in bottoms.map { $0[c] }.first { $0 >= 0 } ?? -1 }
            case .batchNorm:
                normalizations.append((n, bottoms[0]))
                out = [Int](repeating: -1, count: bottoms[0].count)
            case .scale(let bias):
                if bias { normalizations.append((n, bottoms[0])) }
                out = bottoms[0]
            case .lrn, .sigmoid, .tanh, .softmax, .eltwise:
                breaking.append(node.name)
                out = bottoms[0]
            case .relu(let slope):
                if !slope.isFinite { breaking.append(node.name) }
                out = bottoms[0]
            default:
                out = bottoms[0]
            }
            for top in node.tops { source[top] = out }
        }
        nonHomogeneousLayers = breaking
        isHomogeneous = breaking.isEmpty
        bottomSources = affine.map { source[graph.nodes[$0].bottoms[0]]! }
        self.normalizations = normalizations
        let pinRoot = classes.find(pin)
        var smallest: [Int: Int] = [:]
        for k in affine.indices { smallest[classes.find(k)] = min(smallest[classes.find(k)] ?? k, k) }
        tiedClass = affine.indices.map { k in classes.find(k) == pinRoot ? nil : smallest[classes.find(k)]! }
    }

    /// Whether some affine layers' factors are tied to others or pinned at 1.
    public var hasTies: Bool { tiedClass.enumerated().contains { $0.element != $0.offset } }

    /// `factors` projected onto the tied classes: every class gets the geometric mean of
    /// its members' factors, a pinned class 1. Identity when nothing is tied.
    public func tie(_ factors: [Double]) -> [Double] {
        guard hasTies else { return factors }
        var logSum: [Int: (Double, Int)] = [:]
        for (k, c) in tiedClass.enumerated() {
            guard let c else { continue }
            let (sum, count) = logSum[c] ?? (0, 0)
            logSum[c] = (sum + log(factors[k]), count + 1)
        }
        return tiedClass.map { c in c.map { exp(logSum[$0]!.0 / Double(logSum[$0]!.1)) } ?? 1 }
    }

    /// The factor every channel of the bottom blob of each affine layer carries, given
    /// (tied, see ``tie(_:)``) output factors `factors[k]` of the `k`-th affine layer.
    public func bottomScales(factors: [Double]) -> [[Double]] {
        bottomSources.map { $0.map { $0 < 0 ? 1 : factors[$0] } }
    }
}

/// Disjoint sets over `0..<count` (path halving, union by size).
struct UnionFind {
    private var parent: [Int]
    private var size: [Int]

    init(count: Int) {
        parent = Array(0..<count)
        size = [Int](repeating: 1, count: count)
    }

    mutating func find(_ x: Int) -> Int {
        var x = x
        while parent[x] != x {
            parent[x] = parent[parent[x]]
            x = parent[x]
        }
        return x
    }

    mutating func union(_ a: Int, _ b: Int) {
        var (ra, rb) = (find(a), find(b))
        guard ra != rb else { return }
        if size[ra] < size[rb] { swap(&ra, &rb) }
        parent[rb] = ra
        size[ra] += size[rb]
    }
}
