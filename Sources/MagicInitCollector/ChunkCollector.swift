import Dispatch
import Foundation
import Synchronization
import MagicInitAlgorithms
import MagicInitCore
import MagicInitEngine
import MagicInitStatistics

/// A chunk of sample images: a fixed-size group numbered independently of how many
/// workers there are (docs/DESIGN.md §3). Every statistic is computed per chunk.
public struct Chunk: Sendable {
    /// Chunk number, 0…M−1.
    public var index: Int
    /// Global index of the chunk's first image (for the per-image top gradients η).
    public var firstImage: Int
    /// The preprocessed images, `(n, 3, H, W)` with `n ≤` the chunk size.
    public var images: Tensor

    public init(index: Int, firstImage: Int, images: Tensor) {
        self.index = index
        self.firstImage = firstImage
        self.images = images
    }

    public var imageCount: Int { images.shape[0] }

    /// The image ranges of chunks `0, 1, …` for `count` images cut in order into chunks of
    /// `size` (the last may be smaller). Every place that cuts images into chunks uses this,
    /// so chunk numbers mean the same images everywhere.
    public static func ranges(images count: Int, size: Int) -> [Range<Int>] {
        stride(from: 0, to: count, by: size).map { $0..<min($0 + size, count) }
    }
}

/// One replica of the network on the oneDNN engine, computing per-chunk partial
/// statistics for the chunks it holds: Algorithm 1's layer-by-layer forward pass with
/// cached activations, and Algorithm 2's measurement passes. Used by the local statistics
/// source and by every worker.
///
/// Algorithm 1 runs the network forward once (docs/DESIGN.md §2; a cheap first convolution twice, see
/// ``recomputedFromInput``), caching each step's output for the next (after the max pooling
/// that follows its ReLU where there is one, see ``pooledCache``). Along the way each chunk
/// keeps what the backward pass will read (``SavedForward``: ReLU signs, pooling argmaxes)
/// and the input statistics of every affine layer, so Algorithm 2's first measurement —
/// with the weights Algorithm 1 left — needs only the backward pass. Any later weight
/// change drops that cache and measurements run forward and backward again.
///
/// Not thread-safe: owned by one actor or task.
public final class ChunkCollector {
    /// The network with trailing Softmax layers removed (the loss `η · z_N` is on the
    /// scores), compiled with batch = chunk size.
    public let graph: Graph
    /// Replicas of the network on oneDNN, each used by one thread at a time; chunks are
    /// spread over them and run in parallel (a chunk's result does not depend on which
    /// engine computed it: they are built alike and convolutions give the same bits for
    /// any thread count).
    public let engines: [Engine]
    /// The engine of the serial paths (replays).
    private var engine: Engine { engines[0] }
    private var chunks: [Chunk] = []
    private var replica: WeightReplica

    /// What Algorithm 1 keeps per chunk after a step: the blobs later nodes read (dropped
    /// once the next step has used them), what the backward pass reads from every node run
    /// so far, and the forward statistics of every affine layer done so far.
    private struct ChunkState {
        var blobs: [Int: BlobSnapshot] = [:]
        /// Algorithm 1's affine map of a cached blob, applied as it is restored (see ``commit``).
        var maps: [Int: (scale: [Double], shift: [Double])] = [:]
        var saved: [SavedForward] = []
        var layers: [String: ForwardStatistics] = [:]
        /// The step's output is not cached: the next step runs the network again from the
        /// images (see ``recomputedFromInput``).
        var fromInput = false
        /// The cache holds the max pooling of the step's output (see ``pooledCache``): the
        /// affine output it stands for, the ReLU and pooling nodes, and the pooling's argmax
        /// workspace; the next step restores it through the map and the ReLU and runs on from
        /// the node after the pooling.
        var pooled: (top: Int, blob: Int, relu: Int, pool: Int, workspace: SavedForward)?
        /// With ``keepsAffineInputs``: per affine node done so far, its input `x_k` as the
        /// step computed it (final once Algorithm 1 has passed it), for the weight gradients
        /// of Algorithm 2's first measurement. Nodes whose step ran from the images are not
        /// kept but listed in ``inputsFromImages`` (rebuilt by running the network up to them).
        var inputs: [Int: BlobSnapshot] = [:]
        var inputsFromImages: Set<Int> = []

        /// Whether the next step can start from this state (else the chunk is replayed).
        var resumable: Bool { fromInput || !blobs.isEmpty }
    }

    /// Per affine layer and chunk: `Σ x²` per column of its input and the moments of its
    /// output (after Algorithm 1's affine map).
    private struct ForwardStatistics {
        var inputSquares: SquareSums
        var outputMoments: ChannelMoments
    }

