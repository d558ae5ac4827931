import MagicInitAlgorithms
import MagicInitCore
import MagicInitEngine
import MagicInitStatistics

/// Algorithm 1's steps (Krähenbühl et al. 2016, §3.1; docs/DESIGN.md §2): per affine layer
/// in topological order, the moments of its output over each chunk, computed forward from
/// the previous step's cached state; and replays that rebuild a chunk's state bit for bit.
extension ChunkCollector {
    /// Per chunk (in chunk order): the moments of affine node `layer`'s output over the
    /// chunk's real images, computing forward from the committed state of the previous
    /// Algorithm 1 step (the prefix is never re-run). Asking again for the same layer (after
    /// a redraw) recomputes that layer only. The step stays pending until its `.normalize`
    /// directive arrives (``apply(_:)``).
    /// - Parameters:
    ///   - only: restrict to these chunks (default: every chunk held).
    ///   - chunkDone: called once per chunk as it finishes, one call at a time.
    /// - Throws: ``CollectorError/unknownLayer(_:)``,
    ///   ``CollectorError/layerOutOfOrder(layer:committed:)``; `EngineError` from the engine.
    public func outputMoments(layer: String, only: Set<Int>? = nil,
                              chunkDone: (Chunk) -> Void = { _ in }) throws -> [(chunk: Int, moments: ChannelMoments)] {
        guard let target = graph.node(named: layer), graph.nodes[target].kind.isAffine else { throw CollectorError.unknownLayer(layer) }
        guard target > algorithm1.frontier else {
            let committed = algorithm1.frontier < graph.nodes.count ? graph.nodes[algorithm1.frontier].name : "the last layer"
            throw CollectorError.layerOutOfOrder(layer: layer, committed: committed)
        }
        var after: [Int: ChunkState] = algorithm1.pending?.node == target ? algorithm1.pending!.states : [:]
        algorithm1.pending = nil
        let list = chunks.filter { only?.contains($0.index) ?? true }
        var previous: [ChunkState?] = []
        for chunk in list {
            if algorithm1.frontier >= 0 && !(algorithm1.committed[chunk.index]?.resumable ?? false) {
                // Blobs dropped after the first run of this step (a redraw asks again).
                try replayAlgorithm1(chunk)
            }
            // The previous blobs are used up here (rebuilt by a replay if ever needed again).
            previous.append(algorithm1.committed[chunk.index])
            algorithm1.committed[chunk.index]?.blobs = [:]
        }
        let frontier = algorithm1.frontier
        let positions = Dictionary(uniqueKeysWithValues: list.enumerated().map { ($1.index, $0) })
        let states = previous
        let steps = try ChunkScheduler.forEach(list, on: engines, chunkDone: chunkDone) { chunk, engine in
            var state = states[positions[chunk.index]!]
            return try self.advance(chunk, state: &state, from: frontier, to: target, on: engine)
        }
        for (chunk, step) in zip(list, steps) { after[chunk.index] = step.1 }
        algorithm1.pending = (target, after)
        return zip(list, steps).map { ($0.index, $1.0) }
    }

    /// One Algorithm 1 step for one chunk: from its state after node `previous` (the images
    /// when `previous` is −1), runs the nodes up to affine node `target` and returns the
    /// moments of `target`'s output over the chunk's real images and the chunk's new state
    /// (output not yet mapped). The same code serves first runs and replays, so both give
    /// the same bits.
    /// The blobs of `state` are used up (their storage is recycled for the new output).
    func advance(_ chunk: Chunk, state: inout ChunkState?, from previous: Int, to target: Int,
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
        if options.keepsAffineInputs {
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
        if let pooling = plan.pooled[target] {
            // Max pooling of the raw output (the in-place ReLU has not run): its argmax now,
            // the pooled values as the cache.
            try engine.forward(nodes: pooling.pool..<(pooling.pool + 1))
            let workspace = engine.saveForward(nodes: pooling.pool..<(pooling.pool + 1))
            next.saved.append(workspace)
            next.pooled = (top, graph.nodes[pooling.pool].tops[0], pooling.relu, pooling.pool, workspace)
            last = pooling.pool
        } else if target == plan.recomputedFromInput {
            next.fromInput = true
            return (moments, next)
        }
        let cachedTop = next.pooled?.blob ?? top
        for blob in Algorithm1CachePlan.liveBlobs(after: last, in: graph) {
            next.blobs[blob] = try engine.snapshot(of: blob, reusing: blob == cachedTop ? recycled : nil,
                                                   reserve: blob == cachedTop ? plan.reserve[target] ?? 0 : 0)
            if blob == cachedTop { recycled = nil }
        }
        return (moments, next)
    }

    /// Rebuilds a chunk's Algorithm 1 state by running each committed step exactly as it
    /// first ran: the layer's weights as they were then, the forward pass from the previous
    /// step, the same normalisation.
    func replayAlgorithm1(_ chunk: Chunk) throws {
        // The replay writes the weights it runs with into the engine; the replica's go back
        // in afterwards.
        let state = try weights.withScratchWeights { () throws -> ChunkState? in
            // A scratch replica fed the same directives: at each step it holds the weights
            // the step ran with (a rare path: it costs one more copy of the weights while it
            // runs).
            var scratch = WeightReplica(graph: graph)
            var applied = 0
            var state: ChunkState?
            var previous = -1
            for step in algorithm1.history {
                while applied < step.directivesBefore {
                    try scratch.apply(algorithm1.directiveLog[applied])
                    applied += 1
                }
                // The step's layer as it was; and a first layer the step runs again from the
                // images (its output not cached) as it was after its own step.
                var layers = [step.node]
                if state?.fromInput == true, let again = plan.recomputedFromInput { layers.append(again) }
                try engine.setParameters(layers.flatMap { graph.nodes[$0].parameters }.reduce(into: ParameterSet()) { $0[$1.key] = scratch.parameters[$1.key] })
                var (_, next) = try advance(chunk, state: &state, from: previous, to: step.node, on: engine)
                next.mapOutput(of: graph.nodes[step.node], scale: step.scale, shift: step.shift)
                state = next
                previous = step.node
            }
            return state
        }
        algorithm1.committed[chunk.index] = state
    }

    /// The images padded with zero images to the chunk size.
    func padded(_ images: Tensor) -> Tensor {
        let shape = graph.blobs[graph.inputs[0]].shape
        guard images.shape[0] < shape[0] else { return images }
        var out = Tensor(shape: shape)
        out.data.replaceSubrange(0..<images.count, with: images.data)
        return out
    }
}
