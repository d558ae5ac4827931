import MagicInitCore
import MagicInitEngine

/// Writing a chunk's cached Algorithm 1 state back into an engine (docs/DESIGN.md §2,
/// "One forward pass").
extension ChunkCollector {
    /// Writes a chunk's cached blobs back into `engine`, each through its pending affine map,
    /// before node `next` runs. When `next` is a ReLU (slope 0) and the only reader of a
    /// mapped blob, the ReLU is applied in the same pass and written straight into its
    /// output (its backward pass reads only that output), so the ReLU costs no pass of its
    /// own. Returns the first node still to run: `next`, or the node after the ReLU.
    /// - Throws: ``CollectorError/negativeScaleAfterPooling(blob:)``; `EngineError`.
    func restore(_ state: ChunkState, on engine: Engine, next: Int) throws -> Int {
        var first = next
        for (blob, snapshot) in state.blobs {
            guard let map = state.maps[blob] else {
                try engine.restore(snapshot)
                continue
            }
            if let pooled = state.pooled, pooled.blob == blob {
                // relu(a·max z + b) = max relu(a·z + b) needs every a ≥ 0 (Algorithm 1's are 1/σ).
                guard map.scale.allSatisfy({ $0 >= 0 }) else {
                    throw CollectorError.negativeScaleAfterPooling(blob: graph.blobs[blob].label)
                }
                try engine.restore(snapshot) { source, target, _ in
                    CachedAffineMap.apply(source, into: target, layout: snapshot.layout, scale: map.scale, shift: map.shift, rectify: true)
                }
                continue
            }
            if let relu = fusableReLU(reading: blob, at: next, on: engine) {
                try engine.restore(snapshot, into: relu) { source, target, _ in
                    CachedAffineMap.apply(source, into: target, layout: snapshot.layout, scale: map.scale, shift: map.shift, rectify: true)
                }
                first = next + 1
            } else {
                try engine.restore(snapshot) { source, target, _ in
                    CachedAffineMap.apply(source, into: target, layout: snapshot.layout, scale: map.scale, shift: map.shift)
                }
            }
        }
        return first
    }

    /// The top of node `index` when it is a ReLU with slope 0 whose bottom is `blob`, no
    /// other node reads `blob`, and the engine holds both in one layout (and
    /// ``Options/fusesReLU`` is on).
    func fusableReLU(reading blob: Int, at index: Int, on engine: Engine) -> Int? {
        guard options.fusesReLU, index < graph.nodes.count, case .relu(let slope) = graph.nodes[index].kind, slope == 0 else { return nil }
        let node = graph.nodes[index]
        guard node.bottoms == [blob], graph.consumers(of: blob) == [index], engine.sameLayout(blob, node.tops[0]) else { return nil }
        return node.tops[0]
    }

    /// Writes every affine layer's input kept by Algorithm 1 back into `engine` (see
    /// ``ChunkState/inputs``): those its steps computed from the images by running the
    /// network up to the last of them, the others from their snapshots.
    func restoreAffineInputs(_ state: ChunkState, images: Tensor, on engine: Engine) throws {
        if let last = state.inputsFromImages.max() {
            try engine.setInput(padded(images))
            try engine.forward(nodes: 0..<last)
        }
        for (_, snapshot) in state.inputs.sorted(by: { $0.key < $1.key }) { try engine.restore(snapshot) }
    }
}
