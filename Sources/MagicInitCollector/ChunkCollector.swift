import MagicInitAlgorithms
import MagicInitCore
import MagicInitEngine
import MagicInitStatistics

/// A chunk of sample images: a fixed-size group numbered independently of how many
/// workers there are (DESIGN §3). Every statistic is computed per chunk.
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
}

/// One replica of the network on the oneDNN engine, computing per-chunk partial
/// statistics for the chunks it holds: Algorithm 1's layer-by-layer forward pass with
/// cached activations, and Algorithm 2's measurement passes. Used by the local statistics
/// source and by every worker.
///
/// Not thread-safe: owned by one actor or task.
public final class ChunkCollector {
    /// The network with trailing Softmax layers removed (the loss `η · z_N` is on the
    /// scores), compiled with batch = chunk size.
    public let graph: Graph
    public let engine: Engine
    private var chunks: [Chunk] = []
    private var replica: WeightReplica

    /// Algorithm 1 state: the last node run for every chunk, the blobs still needed after
    /// it (per chunk), and the same after the layer asked for last (not yet committed).
    private var frontier = -1
    private var committed: [Int: [Int: Tensor]] = [:]
    private var pending: (node: Int, blobs: [Int: [Int: Tensor]])?
    /// Every committed Algorithm 1 step: the layer, its parameters when its output was
    /// computed, and the affine map applied to that output. Replaying it rebuilds the cached
    /// activations of a chunk adopted mid-run bit for bit.
    private var history: [(node: Int, parameters: ParameterSet, scale: [Double], shift: [Double])] = []

    /// - Parameters:
    ///   - network: the network to initialise (a trailing Softmax is dropped).
    ///   - chunkSize: images per chunk (the engine's batch size).
    ///   - threads: oneDNN threads.
    public init(network: Network, chunkSize: Int, threads: Int? = nil) throws {
        graph = try Graph(ChunkCollector.droppingOutputSoftmax(network), batchSize: chunkSize)
        engine = try Engine(graph: graph, options: .init(threads: threads))
        replica = WeightReplica(graph: graph)
        try engine.setParameters(replica.parameters)
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
        if frontier >= 0 { try replayAlgorithm1(for: fresh) }
    }

    /// Rebuilds Algorithm 1's cached activations for chunks joining after it started, by
    /// running each committed step exactly as it first ran: the layer's weights as they were
    /// then, the forward pass from the previous step, the same affine map.
    private func replayAlgorithm1(for newChunks: [Chunk]) throws {
        defer { try? engine.setParameters(replica.parameters) }
        let live = liveBlobs(after: frontier)
        for chunk in newChunks {
            try engine.setInput(padded(chunk.images))
            var previous = -1
            for step in history {
                try engine.setParameters(step.parameters)
                try engine.forward(nodes: (previous + 1)..<(step.node + 1))
                let top = graph.nodes[step.node].tops[0]
                try engine.setValue(ChunkCollector.affine(try engine.value(of: top), scale: step.scale, shift: step.shift), of: top)
                previous = step.node
            }
            var keep: [Int: Tensor] = [:]
            for blob in live { keep[blob] = try engine.value(of: blob) }
            committed[chunk.index] = keep
        }
    }

    public var chunkIndices: [Int] { chunks.map(\.index) }

    /// Images held, over all chunks.
    public var imageCount: Int { chunks.reduce(0) { $0 + $1.imageCount } }

    // MARK: weights

