import MagicInitAlgorithms
import MagicInitCore
import MagicInitEngine
import MagicInitStatistics

/// Algorithm 2's measurement pass and the paper's Figure 1 quantities (Krähenbühl et al.
/// 2016, §3.2; docs/DESIGN.md §2), per chunk.
extension ChunkCollector {
    /// Per chunk (in chunk order): a full measurement pass with the random linear loss
    /// `ℓ = η · z_N`, `η` from stream `("eta", step, image)` with `seed`. Right after
    /// Algorithm 1 the forward half comes from Algorithm 1's cached state (with weight
    /// gradients only when it kept the affine inputs, ``Options/keepsAffineInputs``): one
    /// backward pass to the data and the weights; otherwise the network runs forward first.
    /// - Parameters:
    ///   - only: restrict to these chunks (default: every chunk held).
    ///   - chunkDone: called once per chunk as it finishes, one call at a time.
    /// - Throws: `EngineError` from the engine.
    public func measure(step: Int, seed: UInt64, weightGradients: Bool, only: Set<Int>? = nil,
                        chunkDone: (Chunk) -> Void = { _ in }) throws -> [(chunk: Int, measurement: NetworkMeasurement)] {
        let requested = chunks.filter { only?.contains($0.index) ?? true }
        let cached = forwardCached(for: requested, weightGradients: weightGradients)
        if !cached { algorithm1.drop() }
        let outputs = graph.outputs
        // Identical for every chunk: computed once per pass.
        var weightSquares: [String: [Double]] = [:]
        for node in graph.nodes where node.kind.isAffine {
            let channels = graph.blobs[node.bottoms[0]].shape[1]
            let spec = node.parameters[0]
            weightSquares[node.name] = weights.replica.withWeights(spec.key) { ColumnStatistics.rowSquares(node, weight: $0, shape: spec.shape, bottomChannels: channels) }
        }
        let frontier = algorithm1.frontier
        let states = cached ? algorithm1.committed : [:]
        let measurements = try ChunkScheduler.forEach(requested, on: engines, chunkDone: chunkDone) { chunk, engine -> NetworkMeasurement in
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

    /// Whether a measurement of `chunks` with the current weights can reuse Algorithm 1's
    /// forward pass (see the type's documentation).
    private func forwardCached(for requested: [Chunk], weightGradients: Bool) -> Bool {
        guard !weightGradients || options.keepsAffineInputs, let lastAffine = plan.lastAffine, algorithm1.frontier == lastAffine,
              algorithm1.pending == nil else { return false }
        // Every affine layer's forward statistics (and input, for weight gradients) must be
        // there: a worker that joined mid-run computed only the later steps for its chunks.
        let affine = graph.nodes.indices.filter { graph.nodes[$0].kind.isAffine }
        return requested.allSatisfy { chunk in
            algorithm1.committed[chunk.index].map { state in
                affine.allSatisfy { k in
                    state.layers[graph.nodes[k].name] != nil
                        && (!weightGradients || state.inputs[k] != nil || state.inputsFromImages.contains(k))
                }
            } ?? false
        }
    }

    /// `Σ x²` per column of affine `node`'s input as the engine holds it now, over the
    /// first `images` images (eq. 4's `E[x(j)²]`).
    func inputSquares(_ node: Graph.Node, images: Int, on engine: Engine) throws -> SquareSums {
        let bottomShape = graph.blobs[node.bottoms[0]].shape, topShape = graph.blobs[node.tops[0]].shape
        let blocked = try engine.withChannelBlockedValue(of: node.bottoms[0]) { x, layout in
            ColumnStatistics.inputSquares(node, blocked: x, layout: layout, shape: bottomShape, images: images, outputShape: topShape)
        }
        let (sums, count) = try blocked ?? engine.withValue(of: node.bottoms[0]) { x in
            ColumnStatistics.inputSquares(node, x: x, shape: bottomShape, images: images, outputShape: topShape)
        }
        return SquareSums(count: count, sumOfSquares: sums)
    }
}