    /// Algorithm 1 state: the last node committed, every chunk's state after it, and the
    /// states after the layer asked for last (not yet committed).
    private var frontier = -1
    private var committed: [Int: ChunkState] = [:]
    private var pending: (node: Int, states: [Int: ChunkState])?
    /// Every committed Algorithm 1 step: the layer, how many directives of ``directiveLog``
    /// came before its affine map (they give the weights its output was computed with), and
    /// that map. Replaying it rebuilds the state of a chunk adopted mid-run (or whose blobs
    /// were dropped) bit for bit.
    private var history: [(node: Int, directivesBefore: Int, scale: [Double], shift: [Double])] = []
    /// The directives applied while Algorithm 1's state is kept (Gaussian draws are a seed
    /// each, so this is far smaller than the weights it stands for).
    private var directiveLog: [WeightDirective] = []
    /// The last affine node: once it is committed, Algorithm 1 is complete.
    private let lastAffine: Int?
    /// Affine nodes whose output Algorithm 1 keeps after the max pooling that follows its
    /// ReLU (affine → in-place ReLU → max pooling, each the only reader of the one before),
    /// a quarter of the memory for 2×2 windows: VGG-16's `conv1_2`, `conv2_2`, … (see
    /// `Engine.positivity(ofReLU:pooledBy:workspace:)`), mapped to that ReLU and pooling.
    let pooledCache: [Int: (relu: Int, pool: Int)]
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
    private let cacheReserve: [Int: Int]