    /// Applies weight directives to this replica (and to Algorithm 1's cached output of
    /// the layer they touch, when it is an affine map of that output).
    public func apply(_ directives: [WeightDirective]) throws {
        for directive in directives {
            let nodeIndex = graph.node(named: directive.layer)
            let before = nodeIndex.map { graph.nodes[$0].parameters.reduce(into: ParameterSet()) { $0[$1.key] = replica.parameters[$1.key] } }
            let changed = try replica.apply(directive)
            try engine.setParameters(changed.reduce(into: ParameterSet()) { $0[$1] = replica.parameters[$1] })
            if case .affine(_, let rowScale, let columnScale, let shift) = directive, let nodeIndex, pending?.node == nodeIndex,
               columnScale.allSatisfy({ $0 == 1 }) {
                // Take the cached activations out of `pending` so they are updated in place.
                var blobs = pending!.blobs
                pending = nil
                let top = graph.nodes[nodeIndex].tops[0]
                for chunk in Array(blobs.keys) {
                    var chunkBlobs = blobs.removeValue(forKey: chunk)!
                    var z = chunkBlobs.removeValue(forKey: top)!
                    ChunkCollector.affineInPlace(&z, scale: rowScale, shift: shift)
                    chunkBlobs[top] = z
                    blobs[chunk] = chunkBlobs
                }
                committed = blobs
                frontier = nodeIndex
                history.append((nodeIndex, before ?? [:], rowScale, shift))
            }
            pending = nil
        }
    }

    /// The weights this replica holds.
    public var parameters: ParameterSet { replica.parameters }

    /// `scale[c] · x + shift[c]` per channel (axis 1) of a row-major tensor.
    static func affine(_ x: Tensor, scale: [Double], shift: [Double]) -> Tensor {
        var out = x
        affineInPlace(&out, scale: scale, shift: shift)
        return out
    }

