import MagicInitCore
import MagicInitStatistics

/// Where the initialisation driver gets its numbers: merged statistics over all sample
/// images. Implementations run the network (in this process, or on workers over a
/// transport) and merge per-chunk partial statistics in chunk order; the driver never sees
/// images, threads or sockets.
public protocol StatisticsSource: Sendable {
    /// The compiled network the statistics are about (batch axis = chunk size).
    var graph: Graph { get }

    /// Chunks `0..<chunkCount` the images are cut into (chunk size = the graph's batch).
    var chunkCount: Int { get }

    /// Applies `directives` in order to every replica of the weights.
    func apply(_ directives: [WeightDirective]) async throws

    /// Algorithm 1 step for affine layer `layer` (layers are asked in topological order):
    /// the per-channel moments of its output `z_k` (before any nonlinearity) over all
    /// images, computed through the layers before it with their weights as they are now.
    /// Asking again for the same layer (after a redraw) recomputes that layer only.
    func outputMoments(layer: String) async throws -> ChannelMoments

    /// One full measurement pass for Algorithm 2 and the paper's Figure 1: forward over all
    /// images, the random linear loss `ℓ = η · z_N` with `η ~ N(0, I)` drawn per image from
    /// stream `("eta", step, image)`, backward to the data (and to the weights when
    /// `weightGradients`, which only the weight-gradient rate measure needs).
    /// Run as one request over the chunks of `groups` (all workers busy); the result is
    /// merged per group, in chunk order within each.
    func measure(step: Int, weightGradients: Bool, groups: [Range<Int>]) async throws -> [NetworkMeasurement]

    /// The current weights, by parameter key, Caffe layouts.
    func parameters() async throws -> ParameterSet
}

extension StatisticsSource {
    /// ``measure(step:weightGradients:groups:)`` over every chunk, merged.
    public func measure(step: Int, weightGradients: Bool) async throws -> NetworkMeasurement {
        try await measure(step: step, weightGradients: weightGradients, groups: [0..<chunkCount])[0]
    }
}

/// The progress phase of a measurement over `chunks` of `total` chunks: the pass over
/// every image, or Algorithm 2's verification pass over the first few.
public func measurementPhase(chunks: Int, of total: Int) -> String {
    chunks >= total ? "algorithm 2: measurement pass" : "algorithm 2: verification pass"
}

extension [Range<Int>] {
    /// Every chunk number in the groups.
    public var chunkSet: Set<Int> { reduce(into: Set<Int>()) { $0.formUnion($1) } }

    /// `parts` (by chunk number) merged per group in chunk order; a group without parts
    /// throws.
    public func merged(_ parts: [Int: NetworkMeasurement]) throws -> [NetworkMeasurement] {
        try map { group in
            let chunks = group.filter { parts[$0] != nil }
            guard let first = chunks.first else { throw AlgorithmError.missingStatistics(chunks: group) }
            var merged = parts[first]!
            for chunk in chunks.dropFirst() { merged.merge(parts[chunk]!) }
            return merged
        }
    }
}

/// Merged statistics of one affine layer `k` from a measurement pass. Columns `j` index
/// the weight matrix reshaped to `(N_k rows, fan-in)`: `(c, kh, kw)` row-major for a
/// convolution (`c` over all input channels, groups included), the flattened input feature
/// for an inner product; column `j` belongs to bottom channel `j / columnsPerChannel`.
public struct LayerMeasurement: Sendable, Equatable {
    public var layer: String
    /// `N_k`, rows of the weight matrix (output channels).
    public var rows: Int
    /// Columns per channel of the bottom blob (`kH·kW`, `H·W` for an inner product on a
    /// 4-D blob, 1 otherwise).
    public var columnsPerChannel: Int
    /// Moments of the output `z_k` per channel (the Figure-1 channel statistics).
    public var outputMoments: ChannelMoments
    /// `Σ x_k(j)²` per column over images and output positions: `E[x_k(j)²]` of eq. (4).
    public var inputSquares: SquareSums
    /// `Σ_images ‖y_k‖²`, `y_k = ∂ℓ/∂z_k`: `E[‖y_k‖²]` of eq. (4).
    public var outputGradientNorm: SquaredNormSum
    /// `Σ y_k(i)²` per output channel over images and positions (per-weight rate spread).
    public var outputGradientSquares: SquareSums
    /// `Σ_rows (∂ℓ/∂W)²` per column of each chunk's summed weight gradient; `count` = chunks
    /// (empty when the pass did not compute weight gradients).
    public var weightGradientSquares: SquareSums
    /// `Σ_rows W²` per column of the current weights (identical on every replica).
    public var weightSquares: [Double]

    public init(layer: String, rows: Int, columnsPerChannel: Int, outputMoments: ChannelMoments,
                inputSquares: SquareSums, outputGradientNorm: SquaredNormSum, outputGradientSquares: SquareSums,
                weightGradientSquares: SquareSums, weightSquares: [Double]) {
        self.layer = layer
        self.rows = rows
        self.columnsPerChannel = columnsPerChannel
        self.outputMoments = outputMoments
        self.inputSquares = inputSquares
        self.outputGradientNorm = outputGradientNorm
        self.outputGradientSquares = outputGradientSquares
        self.weightGradientSquares = weightGradientSquares
        self.weightSquares = weightSquares
    }

    /// Merges another chunk's statistics of the same layer (weights are identical).
    public mutating func merge(_ other: LayerMeasurement) {
        precondition(layer == other.layer, "merging statistics of \(layer) with \(other.layer)")
        outputMoments.merge(other.outputMoments)
        inputSquares.merge(other.inputSquares)
        outputGradientNorm.merge(other.outputGradientNorm)
        outputGradientSquares.merge(other.outputGradientSquares)
        weightGradientSquares.merge(other.weightGradientSquares)
    }
}

/// Every affine layer's ``LayerMeasurement``, in topological order.
public struct NetworkMeasurement: Sendable, Equatable {
    public var layers: [LayerMeasurement]
    public init(layers: [LayerMeasurement]) { self.layers = layers }

    /// Merges another chunk's measurement (same layers, same order).
    public mutating func merge(_ other: NetworkMeasurement) {
        precondition(layers.count == other.layers.count, "merging measurements of different networks")
        for i in layers.indices { layers[i].merge(other.layers[i]) }
    }
}
