import MagicInitAlgorithms
import MagicInitCore
import MagicInitEngine
import MagicInitStatistics

/// One replica of the network on the oneDNN engine, computing per-chunk partial
/// statistics for the chunks it holds: Algorithm 1's layer-by-layer forward pass with
/// cached activations, and Algorithm 2's measurement passes. Used by the local statistics
/// source and by every worker.
///
/// Algorithm 1 runs the network forward once (docs/DESIGN.md §2; a cheap first convolution
/// twice, see ``Algorithm1CachePlan``), caching each step's output for the next (after the
/// max pooling that follows its ReLU where there is one). Along the way each chunk keeps
/// what the backward pass will read (`SavedForward`: ReLU signs, pooling argmaxes) and the
/// input statistics of every affine layer, so Algorithm 2's first measurement — with the
/// weights Algorithm 1 left — needs only the backward pass. A step ends when the
/// `.normalize` directive of its layer arrives (``apply(_:)``); any later weight change
/// once Algorithm 1 is complete drops the cache and measurements run forward and backward
/// again.
///
/// The concerns live in separate files: this API; the cache plan (`Algorithm1CachePlan`)
/// and per-chunk state (`Algorithm1Cache`); Algorithm 1's steps and replays
/// (`ChunkCollector+Algorithm1`); restoring cached blobs (`ChunkCollector+Restore`,
/// `CachedAffineMap`); measurement (`ChunkCollector+Measurement`); the replica and its
/// engines (`ReplicaEngines`); the spread of chunks over engines (`ChunkScheduler`).
///
/// Not thread-safe: owned by one actor or task.
public final class ChunkCollector {
    /// The network with trailing Softmax layers removed (the loss `η · z_N` is on the
    /// scores), compiled with batch = chunk size.
    public let graph: Graph
    public let options: Options
    var weights: ReplicaEngines
    let plan: Algorithm1CachePlan
    var algorithm1: Algorithm1Cache
    private(set) var chunks: [Chunk] = []

    /// The engines chunks are spread over (see ``ReplicaEngines``).
    public var engines: [Engine] { weights.engines }
    /// The engine of the serial paths (replays).
    var engine: Engine { weights.engines[0] }

    /// - Parameters:
    ///   - network: the network to initialise (a trailing Softmax is dropped).
    ///   - chunkSize: images per chunk (the engine's batch size).
    ///   - options: threads, memory and the test switches (see ``Options``).
    /// - Throws: `GraphError` for a network that does not compile, `EngineError` when
    ///   oneDNN cannot build it.
    public init(network: Network, chunkSize: Int, options: Options = Options()) throws {
        let graph = try Graph(ChunkCollector.droppingOutputSoftmax(network), batchSize: chunkSize)
        self.graph = graph
        self.options = options
        weights = try ReplicaEngines(graph: graph, options: options)
        let first = weights.engines[0]
        plan = Algorithm1CachePlan(graph: graph, pooling: options.cachesAfterPooling, recomputing: options.recomputesFirstLayer,
                                   supportsPooledReLU: { first.supportsPooledReLU(relu: $0, pool: $1) },
                                   snapshotCount: { first.snapshotCount(of: $0) })
        algorithm1 = Algorithm1Cache(nodeCount: graph.nodes.count)
        try weights.uploadStartingValues()
    }

    /// `network` without Softmax layers whose top nothing reads.
    public static func droppingOutputSoftmax(_ network: Network) -> Network {
        var result = network
        while let last = result.layers.last, case .softmax = last.kind,
              !result.layers.dropLast().contains(where: { $0.bottoms.contains(last.tops[0]) }) {
            result.layers.removeLast()
        }
        return result
    }

    // MARK: chunks

    /// Adds chunks to this replica; a chunk already held is ignored. Chunks adopted after
    /// Algorithm 1 has started are brought up to its last committed step by a replay.
    /// - Throws: ``CollectorError/chunkShape(chunk:expected:actual:)`` when a chunk's images
    ///   do not fit the input `(chunk size, C, H, W)` (nothing is added then).
    public func add(_ newChunks: [Chunk]) throws {
        let input = graph.blobs[graph.inputs[0]].shape
        for chunk in newChunks {
            guard Array(chunk.images.shape.dropFirst()) == Array(input.dropFirst()), chunk.imageCount <= graph.batchSize,
                  chunk.imageCount >= 1 else {
                throw CollectorError.chunkShape(chunk: chunk.index, expected: input, actual: chunk.images.shape)
            }
        }
        let known = Set(chunks.map(\.index))
        let fresh = newChunks.filter { !known.contains($0.index) }
        chunks.append(contentsOf: fresh)
        chunks.sort { $0.index < $1.index }
        for chunk in fresh where !algorithm1.history.isEmpty { try replayAlgorithm1(chunk) }
    }

    public var chunkIndices: [Int] { chunks.map(\.index) }

    /// Images held, over all chunks.
    public var imageCount: Int { imageCount(of: nil) }

    /// Images held in the chunks `only` (all when `nil`).
    public func imageCount(of only: Set<Int>?) -> Int {
        chunks.filter { only?.contains($0.index) ?? true }.reduce(0) { $0 + $1.imageCount }
    }

    /// Bytes of Algorithm 1 state held (cached blobs, saved backward inputs, kept inputs).
    public var cachedBytes: Int { algorithm1.cachedBytes }

    // MARK: weights

    /// Applies weight directives, in order, to this replica and its engines. A `.normalize`
    /// of the layer whose Algorithm 1 step was asked for last commits that step (its
    /// cached output is mapped as it is restored, no re-run); any other directive leaves
    /// the step uncommitted, and any change once Algorithm 1 is complete drops its cache.
    /// - Throws: the replica's error for a bad directive; `EngineError` from an upload.
    public func apply(_ directives: [WeightDirective]) throws {
        for directive in directives {
            if let lastAffine = plan.lastAffine, algorithm1.frontier == lastAffine { algorithm1.drop() }
            let directivesBefore = algorithm1.record(directive)
            try weights.apply(directive)
            if case .normalize(let layer, let scale, let shift) = directive, let index = graph.node(named: layer) {
                algorithm1.commit(index, graph.nodes[index], directivesBefore: directivesBefore, scale: scale, shift: shift)
            }
            algorithm1.pending = nil
        }
    }

    /// The weights this replica holds.
    public var parameters: ParameterSet { weights.parameters }

    /// Weights held only in the first engine's buffer (see
    /// ``Options/engineResidentBytes``).
    public var engineResidentKeys: Set<String> { weights.engineResidentKeys }
}
