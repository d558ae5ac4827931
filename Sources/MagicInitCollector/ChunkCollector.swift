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

    /// Algorithm 1 state: the last node run for every chunk, the blobs still needed after
    /// it (per chunk), and the same after the layer asked for last (not yet committed).
    private var frontier = -1
    private var committed: [Int: [Int: Tensor]] = [:]
    private var pending: (node: Int, blobs: [Int: [Int: Tensor]])?

    /// - Parameters:
    ///   - network: the network to initialise (a trailing Softmax is dropped).
    ///   - chunkSize: images per chunk (the engine's batch size).
    ///   - threads: oneDNN threads.
    public init(network: Network, chunkSize: Int, threads: Int? = nil) throws {
        graph = try Graph(ChunkCollector.droppingOutputSoftmax(network), batchSize: chunkSize)
        engine = try Engine(graph: graph, options: .init(threads: threads))
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
        chunks.append(contentsOf: newChunks)
        chunks.sort { $0.index < $1.index }
    }

    public var chunkIndices: [Int] { chunks.map(\.index) }

    // MARK: weights

    /// Applies weight directives to this replica (and to Algorithm 1's cached output of
    /// the layer they touch, when it is an affine map of that output).
    public func apply(_ directives: [WeightDirective]) throws {
        for directive in directives {
            guard let nodeIndex = graph.node(named: directive.layer) else { throw EngineError.unknownParameter(directive.layer) }
            let node = graph.nodes[nodeIndex]
            switch directive {
            case .gaussian(_, let seed, let std):
                var update: ParameterSet = [:]
                for spec in node.parameters {
                    update[spec.key] = spec.role == .weight ? GaussianWeights.generate(spec: spec, seed: seed, std: std) : Tensor(shape: spec.shape)
                }
                try engine.setParameters(update)
                pending = nil
            case .redrawRows(_, let rows, let seed, let std, let attempt):
                let spec = node.parameters[0]
                var weight = try engine.parameterValue(spec.key)
                let fresh = GaussianWeights.generate(spec: spec, seed: seed, std: std, attempt: attempt)
                let rowLength = spec.count / spec.shape[0]
                for row in rows where row < spec.shape[0] {
                    for j in (row * rowLength)..<((row + 1) * rowLength) { weight.data[j] = fresh.data[j] }
                }
                var update: ParameterSet = [spec.key: weight]
                if node.parameters.count > 1 {
                    var bias = try engine.parameterValue(node.parameters[1].key)
                    for row in rows where row < bias.count { bias.data[row] = 0 }
                    update[node.parameters[1].key] = bias
                }
                try engine.setParameters(update)
                pending = nil
            case .affine(_, let rowScale, let columnScale, let shift):
                try applyAffine(node: node, rowScale: rowScale, columnScale: columnScale, shift: shift)
                if let p = pending, p.node == nodeIndex, columnScale.allSatisfy({ $0 == 1 }) {
                    var blobs = p.blobs
                    let top = node.tops[0]
                    for chunk in blobs.keys { blobs[chunk]![top] = ChunkCollector.affine(blobs[chunk]![top]!, scale: rowScale, shift: shift) }
                    committed = blobs
                    frontier = nodeIndex
                }
                pending = nil
            case .set(let key, let value):
                try engine.setParameters([key: value])
                pending = nil
            }
        }
    }

    private func applyAffine(node: Graph.Node, rowScale: [Double], columnScale: [Double], shift: [Double]) throws {
        let spec = node.parameters[0]
        var weight = try engine.parameterValue(spec.key)
        let bottomShape = graph.blobs[node.bottoms[0]].shape
        let columns = columnScale.isEmpty ? [Double](repeating: 1, count: bottomShape[1]) : columnScale
        switch node.kind {
        case .convolution(let p):
            let o = spec.shape[0], inPerGroup = spec.shape[1], k = spec.shape[2] * spec.shape[3]
            for row in 0..<o {
                let group = row / (o / p.groups)
                for ci in 0..<inPerGroup {
                    let factor = Float(rowScale[row] * columns[group * inPerGroup + ci])
                    let base = (row * inPerGroup + ci) * k
                    for j in base..<(base + k) { weight.data[j] *= factor }
                }
            }
        case .deconvolution(let p):
            let c = spec.shape[0], outPerGroup = spec.shape[1], k = spec.shape[2] * spec.shape[3]
            let inPerGroup = c / p.groups
            for ci in 0..<c {
                let group = ci / inPerGroup
                for oi in 0..<outPerGroup {
                    let factor = Float(rowScale[group * outPerGroup + oi] * columns[ci])
                    let base = (ci * outPerGroup + oi) * k
                    for j in base..<(base + k) { weight.data[j] *= factor }
                }
            }
        default:
            let o = spec.shape[0], f = spec.shape[1]
            let perChannel = max(f / columns.count, 1)
            for row in 0..<o {
                for j in 0..<f { weight.data[row * f + j] *= Float(rowScale[row] * columns[j / perChannel]) }
            }
        }
        var update: ParameterSet = [spec.key: weight]
        if node.parameters.count > 1 {
            var bias = try engine.parameterValue(node.parameters[1].key)
            for o in 0..<bias.count { bias.data[o] = Float(Double(bias.data[o]) * rowScale[o] + shift[o]) }
            update[node.parameters[1].key] = bias
        } else if shift.contains(where: { $0 != 0 }) {
            throw EngineError.missingParameter("\(node.name).bias (Algorithm 1 needs a bias to centre the layer at β)")
        }
        try engine.setParameters(update)
    }

    /// `scale[c] · x + shift[c]` per channel (axis 1) of a row-major tensor.
    static func affine(_ x: Tensor, scale: [Double], shift: [Double]) -> Tensor {
        var out = x
        let c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
        for n in 0..<x.shape[0] {
            for ch in 0..<c {
                let a = Float(scale[ch]), b = Float(shift[ch])
                let base = (n * c + ch) * inner
                for i in base..<(base + inner) { out.data[i] = a * x.data[i] + b }
            }
        }
        return out
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
    public func outputMoments(layer: String) throws -> [(chunk: Int, moments: ChannelMoments)] {
        guard let target = graph.node(named: layer) else { throw EngineError.unknownParameter(layer) }
        precondition(target > frontier, "Algorithm 1 layers must be asked in topological order")
        let live = liveBlobs(after: target)
        let top = graph.nodes[target].tops[0]
        var results: [(Int, ChannelMoments)] = []
        var after: [Int: [Int: Tensor]] = [:]
        for chunk in chunks {
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
        }
        pending = (target, after)
        return results
    }

    // MARK: Algorithm 2 and Figure 1

    /// Per chunk (in chunk order): a full measurement pass with the random linear loss
    /// `ℓ = η · z_N`, `η` from stream `("eta", step, image)` with `seed`.
    public func measure(step: Int, seed: UInt64) throws -> [(chunk: Int, measurement: NetworkMeasurement)] {
        let outputs = graph.outputs
        var results: [(Int, NetworkMeasurement)] = []
        for chunk in chunks {
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
            try engine.backward(weights: true)
            var layers: [LayerMeasurement] = []
            for node in graph.nodes where node.kind.isAffine {
                let bottomShape = graph.blobs[node.bottoms[0]].shape
                let topShape = graph.blobs[node.tops[0]].shape
                let x = try engine.value(of: node.bottoms[0])
                let z = firstImages(try engine.value(of: node.tops[0]), chunk.imageCount)
                let y = firstImages(try engine.gradient(of: node.tops[0]), chunk.imageCount)
                let weight = try engine.parameterValue(node.parameters[0].key)
                let dW = try engine.parameterGradient(node.parameters[0].key)
                let (inSums, inCount) = ColumnStatistics.inputSquares(node, x: x, images: chunk.imageCount, outputShape: topShape)
                layers.append(LayerMeasurement(
                    layer: node.name, rows: topShape[1],
                    columnsPerChannel: ColumnStatistics.columnsPerChannel(node, bottom: bottomShape),
                    outputMoments: ChannelMoments(accumulating: z),
                    inputSquares: SquareSums(count: inCount, sumOfSquares: inSums),
                    outputGradientNorm: SquaredNormSum(accumulating: y),
                    outputGradientSquares: SquareSums(accumulating: y),
                    weightGradientSquares: SquareSums(count: 1, sumOfSquares: ColumnStatistics.rowSquares(node, weight: dW, bottomChannels: bottomShape[1])),
                    weightSquares: ColumnStatistics.rowSquares(node, weight: weight, bottomChannels: bottomShape[1])))
            }
            results.append((chunk.index, NetworkMeasurement(layers: layers)))
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
