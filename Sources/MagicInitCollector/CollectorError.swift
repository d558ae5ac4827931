import MagicInitCore

/// Errors of the collector boundary (``ChunkCollector``); each names the layer, blob or
/// chunk. Failures inside the engine arrive as `EngineError`, bad directives as the
/// replica's errors, unchanged.
public enum CollectorError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A statistics request named a layer the network does not have, or one that is not
    /// affine.
    case unknownLayer(String)
    /// Algorithm 1 asked for `layer` after `committed`, a later layer: its steps must come
    /// in topological order (docs/DESIGN.md §2).
    case layerOutOfOrder(layer: String, committed: String)
    /// A chunk whose images do not fit the network's input: `expected` is
    /// `(chunk size, C, H, W)`, at least one image and at most the chunk size.
    case chunkShape(chunk: Int, expected: [Int], actual: [Int])
    /// Algorithm 1's map of an output cached after max pooling had a negative scale, which
    /// the pooling does not commute with (Algorithm 1's scales are `1/σ > 0`).
    case negativeScaleAfterPooling(blob: String)

    public var description: String {
        switch self {
        case .unknownLayer(let layer): "no affine layer '\(layer)' in this network"
        case .layerOutOfOrder(let layer, let committed):
            "Algorithm 1 asked for layer '\(layer)' after the later layer '\(committed)'; layers must come in topological order"
        case .chunkShape(let chunk, let expected, let actual):
            "chunk \(chunk): images of shape \(describeShape(actual)) do not fit the network's input \(describeShape(expected)) (1 to \(expected.first ?? 0) images)"
        case .negativeScaleAfterPooling(let blob):
            "a negative scale for \(blob), cached after max pooling (Algorithm 1's scales are positive)"
        }
    }
}
