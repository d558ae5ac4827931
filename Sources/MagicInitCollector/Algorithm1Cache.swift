import MagicInitAlgorithms
import MagicInitCore
import MagicInitEngine
import MagicInitStatistics

/// Per affine layer and chunk: `Σ x²` per column of its input and the moments of its
/// output (after Algorithm 1's affine map once the step is committed).
struct ForwardStatistics {
    var inputSquares: SquareSums
    var outputMoments: ChannelMoments
}

/// What Algorithm 1 keeps for one chunk after a step: the blobs later nodes read (dropped
/// once the next step has used them), what the backward pass reads from every node run so
/// far, and the forward statistics of every affine layer done so far.
struct ChunkState {
    var blobs: [Int: BlobSnapshot] = [:]
    /// Algorithm 1's affine map of a cached blob, applied as it is restored (see
    /// ``mapOutput(of:scale:shift:)``).
    var maps: [Int: (scale: [Double], shift: [Double])] = [:]
    var saved: [SavedForward] = []
    var layers: [String: ForwardStatistics] = [:]
    /// The step's output is not cached: the next step runs the network again from the
    /// images (see ``Algorithm1CachePlan/recomputedFromInput``).
    var fromInput = false
    /// The cache holds the max pooling of the step's output (see
    /// ``Algorithm1CachePlan/pooled``): the affine output it stands for, the ReLU and
    /// pooling nodes, and the pooling's argmax workspace; the next step restores it through
    /// the map and the ReLU and runs on from the node after the pooling.
    var pooled: (top: Int, blob: Int, relu: Int, pool: Int, workspace: SavedForward)?
    /// With ``ChunkCollector/Options/keepsAffineInputs``: per affine node done so far, its
    /// input `x_k` as the step computed it (final once Algorithm 1 has passed it), for the
    /// weight gradients of Algorithm 2's first measurement. Nodes whose step ran from the
    /// images are not kept but listed in ``inputsFromImages`` (rebuilt by running the
    /// network up to them).
    var inputs: [Int: BlobSnapshot] = [:]
    var inputsFromImages: Set<Int> = []

    /// Whether the next step can start from this state (else the chunk is replayed).
    var resumable: Bool { fromInput || !blobs.isEmpty }

    /// Bytes held (cached blobs, saved backward inputs, kept affine inputs).
    var byteCount: Int {
        blobs.values.reduce(0) { $0 + $1.byteCount } + saved.reduce(0) { $0 + $1.byteCount }
            + inputs.values.reduce(0) { $0 + $1.byteCount }
    }

    /// Applies Algorithm 1's affine map `scale[c] · z + shift[c]` to the step's output of
    /// `node`: to the chunk's moments now, to the cached blob as the next step restores it
    /// (one pass over the cache instead of two).
    mutating func mapOutput(of node: Graph.Node, scale: [Double], shift: [Double]) {
        let top = node.tops[0]
        // A pooled cache stands for the affine output it was pooled from.
        let cached = pooled.map { $0.top == top ? $0.blob : top } ?? top
        if blobs[cached] != nil {
            precondition(maps[cached] == nil, "a second affine map for one cached blob")
            maps[cached] = (scale, shift)
        }
        if let moments = layers[node.name]?.outputMoments {
            layers[node.name]!.outputMoments = moments.affine(scale: scale, shift: shift)
        }
    }
}

/// One committed Algorithm 1 step: the affine node, how many directives of the log came
/// before its normalisation (they give the weights its output was computed with), and that
/// normalisation. Replaying the steps rebuilds the state of a chunk adopted mid-run (or
/// whose blobs were dropped) bit for bit.
struct Algorithm1Step {
    var node: Int
    var directivesBefore: Int
    var scale: [Double]
    var shift: [Double]
}

/// Algorithm 1's progress in one collector: the last step committed, every chunk's state
/// after it, the states after the layer asked for last (not yet committed), and what a
/// replay needs. Pure bookkeeping: the engine work is in `ChunkCollector+Algorithm1.swift`.
struct Algorithm1Cache {
    /// The last node committed: −1 before the first step; past the last node once dropped.
    private(set) var frontier = -1
    var committed: [Int: ChunkState] = [:]
    var pending: (node: Int, states: [Int: ChunkState])?
    private(set) var history: [Algorithm1Step] = []
    /// The directives applied while Algorithm 1's state is kept (Gaussian draws are a seed
    /// each, so this is far smaller than the weights it stands for).
    private(set) var directiveLog: [WeightDirective] = []
    private let nodeCount: Int

    init(nodeCount: Int) { self.nodeCount = nodeCount }

    /// Whether Algorithm 1 state is still kept (not dropped by a later weight change).
    var isKept: Bool { frontier < nodeCount }

    /// Notes `directive` in the log while state is kept; returns the directives before it.
    mutating func record(_ directive: WeightDirective) -> Int {
        let before = directiveLog.count
        if isKept { directiveLog.append(directive) }
        return before
    }

    /// Commits the pending step of node `index` (`node`) with Algorithm 1's normalisation
    /// `scale · z + shift`: every chunk's state after the step gets the map, and the step
    /// joins the history. Nothing happens when that step is not pending (this collector
    /// held no chunks when it was asked, or the state was dropped).
    mutating func commit(_ index: Int, _ node: Graph.Node, directivesBefore: Int, scale: [Double], shift: [Double]) {
        guard pending?.node == index else { return }
        // Take the states out of `pending` so the cached outputs are updated in place.
        var states = pending!.states
        pending = nil
        for chunk in Array(states.keys) {
            var state = states.removeValue(forKey: chunk)!
            state.mapOutput(of: node, scale: scale, shift: shift)
            states[chunk] = state
        }
        committed = states
        frontier = index
        history.append(Algorithm1Step(node: index, directivesBefore: directivesBefore, scale: scale, shift: shift))
    }

    /// Forgets every chunk's state and the history (any weight change after Algorithm 1).
    mutating func drop() {
        committed = [:]
        pending = nil
        history = []
        directiveLog = []
        frontier = nodeCount
    }

    /// Bytes held over every committed chunk state.
    var cachedBytes: Int { committed.values.reduce(0) { $0 + $1.byteCount } }
}