    /// ``affine(_:scale:shift:)`` without copying the tensor.
    static func affineInPlace(_ x: inout Tensor, scale: [Double], shift: [Double]) {
        let c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *), images = x.shape[0]
        x.data.withUnsafeMutableBufferPointer { values in
            for n in 0..<images {
                for ch in 0..<c {
                    let a = Float(scale[ch]), b = Float(shift[ch])
                    let run = UnsafeMutableBufferPointer(rebasing: values[((n * c + ch) * inner)..<((n * c + ch + 1) * inner)])
                    for i in run.indices { run[i] = a * run[i] + b }
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

    /// Per chunk (in chunk order): the moments of affine node `layer`'s output over the
    /// chunk's real images, computing forward from the committed state of the previous
    /// Algorithm 1 step (the prefix is never re-run).
    /// - Parameter only: restrict to these chunks (default: every chunk held).
    public func outputMoments(layer: String, only: Set<Int>? = nil, chunkDone: (Chunk) -> Void = { _ in }) throws -> [(chunk: Int, moments: ChannelMoments)] {
        guard let target = graph.node(named: layer) else { throw EngineError.unknownParameter(layer) }
        guard target > frontier else {
            throw EngineError.missingParameter("Algorithm 1 asked for \(layer) after a later layer; layers must come in topological order")
        }
        let live = liveBlobs(after: target)
        let top = graph.nodes[target].tops[0]
        var results: [(Int, ChannelMoments)] = []
        var after: [Int: [Int: Tensor]] = pending?.node == target ? pending!.blobs : [:]
        for chunk in chunks where only?.contains(chunk.index) ?? true {
            if frontier < 0 {
                try engine.setInput(padded(chunk.images))
            } else {
                for (blob, value) in committed[chunk.index] ?? [:] { try engine.setValue(value, of: blob) }
            }
            try engine.forward(nodes: (frontier + 1)..<(target + 1))
            let z = try engine.value(of: top)
            results.append((chunk.index, ChannelMoments(accumulating: firstImages(z, chunk.imageCount))))
            var keep: [Int: Tensor] = [:]
            for blob in live { keep[blob] = blob == top ? z : try engine.value(of: blob) }
            keep[top] = z
            after[chunk.index] = keep
            chunkDone(chunk)
        }
        pending = (target, after)
        return results
    }

    // MARK: Algorithm 2 and Figure 1

    /// Per chunk (in chunk order): a full measurement pass with the random linear loss
    /// `ℓ = η · z_N`, `η` from stream `("eta", step, image)` with `seed`.
    public func measure(step: Int, seed: UInt64, weightGradients: Bool, only: Set<Int>? = nil,
                        chunkDone: (Chunk) -> Void = { _ in }) throws -> [(chunk: Int, measurement: NetworkMeasurement)] {
        // Algorithm 1 is over once measurements start: its caches are no longer needed.
        committed = [:]
        pending = nil
        history = []
        frontier = graph.nodes.count
        let outputs = graph.outputs
        var results: [(Int, NetworkMeasurement)] = []
        // Identical for every chunk: computed once per pass.
        var weightSquares: [String: [Double]] = [:]
        for node in graph.nodes where node.kind.isAffine {
            let channels = graph.blobs[node.bottoms[0]].shape[1]
            weightSquares[node.name] = ColumnStatistics.rowSquares(node, weight: replica.parameters[node.parameters[0].key]!, bottomChannels: channels)
        }
        for chunk in chunks where only?.contains(chunk.index) ?? true {
            try engine.setInput(padded(chunk.images))
            try engine.forward()
            for output in outputs {
                let shape = graph.blobs[output].shape
                let perImage = shape.dropFirst().reduce(1, *)
                var eta = Tensor(shape: shape)
                for n in 0..<chunk.imageCount {
                    let draws = Philox(seed: seed, stream: Philox.stream("eta", step, chunk.firstImage + n, output)).gaussians(count: perImage)
                    eta.data.replaceSubrange((n * perImage)..<((n + 1) * perImage), with: draws)
                }
                try engine.setGradient(eta, of: output)
            }
            try engine.backward(weights: weightGradients)
            var layers: [LayerMeasurement] = []
            for node in graph.nodes where node.kind.isAffine {
                let bottomShape = graph.blobs[node.bottoms[0]].shape
                let topShape = graph.blobs[node.tops[0]].shape
                let n = chunk.imageCount
                let realShape = { (id: Int) in [n] + self.graph.blobs[id].shape.dropFirst() }
                let (inSums, inCount) = try engine.withValue(of: node.bottoms[0]) { x in
                    ColumnStatistics.inputSquares(node, x: x, shape: bottomShape, images: n, outputShape: topShape)
                }
                let zShape = realShape(node.tops[0])
                let moments = try engine.withValue(of: node.tops[0]) { z in
                    ChannelMoments(accumulating: UnsafeBufferPointer(rebasing: z[0..<zShape.reduce(1, *)]), shape: zShape)
                }
                let (norm, squares) = try engine.withGradient(of: node.tops[0]) { y -> (SquaredNormSum, SquareSums) in
                    let real = UnsafeBufferPointer(rebasing: y[0..<zShape.reduce(1, *)])
                    return (SquaredNormSum(accumulating: real, shape: zShape), SquareSums(accumulating: real, shape: zShape))
                }
                let dW = weightGradients ? try engine.parameterGradient(node.parameters[0].key) : nil
                layers.append(LayerMeasurement(
                    layer: node.name, rows: topShape[1],
                    columnsPerChannel: ColumnStatistics.columnsPerChannel(node, bottom: bottomShape),
                    outputMoments: moments,
                    inputSquares: SquareSums(count: inCount, sumOfSquares: inSums),
                    outputGradientNorm: norm,
                    outputGradientSquares: squares,
                    weightGradientSquares: dW.map { SquareSums(count: 1, sumOfSquares: ColumnStatistics.rowSquares(node, weight: $0, bottomChannels: bottomShape[1])) }
                        ?? SquareSums(channelCount: 0),
                    weightSquares: weightSquares[node.name]!))
            }
            results.append((chunk.index, NetworkMeasurement(layers: layers)))
            chunkDone(chunk)
        }
        return results
    }

    /// The images padded with zero images to the chunk size.
    private func padded(_ images: Tensor) -> Tensor {
        let shape = graph.blobs[graph.inputs[0]].shape
        guard images.shape[0] < shape[0] else { return images }
        var out = Tensor(shape: shape)
        out.data.replaceSubrange(0..<images.count, with: images.data)
        return out
    }

    /// The first `n` images of a batch tensor.
    private func firstImages(_ t: Tensor, _ n: Int) -> Tensor {
        guard n < t.shape[0] else { return t }
        let perImage = t.count / t.shape[0]
        return Tensor(shape: [n] + t.shape.dropFirst(), data: Array(t.data[0..<(n * perImage)]))
    }
}