    /// - Parameters:
    ///   - network: the network to initialise (a trailing Softmax is dropped).
    ///   - chunkSize: images per chunk (the engine's batch size).
    ///   - threads: threads to compute on (default: every core). With two or more, two
    ///     engines of `threads / 2` oneDNN threads each work on different chunks at once,
    ///     so the single-threaded parts (inner products, kept on one thread for
    ///     determinism, see `AffineKernel`; the statistics between layers) no longer leave
    ///     a core idle: `scripts/bench-init` with one 2-thread worker went from 97.9 s to
    ///     89.9 s. Each engine holds its own activations and weights (VGG-16 at chunk
    ///     size 4: about 1.4 GB more peak memory).
    ///   - engineResidentBytes: weights at least this large that oneDNN keeps in the Caffe
    ///     layout are held only in the engine (see ``WeightReplica``); the default keeps
    ///     VGG-16's and CaffeNet's `fc6.weight` (411 MB and 151 MB) there.
    ///   - inPlaceActivations: ReLUs write over their inputs (``Engine/Options/inPlaceActivations``;
    ///     off only in tests that compare the two ways bit for bit).
    ///   - plainWeights: weight keys the engines keep in the Caffe layout whatever oneDNN
    ///     would choose on this CPU (``Engine/Options/plainWeights``); such a weight of at
    ///     least `engineResidentBytes` is engine-resident on every CPU.
    public init(network: Network, chunkSize: Int, threads: Int? = nil, engineResidentBytes: Int = 16 << 20,
                inPlaceActivations: Bool = true, plainWeights: Set<String> = []) throws {
        let graph = try Graph(ChunkCollector.droppingOutputSoftmax(network), batchSize: chunkSize)
        self.graph = graph
        let total = max(1, threads ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let count = min(total, ChunkCollector.maxEngines)
        // Two engines allocate at the same time (first snapshots, first backward pass): no
        // prefaulting, which would make them take turns (see `Engine.Options.prefault`).
        // The second engine uses the first one's weight buffers.
        // ReLUs run in place: no step reads an affine output after its ReLU has run (the
        // statistics are taken as each affine layer finishes, see `measure`).
        let options = Engine.Options(threads: max(1, total / count), prefault: count == 1, inPlaceActivations: inPlaceActivations,
                                     plainWeights: plainWeights)
        let first = try Engine(graph: graph, options: options)
        engines = try [first] + (1..<count).map { _ in try Engine(graph: graph, options: options, sharingWeightsOf: first) }
        // Large weights that oneDNN keeps in the Caffe layout live only in the first
        // engine's buffer: the replica changes them there (one copy, not two).
        var external: [String: WeightReplica.ExternalWeights] = [:]
        for spec in graph.parameters where spec.role == .weight && spec.count * 4 >= engineResidentBytes {
            if let buffer = engines[0].plainParameterBuffer(spec.key) { external[spec.key] = .init(buffer, zeroed: true) }
        }
        replica = WeightReplica(graph: graph, external: external)
        let lastAffine = graph.nodes.indices.last { graph.nodes[$0].kind.isAffine }
        self.lastAffine = lastAffine
        pooledCache = ChunkCollector.pooledCachePlan(graph: graph, engine: first, lastAffine: lastAffine)
        recomputedFromInput = ChunkCollector.recomputePlan(graph: graph, lastAffine: lastAffine)
        var reserve: [Int: Int] = [:], largest = 0
        for k in graph.nodes.indices.reversed() where graph.nodes[k].kind.isAffine {
            let cached = pooledCache[k].map { graph.nodes[$0.pool].tops[0] } ?? graph.nodes[k].tops[0]
            largest = max(largest, k == recomputedFromInput ? 0 : first.snapshotCount(of: cached))
            reserve[k] = largest
        }
        cacheReserve = reserve
        // A new engine already holds the replica's starting values wherever they are zero.
        try setParameters(replica.parameters.filter { $0.value.data.contains { $0 != 0 } })
        try syncEngineResident(replica.externalKeys)
    }

    /// See ``pooledCache``: affine `k` whose top only an in-place ReLU (slope 0) reads, whose
    /// top only a max pooling reads, when the engine can rebuild that ReLU's bits from the
    /// pooling's workspace and some later affine node exists (the last step's state is read
    /// by Algorithm 2 as it stands).
    private static func pooledCachePlan(graph: Graph, engine: Engine, lastAffine: Int?) -> [Int: (relu: Int, pool: Int)] {
        var plan: [Int: (relu: Int, pool: Int)] = [:]
        for (k, node) in graph.nodes.enumerated() where node.kind.isAffine && k != lastAffine {
            let top = node.tops[0]
            guard !graph.outputs.contains(top), graph.consumers(of: top).count == 1, let relu = graph.consumers(of: top).first,
                  graph.nodes[relu].bottoms == [top], !graph.outputs.contains(graph.nodes[relu].tops[0]),
                  graph.consumers(of: graph.nodes[relu].tops[0]).count == 1, let pool = graph.consumers(of: graph.nodes[relu].tops[0]).first,
                  !graph.outputs.contains(graph.nodes[pool].tops[0]), pool < (lastAffine ?? 0),
                  engine.supportsPooledReLU(relu: relu, pool: pool) else { continue }
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

    /// Whether Algorithm 1 keeps every affine layer's input `x_k` per chunk (see
    /// ``ChunkState/inputs``), so that Algorithm 2's first measurement with weight gradients
    /// also needs only the backward pass (backward to the data and to the weights) instead of
    /// a second forward pass. Costs the memory of every affine input over every image held
    /// (VGG-16: about 23 MB per image; the inputs a cheap first layer rebuilds from the images
    /// are not kept). Set before Algorithm 1 starts.
    public var keepsAffineInputs = false

    /// Whether Algorithm 1 uses ``pooledCache`` and ``recomputedFromInput`` (off only in
    /// tests that compare with the full cache bit for bit).
    var cachesAfterPooling = true
    var recomputesFirstLayer = true

    /// Engines per collector at most (each costs a copy of the activations and weights).
    static let maxEngines = 2

    /// Sets parameters on every engine (once for weights the engines share).
    private func setParameters(_ parameters: ParameterSet) throws {
        try engines[0].setParameters(parameters)
        for engine in engines.dropFirst() {
            try engine.setParameters(parameters.filter { !engine.sharesParameter($0.key) })
        }
    }

    /// After the replica changed engine-resident weights `keys` in the first engine's
    /// buffer: that engine rebuilds what it derives from them, the others copy them.
    private func syncEngineResident(_ keys: Set<String>) throws {
        for key in keys {
            engines[0].parameterWritten(key)
            guard engines.count > 1, let buffer = engines[0].plainParameterBuffer(key) else { continue }
            for engine in engines.dropFirst() { try engine.setParameter(key, from: UnsafeBufferPointer(buffer)) }
        }
    }

    /// Applies `directive` to the replica and uploads what it changed to every engine.
    private func applyToReplica(_ directive: WeightDirective) throws {
        let changed = try replica.apply(directive)
        let resident = replica.externalKeys
        try setParameters(changed.filter { !resident.contains($0) }.reduce(into: ParameterSet()) { $0[$1] = replica.parameters[$1] })
        try syncEngineResident(Set(changed).intersection(resident))
    }

    /// `body(chunk, engine)` for every chunk, the engines working in parallel (each on one
    /// chunk at a time, chunks taken in order); results in chunk order. `chunkDone` is
    /// called once per chunk as it finishes, one call at a time. The first error thrown
    /// stops the remaining chunks and is rethrown.
    private func forEachChunk<T>(_ list: [Chunk], chunkDone: (Chunk) -> Void,
                                 _ body: (Chunk, Engine) throws -> T) throws -> [T] {
        if engines.count == 1 || list.count <= 1 {
            return try list.map { chunk in
                let result = try body(chunk, engine)
                chunkDone(chunk)
                return result
            }
        }
        let shared = Mutex<(next: Int, failure: Error?)>((0, nil))
        // One slot per chunk, each written by the one thread that computed it.
        let slots = UnsafeMutableBufferPointer<T?>.allocate(capacity: list.count)
        slots.initialize(repeating: nil)
        defer { slots.deinitialize().deallocate() }
        nonisolated(unsafe) let body = body, chunkDone = chunkDone, engines = engines, output = slots
        DispatchQueue.concurrentPerform(iterations: engines.count) { lane in
            while true {
                let index: Int? = shared.withLock { state in
                    guard state.failure == nil, state.next < list.count else { return nil }
                    defer { state.next += 1 }
                    return state.next
                }
                guard let index else { return }
                do {
                    output[index] = try body(list[index], engines[lane])
                    shared.withLock { _ in chunkDone(list[index]) }
                } catch {
                    shared.withLock { state in if state.failure == nil { state.failure = error } }
                }
            }
        }
        if let failure = shared.withLock({ $0.failure }) { throw failure }
        return slots.map { $0! }
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

    /// Adds chunks to this replica (their images must match the input shape per image).
    public func add(_ newChunks: [Chunk]) throws {
        let input = graph.blobs[graph.inputs[0]].shape
        for chunk in newChunks {
            guard Array(chunk.images.shape.dropFirst()) == Array(input.dropFirst()), chunk.imageCount <= graph.batchSize,
                  chunk.imageCount >= 1 else {
                throw EngineError.blobShape(blob: "chunk \(chunk.index)", expected: input, actual: chunk.images.shape)
            }
        }
        let known = Set(chunks.map(\.index))
        let fresh = newChunks.filter { !known.contains($0.index) }
        chunks.append(contentsOf: fresh)
        chunks.sort { $0.index < $1.index }
        for chunk in fresh where !history.isEmpty { try replayAlgorithm1(chunk) }
    }

    /// Rebuilds a chunk's Algorithm 1 state by running each committed step exactly as it
    /// first ran: the layer's weights as they were then, the forward pass from the previous
    /// step, the same affine map.
    private func replayAlgorithm1(_ chunk: Chunk) throws {
        // The replay writes the weights it runs with into the engine, engine-resident ones
        // included: those are kept aside and written back (a rare path).
        let resident = replica.externalKeys.reduce(into: ParameterSet()) { $0[$1] = replica.value(of: $1) }
        defer {
            try? setParameters(replica.parameters)
            for (key, value) in resident {
                value.data.withUnsafeBufferPointer { try? engine.setParameter(key, from: $0) }
            }
            try? syncEngineResident(Set(resident.keys))
        }
        // A scratch replica fed the same directives: at each step it holds the weights the
        // step ran with (a rare path: it costs one more copy of the weights while it runs).
        var scratch = WeightReplica(graph: graph)
        var applied = 0
        var state: ChunkState?
        var previous = -1
        for step in history {
            while applied < step.directivesBefore {
                try scratch.apply(directiveLog[applied])
                applied += 1
            }
            // The step's layer as it was; and a first layer the step runs again from the
            // images (its output not cached) as it was after its own step.
            var layers = [step.node]
            if state?.fromInput == true, let again = recomputedFromInput { layers.append(again) }
            try engine.setParameters(layers.flatMap { graph.nodes[$0].parameters }.reduce(into: ParameterSet()) { $0[$1.key] = scratch.parameters[$1.key] })
            var (_, next) = try advance(chunk, state: &state, from: previous, to: step.node, on: engine)
            ChunkCollector.commit(&next, node: graph.nodes[step.node], scale: step.scale, shift: step.shift)
            state = next
            previous = step.node
        }
        committed[chunk.index] = state
    }

    public var chunkIndices: [Int] { chunks.map(\.index) }

    /// Images held, over all chunks.
    public var imageCount: Int { imageCount(of: nil) }

    /// Images held in the chunks `only` (all when `nil`).
    public func imageCount(of only: Set<Int>?) -> Int {
        chunks.filter { only?.contains($0.index) ?? true }.reduce(0) { $0 + $1.imageCount }
    }

    /// Whether a measurement of `chunks` with the current weights can reuse Algorithm 1's
    /// forward pass (see the type's documentation).
    private func forwardCached(for requested: [Chunk], weightGradients: Bool) -> Bool {
        guard !weightGradients || keepsAffineInputs, let lastAffine, frontier == lastAffine, pending == nil else { return false }
        // Every affine layer's forward statistics (and input, for weight gradients) must be
        // there: a worker that joined mid-run computed only the later steps for its chunks.
        let affine = graph.nodes.indices.filter { graph.nodes[$0].kind.isAffine }
        return requested.allSatisfy { chunk in
            committed[chunk.index].map { state in
                affine.allSatisfy { k in
                    state.layers[graph.nodes[k].name] != nil
                        && (!weightGradients || state.inputs[k] != nil || state.inputsFromImages.contains(k))
                }
            } ?? false
        }
    }

    /// Writes every affine layer's input kept by Algorithm 1 back into `engine` (see
    /// ``ChunkState/inputs``): those its steps computed from the images by running the
    /// network up to the last of them, the others from their snapshots.
    private func restoreAffineInputs(_ state: ChunkState, images: Tensor, on engine: Engine) throws {
        if let last = state.inputsFromImages.max() {
            try engine.setInput(padded(images))
            try engine.forward(nodes: 0..<last)
        }
        for (_, snapshot) in state.inputs.sorted(by: { $0.key < $1.key }) { try engine.restore(snapshot) }
    }

    /// Bytes of Algorithm 1 state held (cached blobs and saved backward inputs).
    public var cachedBytes: Int {
        committed.values.reduce(0) { total, state in
            total + state.blobs.values.reduce(0) { $0 + $1.byteCount } + state.saved.reduce(0) { $0 + $1.byteCount }
                + state.inputs.values.reduce(0) { $0 + $1.byteCount }
        }
    }

    // MARK: weights

    /// Applies weight directives to this replica (and to Algorithm 1's cached output of
    /// the layer they touch, when it is an affine map of that output). Any change once
    /// Algorithm 1 is complete drops its cached state.
    public func apply(_ directives: [WeightDirective]) throws {
        for directive in directives {
            if let lastAffine, frontier == lastAffine { dropAlgorithm1State() }
            let nodeIndex = graph.node(named: directive.layer)
            let directivesBefore = directiveLog.count
            if frontier < graph.nodes.count { directiveLog.append(directive) }
            try applyToReplica(directive)
            if case .affine(_, let rowScale, let columnScale, let shift) = directive, let nodeIndex, pending?.node == nodeIndex,
               columnScale.allSatisfy({ $0 == 1 }) {
                // Take the states out of `pending` so the cached outputs are updated in place.
                var states = pending!.states
                pending = nil
                for chunk in Array(states.keys) {
                    var state = states.removeValue(forKey: chunk)!
                    ChunkCollector.commit(&state, node: graph.nodes[nodeIndex], scale: rowScale, shift: shift)
                    states[chunk] = state
                }
                committed = states
                frontier = nodeIndex
                history.append((nodeIndex, directivesBefore, rowScale, shift))
            }
            pending = nil
        }
    }

    private func dropAlgorithm1State() {
        committed = [:]
        pending = nil
        history = []
        directiveLog = []
        frontier = graph.nodes.count
    }

    /// Applies Algorithm 1's affine map `scale[c] · z + shift[c]` to a step's output: to the
    /// moments of the chunk now, to the cached blob as the next step restores it (one pass
    /// over the cache instead of two).
    private static func commit(_ state: inout ChunkState, node: Graph.Node, scale: [Double], shift: [Double]) {
        let top = node.tops[0]
        // A pooled cache stands for the affine output it was pooled from.
        let cached = state.pooled.map { $0.top == top ? $0.blob : top } ?? top
        if state.blobs[cached] != nil {
            precondition(state.maps[cached] == nil, "a second affine map for one cached blob")
            state.maps[cached] = (scale, shift)
        }
        if let moments = state.layers[node.name]?.outputMoments {
            state.layers[node.name]!.outputMoments = moments.affine(scale: scale, shift: shift)
        }
    }

    /// The weights this replica holds.
    public var parameters: ParameterSet { replica.allParameters }

    /// Weights held only in the first engine's buffer (see `engineResidentBytes` of ``init(network:chunkSize:threads:engineResidentBytes:)``).
    public var engineResidentKeys: Set<String> { replica.externalKeys }

    /// Writes a chunk's cached blobs back into `engine`, each through its pending affine map,
    /// before node `next` runs. When `next` is a ReLU (slope 0) and the only reader of a
    /// mapped blob, the ReLU is applied in the same pass and written straight into its
    /// output (its backward pass reads only that output), so the ReLU costs no pass of its
    /// own. Returns the first node still to run: `next`, or the node after the ReLU.
    private func restore(_ state: ChunkState, on engine: Engine, next: Int) throws -> Int {
        var first = next
        for (blob, snapshot) in state.blobs {
            guard let map = state.maps[blob] else {
                try engine.restore(snapshot)
                continue
            }
            if let pooled = state.pooled, pooled.blob == blob {
                // relu(a·max z + b) = max relu(a·z + b) needs every a ≥ 0 (Algorithm 1's are 1/σ).
                guard map.scale.allSatisfy({ $0 >= 0 }) else {
                    throw EngineError.missingParameter("a negative scale for \(graph.blobs[blob].label), cached after max pooling")
                }
                try engine.restore(snapshot) { source, target, _ in
                    ChunkCollector.affine(source, into: target, layout: snapshot.layout, scale: map.scale, shift: map.shift, rectify: true)
                }
                continue
            }
            if let relu = fusableReLU(reading: blob, at: next, on: engine) {
                try engine.restore(snapshot, into: relu) { source, target, _ in
                    ChunkCollector.affine(source, into: target, layout: snapshot.layout, scale: map.scale, shift: map.shift, rectify: true)
                }
                first = next + 1
            } else {
                try engine.restore(snapshot) { source, target, _ in
                    ChunkCollector.affine(source, into: target, layout: snapshot.layout, scale: map.scale, shift: map.shift)
                }
            }
        }
        return first
    }

    /// Whether ``restore(_:on:next:)`` may fold a ReLU into the map (off only in tests that
    /// compare the two ways bit for bit).
    var fusesReLU = true

    /// The top of node `index` when it is a ReLU with slope 0 whose bottom is `blob`, no
    /// other node reads `blob`, and the engine holds both in one layout.
    func fusableReLU(reading blob: Int, at index: Int, on engine: Engine) -> Int? {
        guard fusesReLU, index < graph.nodes.count, case .relu(let slope) = graph.nodes[index].kind, slope == 0 else { return nil }
        let node = graph.nodes[index]
        guard node.bottoms == [blob], graph.consumers(of: blob) == [index], engine.sameLayout(blob, node.tops[0]) else { return nil }
        return node.tops[0]
    }

    /// `target = scale[c] · source + shift[c]` (in Float32) per channel, both in `layout`
    /// (they may be the same buffer); channel padding stays zero and whatever lies between
    /// images or channel blocks is copied as it is. With `rectify`, a ReLU follows, as
    /// oneDNN's JIT ReLU computes it (`max(y, 0)` with 0 as the second operand of the x86
    /// `maxps`: negative values, −0 and NaN all give +0), so the bits match running that
    /// layer. `(image, channel block)` runs in parallel (each element is computed alone, so
    /// the split does not change the bits).
    static func affine(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, layout: ChannelBlockedLayout,
                       scale: [Double], shift: [Double], rectify: Bool = false) {
        let block = layout.block
        let dense = layout.blockStride == layout.spatial * block && layout.imageStride == layout.channelBlocks * layout.blockStride
        if !dense && UnsafePointer(target) != source {
            target.update(from: source, count: layout.count)
            return affine(UnsafePointer(target), into: target, layout: layout, scale: scale, shift: shift, rectify: rectify)
        }
        // Per padded channel; padding lanes map 0 to 0.
        let padded = layout.channelBlocks * block
        let a = (0..<padded).map { $0 < layout.channels ? Float(scale[$0]) : 1 }
        let b = (0..<padded).map { $0 < layout.channels ? Float(shift[$0]) : 0 }
        nonisolated(unsafe) let source = source, target = target
        DispatchQueue.concurrentPerform(iterations: layout.images * layout.channelBlocks) { run in
            let n = run / layout.channelBlocks, cb = run % layout.channelBlocks
            let offset = n * layout.imageStride + cb * layout.blockStride
            let from = source + offset, to = target + offset
            if block == 1 {
                let (s, t) = (a[cb], b[cb])
                if rectify {
                    for i in 0..<layout.spatial { let y = s * from[i] + t; to[i] = y > 0 ? y : 0 }
                } else {
                    for i in 0..<layout.spatial { to[i] = s * from[i] + t }
                }
                return
            }
            for lane in stride(from: 0, to: block, by: 8) {
                var s = SIMD8<Float>(), t = SIMD8<Float>()
                for j in 0..<8 { s[j] = a[cb * block + lane + j]; t[j] = b[cb * block + lane + j] }
                for position in 0..<layout.spatial {
                    let x = UnsafeRawPointer(from + position * block + lane).loadUnaligned(as: SIMD8<Float>.self)
                    var y = s * x + t
                    if rectify { y.replace(with: 0, where: .!(y .> 0)) }
                    UnsafeMutableRawPointer(to + position * block + lane).storeBytes(of: y, as: SIMD8<Float>.self)
                }
            }
        }
    }

    // MARK: Algorithm 1

    /// Blobs produced at or before node `p` (or inputs) that a node after `p` reads.
    private func liveBlobs(after p: Int) -> [Int] {
        var live = Set<Int>()
        for q in graph.nodes.indices where q > p {
            for b in graph.nodes[q].bottoms where graph.blobs[b].producer.map({ $0 <= p }) ?? true { live.insert(b) }
        }
        return live.sorted()
    }

    /// One Algorithm 1 step for one chunk: from its state after node `previous` (the images
    /// when `previous` is −1), runs the nodes up to affine node `target` and returns the
    /// moments of `target`'s output over the chunk's real images and the chunk's new state
    /// (output not yet mapped). The same code serves first runs and replays, so both give
    /// the same bits.
    /// The blobs of `state` are used up (their storage is recycled for the new output).
    private func advance(_ chunk: Chunk, state: inout ChunkState?, from previous: Int, to target: Int,
                         on engine: Engine) throws -> (ChannelMoments, ChunkState) {
        var blobs = state?.blobs ?? [:]
        state?.blobs = [:]
        var first = previous + 1
        // Nodes whose saved forward values this step takes (a pooled cache resumes after
        // the pooling; the ReLU before it gets its bits rebuilt instead).
        var saveFrom = previous + 1
        var rebuilt: [SavedForward] = []
        if previous < 0 || state?.fromInput == true {
            try engine.setInput(padded(chunk.images))
            first = 0
        } else {
            let resume = state?.pooled.map { $0.pool + 1 } ?? previous + 1
            first = try restore(ChunkState(blobs: blobs, maps: state?.maps ?? [:], pooled: state?.pooled), on: engine, next: resume)
            saveFrom = resume
            if let pooled = state?.pooled {
                rebuilt.append(try engine.positivity(ofReLU: pooled.relu, pooledBy: pooled.pool, workspace: pooled.workspace))
            }
        }
        var recycled = blobs.values.max { $0.storage.capacity < $1.storage.capacity }?.storage
        blobs = [:]
        try engine.forward(nodes: first..<(target + 1))
        let node = graph.nodes[target]
        let top = node.tops[0]
        let n = chunk.imageCount
        let moments = try engine.withChannelBlockedValue(of: top) { ChannelMoments(accumulating: $0, layout: $1, images: n) }
        var next = ChunkState(saved: (state?.saved ?? []) + rebuilt + [engine.saveForward(nodes: saveFrom..<(target + 1))],
                              layers: state?.layers ?? [:])
        next.layers[node.name] = ForwardStatistics(inputSquares: try inputSquares(node, images: n, on: engine), outputMoments: moments)
        if keepsAffineInputs {
            next.inputs = state?.inputs ?? [:]
            next.inputsFromImages = state?.inputsFromImages ?? []
            next.inputs[target] = nil
            if first == 0 {
                next.inputsFromImages.insert(target)
            } else {
                next.inputs[target] = try engine.snapshot(of: node.bottoms[0])
            }
        }
        var last = target
        if cachesAfterPooling, let plan = pooledCache[target] {
            // Max pooling of the raw output (the in-place ReLU has not run): its argmax now,
            // the pooled values as the cache.
            try engine.forward(nodes: plan.pool..<(plan.pool + 1))
            let workspace = engine.saveForward(nodes: plan.pool..<(plan.pool + 1))
            next.saved.append(workspace)
            next.pooled = (top, graph.nodes[plan.pool].tops[0], plan.relu, plan.pool, workspace)
            last = plan.pool
        } else if recomputesFirstLayer, target == recomputedFromInput {
            next.fromInput = true
            return (moments, next)
        }
        let cachedTop = next.pooled?.blob ?? top
        for blob in liveBlobs(after: last) {
            next.blobs[blob] = try engine.snapshot(of: blob, reusing: blob == cachedTop ? recycled : nil,
                                                   reserve: blob == cachedTop ? cacheReserve[target] ?? 0 : 0)
            if blob == cachedTop { recycled = nil }
        }
        return (moments, next)
    }

    /// `Σ x²` per column of affine `node`'s input as the engine holds it now, over the
    /// first `images` images (eq. 4's `E[x(j)²]`).
    private func inputSquares(_ node: Graph.Node, images: Int, on engine: Engine) throws -> SquareSums {
        let bottomShape = graph.blobs[node.bottoms[0]].shape, topShape = graph.blobs[node.tops[0]].shape
        let blocked = try engine.withChannelBlockedValue(of: node.bottoms[0]) { x, layout in
            ColumnStatistics.inputSquares(node, blocked: x, layout: layout, shape: bottomShape, images: images, outputShape: topShape)
        }
        let (sums, count) = try blocked ?? engine.withValue(of: node.bottoms[0]) { x in
            ColumnStatistics.inputSquares(node, x: x, shape: bottomShape, images: images, outputShape: topShape)
        }
        return SquareSums(count: count, sumOfSquares: sums)
    }

    /// Per chunk (in chunk order): the moments of affine node `layer`'s output over the
    /// chunk's real images, computing forward from the committed state of the previous
    /// Algorithm 1 step (the prefix is never re-run).
    /// - Parameter only: restrict to these chunks (default: every chunk held).
    public func outputMoments(layer: String, only: Set<Int>? = nil, chunkDone: (Chunk) -> Void = { _ in }) throws -> [(chunk: Int, moments: ChannelMoments)] {
        guard let target = graph.node(named: layer) else { throw EngineError.unknownParameter(layer) }
        guard target > frontier else {
            throw EngineError.missingParameter("Algorithm 1 asked for \(layer) after a later layer; layers must come in topological order")
        }
        var after: [Int: ChunkState] = pending?.node == target ? pending!.states : [:]
        pending = nil
        let list = chunks.filter { only?.contains($0.index) ?? true }
        var previous: [ChunkState?] = []
        for chunk in list {
            if frontier >= 0 && !(committed[chunk.index]?.resumable ?? false) {
                // Blobs dropped after the first run of this step (a redraw asks again).
                try replayAlgorithm1(chunk)
            }
            // The previous blobs are used up here (rebuilt by a replay if ever needed again).
            previous.append(committed[chunk.index])
            committed[chunk.index]?.blobs = [:]
        }
        let frontier = self.frontier
        let positions = Dictionary(uniqueKeysWithValues: list.enumerated().map { ($1.index, $0) })
        let states = previous
        let steps = try forEachChunk(list, chunkDone: chunkDone) { chunk, engine in
            var state = states[positions[chunk.index]!]
            return try self.advance(chunk, state: &state, from: frontier, to: target, on: engine)
        }
        for (chunk, step) in zip(list, steps) { after[chunk.index] = step.1 }
        pending = (target, after)
        return zip(list, steps).map { ($0.index, $1.0) }
    }

    // MARK: Algorithm 2 and Figure 1

    /// Per chunk (in chunk order): a full measurement pass with the random linear loss
    /// `ℓ = η · z_N`, `η` from stream `("eta", step, image)` with `seed`. Right after
    /// Algorithm 1 the forward half comes from Algorithm 1's cached state (with weight
    /// gradients only when it kept the affine inputs, ``keepsAffineInputs``): one backward
    /// pass to the data and the weights; otherwise the network runs forward first.
    public func measure(step: Int, seed: UInt64, weightGradients: Bool, only: Set<Int>? = nil,
                        chunkDone: (Chunk) -> Void = { _ in }) throws -> [(chunk: Int, measurement: NetworkMeasurement)] {
        let requested = chunks.filter { only?.contains($0.index) ?? true }
        let cached = forwardCached(for: requested, weightGradients: weightGradients)
        if !cached { dropAlgorithm1State() }
        let outputs = graph.outputs
        // Identical for every chunk: computed once per pass.
        var weightSquares: [String: [Double]] = [:]
        for node in graph.nodes where node.kind.isAffine {
            let channels = graph.blobs[node.bottoms[0]].shape[1]
            let spec = node.parameters[0]
            weightSquares[node.name] = replica.withWeights(spec.key) { ColumnStatistics.rowSquares(node, weight: $0, shape: spec.shape, bottomChannels: channels) }
        }
        let frontier = self.frontier
        let states = cached ? committed : [:]
        let measurements = try forEachChunk(requested, chunkDone: chunkDone) { chunk, engine -> NetworkMeasurement in
            let n = chunk.imageCount
            var forward: [String: ForwardStatistics] = [:]
            if cached, let state = states[chunk.index] {
                // The saved forward values go back in with the backward pass below.
                let first = try self.restore(state, on: engine, next: frontier + 1)
                try engine.forward(nodes: first..<self.graph.nodes.count)
                forward = state.layers
                if weightGradients { try self.restoreAffineInputs(state, images: chunk.images, on: engine) }
            } else {
                try engine.setInput(self.padded(chunk.images))
                // Each affine layer's statistics as soon as it has run (its ReLU may then
                // overwrite its output).
                var first = 0
                for (index, node) in self.graph.nodes.enumerated() where node.kind.isAffine {
                    try engine.forward(nodes: first..<(index + 1))
                    first = index + 1
                    let moments = try engine.withChannelBlockedValue(of: node.tops[0]) { ChannelMoments(accumulating: $0, layout: $1, images: n) }
                    forward[node.name] = ForwardStatistics(inputSquares: try self.inputSquares(node, images: n, on: engine), outputMoments: moments)
                }
                try engine.forward(nodes: first..<self.graph.nodes.count)
            }
            for output in outputs {
                let shape = self.graph.blobs[output].shape
                let perImage = shape.dropFirst().reduce(1, *)
                var eta = Tensor(shape: shape)
                for i in 0..<n {
                    let draws = Philox(seed: seed, stream: Philox.stream("eta", step, chunk.firstImage + i, output)).gaussians(count: perImage)
                    eta.data.replaceSubrange((i * perImage)..<((i + 1) * perImage), with: draws)
                }
                try engine.setGradient(eta, of: output)
            }
            if cached, let state = states[chunk.index] {
                try engine.backward(restoring: state.saved, weights: weightGradients)
            } else {
                try engine.backward(weights: weightGradients)
            }
            var layers: [LayerMeasurement] = []
            for node in self.graph.nodes where node.kind.isAffine {
                let bottomShape = self.graph.blobs[node.bottoms[0]].shape
                let topShape = self.graph.blobs[node.tops[0]].shape
                let (squares, norm) = try engine.withChannelBlockedGradient(of: node.tops[0]) { SquareSums.channelsAndImages($0, layout: $1, images: n) }
                let dW = weightGradients ? try engine.parameterGradient(node.parameters[0].key) : nil
                layers.append(LayerMeasurement(
                    layer: node.name, rows: topShape[1],
                    columnsPerChannel: ColumnStatistics.columnsPerChannel(node, bottom: bottomShape),
                    outputMoments: forward[node.name]!.outputMoments,
                    inputSquares: forward[node.name]!.inputSquares,
                    outputGradientNorm: norm,
                    outputGradientSquares: squares,
                    weightGradientSquares: dW.map { SquareSums(count: 1, sumOfSquares: ColumnStatistics.rowSquares(node, weight: $0, bottomChannels: bottomShape[1])) }
                        ?? SquareSums(channelCount: 0),
                    weightSquares: weightSquares[node.name]!))
            }
            return NetworkMeasurement(layers: layers)
        }
        return zip(requested, measurements).map { ($0.index, $1) }
    }

    /// The images padded with zero images to the chunk size.
    private func padded(_ images: Tensor) -> Tensor {
        let shape = graph.blobs[graph.inputs[0]].shape
        guard images.shape[0] < shape[0] else { return images }
        var out = Tensor(shape: shape)
        out.data.replaceSubrange(0..<images.count, with: images.data)
        return out
    }
}
