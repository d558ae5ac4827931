import MagicInitCore

/// What Algorithm 1 caches per chunk between its steps, decided once per network
/// (docs/DESIGN.md §2, "One forward pass"). Pure: the engine's answers come in as closures.
struct Algorithm1CachePlan {
    /// The last affine node: once it is committed, Algorithm 1 is complete.
    let lastAffine: Int?
    /// Affine nodes whose output Algorithm 1 keeps after the max pooling that follows its
    /// ReLU (affine → in-place ReLU → max pooling, each the only reader of the one before),
    /// a quarter of the memory for 2×2 windows: VGG-16's `conv1_2`, `conv2_2`, … (see
    /// `Engine.positivity(ofReLU:pooledBy:workspace:)`), mapped to that ReLU and pooling.
    /// `relu(a·max z + b) = max relu(a·z + b)` bit for bit for every `a ≥ 0`.
    let pooled: [Int: (relu: Int, pool: Int)]
    /// The first affine node when it reads the images and is cheap to run again (at most
    /// 64 multiply-adds per output, output at least 4 times the input): its output is not
    /// cached; the next step runs it again from the images, with its normalised weights.
    /// VGG-16's `conv1_1` (27 multiply-adds per output, 21 times the input) would cache
    /// 2 GB for 160 images.
    let recomputedFromInput: Int?
    /// Per affine node: floats a chunk's cache storage reserves when the node's step makes it
    /// (the largest cache of this step and every later one), so the storage is reused to the
    /// end instead of replaced by a larger one when the cache grows again (VGG-16: pooled
    /// `conv1_2`, then `conv2_1` at twice that). Fresh pages cost this machine 2–4 s per GB
    /// to fault in; reused ones nothing.
    let reserve: [Int: Int]

    /// - Parameters:
    ///   - pooling: whether to cache after max pooling at all (else ``pooled`` is empty).
    ///   - recomputing: whether to run a cheap first convolution again (else
    ///     ``recomputedFromInput`` is `nil`).
    ///   - supportsPooledReLU: whether the engine can rebuild ReLU node `relu`'s bits from
    ///     max pooling node `pool`'s workspace.
    ///   - snapshotCount: floats a snapshot of blob `id` takes as the engine holds it.
    init(graph: Graph, pooling: Bool, recomputing: Bool,
         supportsPooledReLU: (_ relu: Int, _ pool: Int) -> Bool, snapshotCount: (_ blob: Int) -> Int) {
        let lastAffine = graph.nodes.indices.last { graph.nodes[$0].kind.isAffine }
        self.lastAffine = lastAffine
        pooled = pooling ? Algorithm1CachePlan.pooledPlan(graph: graph, lastAffine: lastAffine, supportsPooledReLU: supportsPooledReLU) : [:]
        recomputedFromInput = recomputing ? Algorithm1CachePlan.recomputePlan(graph: graph, lastAffine: lastAffine) : nil
        var reserve: [Int: Int] = [:], largest = 0
        for k in graph.nodes.indices.reversed() where graph.nodes[k].kind.isAffine {
            let cached = pooled[k].map { graph.nodes[$0.pool].tops[0] } ?? graph.nodes[k].tops[0]
            largest = max(largest, k == recomputedFromInput ? 0 : snapshotCount(cached))
            reserve[k] = largest
        }
        self.reserve = reserve
    }

    /// See ``pooled``: affine `k` whose top only an in-place ReLU (slope 0) reads, whose top
    /// only a max pooling reads, when the engine can rebuild that ReLU's bits from the
    /// pooling's workspace and some later affine node exists (the last step's state is read
    /// by Algorithm 2 as it stands).
    private static func pooledPlan(graph: Graph, lastAffine: Int?,
                                   supportsPooledReLU: (Int, Int) -> Bool) -> [Int: (relu: Int, pool: Int)] {
        var plan: [Int: (relu: Int, pool: Int)] = [:]
        for (k, node) in graph.nodes.enumerated() where node.kind.isAffine && k != lastAffine {
            let top = node.tops[0]
            guard !graph.outputs.contains(top), graph.consumers(of: top).count == 1, let relu = graph.consumers(of: top).first,
                  graph.nodes[relu].bottoms == [top], !graph.outputs.contains(graph.nodes[relu].tops[0]),
                  graph.consumers(of: graph.nodes[relu].tops[0]).count == 1, let pool = graph.consumers(of: graph.nodes[relu].tops[0]).first,
                  !graph.outputs.contains(graph.nodes[pool].tops[0]), pool < (lastAffine ?? 0),
                  supportsPooledReLU(relu, pool) else { continue }
            plan[k] = (relu, pool)
        }
        return plan
    }

    /// See ``recomputedFromInput``.
    private static func recomputePlan(graph: Graph, lastAffine: Int?) -> Int? {
        guard let first = graph.nodes.indices.first(where: { graph.nodes[$0].kind.isAffine }), first == 0, first != lastAffine,
              graph.inputs.count == 1, graph.nodes[0].bottoms == graph.inputs, case .convolution(let p) = graph.nodes[0].kind else { return nil }
        let input = graph.blobs[graph.inputs[0]].shape, output = graph.blobs[graph.nodes[0].tops[0]].shape
        let macsPerOutput = input[1] / p.groups * p.kernel.h * p.kernel.w
        return macsPerOutput <= 64 && output.reduce(1, *) >= 4 * input.reduce(1, *) ? first : nil
    }

    /// Blobs produced at or before node `p` (or inputs) that a node after `p` reads: what a
    /// step must keep for the next.
    static func liveBlobs(after p: Int, in graph: Graph) -> [Int] {
        var live = Set<Int>()
        for q in graph.nodes.indices where q > p {
            for b in graph.nodes[q].bottoms where graph.blobs[b].producer.map({ $0 <= p }) ?? true { live.insert(b) }
        }
        return live.sorted()
    }
}
