import MagicInitCore

/// Progress of a statistics request, reported by a source as chunks complete.
public struct ProgressEvent: Sendable, Equatable {
    /// What is being computed, e.g. `algorithm 1: conv3_1 (layer 5 of 16)`.
    public var phase: String
    /// Images whose statistics are in, and all images.
    public var imagesDone: Int
    public var imagesTotal: Int

    public init(phase: String, imagesDone: Int, imagesTotal: Int) {
        self.phase = phase
        self.imagesDone = imagesDone
        self.imagesTotal = imagesTotal
    }
}

/// Receives ``ProgressEvent``s (from any thread).
public typealias ProgressHandler = @Sendable (ProgressEvent) -> Void

extension Graph {
    /// `algorithm 1: <layer> (layer k of K)` for an affine layer.
    public func algorithm1Phase(layer: String) -> String {
        let affine = nodes.filter { $0.kind.isAffine }.map(\.name)
        let k = (affine.firstIndex(of: layer) ?? 0) + 1
        return "algorithm 1: \(layer) (layer \(k) of \(affine.count))"
    }
}
