import Dispatch
import MagicInitCore

/// The weights of a network as a plain value, changed only by ``WeightDirective``s. Every
/// replica (each worker's engine, the coordinator) applies the same directives with this
/// one piece of code, so all hold bitwise-identical weights.
///
/// A replica may keep some weights in *external* storage instead of ``parameters``: a
/// worker's collector hands it the engine's own buffer of a weight that oneDNN keeps in the
/// Caffe layout (VGG-16's `fc6.weight`, 411 MB), so the directives change the engine's
/// weights in place and the worker holds one copy of them, not two.
public struct WeightReplica: Sendable {
    public let graph: Graph
    /// Every parameter except the external ones (see ``externalKeys``).
    public private(set) var parameters: ParameterSet
    /// Weights held outside, by key: `count` floats in the Caffe layout of the key's spec.
    private let external: [String: ExternalWeights]

    /// A caller-owned buffer that stands for one parameter (see the type's documentation).
    /// Copies of a replica share it, so only one of them may apply directives.
    public struct ExternalWeights: @unchecked Sendable {
        let buffer: UnsafeMutableBufferPointer<Float>
        /// Whether the buffer is known to hold zeros (fresh engine memory).
        let zeroed: Bool
        /// - Parameters:
        ///   - buffer: must stay valid, and be changed only through this replica, for the
        ///     replica's lifetime.
        ///   - zeroed: the caller knows every element is zero, so the replica does not read
        ///     the buffer to check. Reading fresh mapped memory maps the shared zero page,
        ///     and the first write after that is a copy-on-write fault with a TLB
        ///     shootdown on every core the process runs on: for VGG-16's `fc6.weight` in a
        ///     two-engine worker that cost about 2.8 s of CPU time in the first Gaussian draw.
        public init(_ buffer: UnsafeMutableBufferPointer<Float>, zeroed: Bool = false) {
            self.buffer = buffer
            self.zeroed = zeroed
        }
    }

    /// Starts with zero weights and biases (BatchNorm as the identity, Scale γ = 1).
    /// - Parameter external: weights kept in caller-owned buffers (set to their starting
    ///   value here); each must hold exactly its spec's element count.
    public init(graph: Graph, external: [String: ExternalWeights] = [:]) {
        self.graph = graph
        var parameters: ParameterSet = [:]
        for spec in graph.parameters {
            let one = spec.role == .runningVar || spec.role == .movingAverageFactor
                || (spec.role == .weight && { if case .scale = graph.nodes[graph.node(named: spec.layer)!].kind { true } else { false } }())
            if let outside = external[spec.key] {
                precondition(outside.buffer.count == spec.count, "\(spec.key): external buffer of \(outside.buffer.count) floats, expected \(spec.count)")
                // Skipped when already at the starting value (fresh engine memory is zero).
                let start: Float = one ? 1 : 0
                if outside.zeroed && start == 0 { continue }
                if outside.buffer.contains(where: { $0 != start }) { outside.buffer.update(repeating: start) }
                continue
            }
            parameters[spec.key] = Tensor(shape: spec.shape, repeating: one ? 1 : 0)
        }
        self.parameters = parameters
        self.external = external
    }

    /// Keys held in external buffers rather than in ``parameters``.
    public var externalKeys: Set<String> { Set(external.keys) }

    /// Parameter `key`'s values, wherever they are held (a copy for an external one).
    public func value(of key: String) -> Tensor? {
        if let tensor = parameters[key] { return tensor }
        guard let outside = external[key], let spec = graph.parameters.first(where: { $0.key == key }) else { return nil }
        return Tensor(shape: spec.shape, data: Array(outside.buffer))
    }

    /// Every parameter, external ones copied in (for writing the result, not a hot path).
    public var allParameters: ParameterSet {
        var all = parameters
        for key in external.keys { all[key] = value(of: key) }
        return all
    }

    /// Runs `body` on weight `key`'s values in place (Caffe layout), wherever they are held.
    /// - Precondition: `key` is a parameter of the graph.
    public mutating func withWeights<R>(_ key: String, _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        if let outside = external[key] { return try body(outside.buffer) }
        // Taken out of the dictionary so the storage is uniquely referenced (changed in
        // place: no second weight-sized array, no fresh pages to fault in).
        var tensor = parameters.removeValue(forKey: key)!
        defer { parameters[key] = tensor }
        return try tensor.data.withUnsafeMutableBufferPointer { try body($0) }
    }

    /// Read-only access to weight `key`'s values (Caffe layout), wherever they are held.
    /// - Precondition: `key` is a parameter of the graph.
    public func withWeights<R>(_ key: String, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        if let outside = external[key] { return try body(UnsafeBufferPointer(outside.buffer)) }
        return try parameters[key]!.data.withUnsafeBufferPointer { try body($0) }
    }

    /// Applies `directive`; returns the keys it changed.
    /// - Throws: ``AlgorithmError/unknownLayer(_:)`` or ``AlgorithmError/badDirective(layer:reason:)``.
    @discardableResult
    public mutating func apply(_ directive: WeightDirective) throws -> [String] {
        guard let nodeIndex = graph.node(named: directive.layer) else { throw AlgorithmError.unknownLayer(directive.layer) }
        let node = graph.nodes[nodeIndex]
        guard let weightSpec = node.parameters.first else { throw AlgorithmError.badDirective(layer: node.name, reason: "the layer has no parameters") }
        let biasKey = node.parameters.count > 1 && node.parameters[1].role == .bias ? node.parameters[1].key : nil
        switch directive {
        case .gaussian(_, let seed, let std):
            withWeights(weightSpec.key) { GaussianWeights.fill($0, spec: weightSpec, seed: seed, std: std) }
            if let biasKey { parameters[biasKey] = Tensor(shape: [weightSpec.shape[0]]) }
            return [weightSpec.key] + (biasKey.map { [$0] } ?? [])
        case .redrawRows(_, let rows, let seed, let std, let attempt):
            if let row = rows.first(where: { $0 < 0 || $0 >= weightSpec.shape[0] }) {
                throw AlgorithmError.badDirective(layer: node.name, reason: "row \(row) out of range")
            }
            // Only the redrawn rows are generated, with the values a full draw gives them.
            withWeights(weightSpec.key) { GaussianWeights.fillRows(rows, of: $0, spec: weightSpec, seed: seed, std: std, attempt: attempt) }
            if let biasKey { for row in rows { parameters[biasKey]!.data[row] = 0 } }
            return [weightSpec.key] + (biasKey.map { [$0] } ?? [])
        case .affine(_, let rowScale, let columnScale, let shift):
            try applyAffine(node, weightKey: weightSpec.key, biasKey: biasKey, rowScale: rowScale, columnScale: columnScale, shift: shift)
            return [weightSpec.key] + (biasKey.map { [$0] } ?? [])
        case .normalize(_, let scale, let shift):
            try applyAffine(node, weightKey: weightSpec.key, biasKey: biasKey, rowScale: scale, columnScale: [], shift: shift)
            return [weightSpec.key] + (biasKey.map { [$0] } ?? [])
        case .set(let key, let value):
            guard let spec = node.parameters.first(where: { $0.key == key }) else { throw AlgorithmError.badDirective(layer: node.name, reason: "no parameter \(key)") }
            guard spec.shape == value.shape else {
                throw AlgorithmError.badDirective(layer: node.name, reason: "\(key) needs shape \(describeShape(spec.shape)), got \(describeShape(value.shape))")
            }
            if external[key] != nil {
                withWeights(key) { buffer in value.data.withUnsafeBufferPointer { _ = buffer.update(fromContentsOf: $0) } }
            } else {
                parameters[key] = value
            }
            return [key]
        }
    }

    /// `W[o, c, …] *= rowScale[o] · columnScale[c]`, `b[o] = b[o] · rowScale[o] + shift[o]`,
    /// in Float64 then rounded once to Float32.
    private mutating func applyAffine(_ node: Graph.Node, weightKey: String, biasKey: String?,
                                      rowScale: [Double], columnScale: [Double], shift: [Double]) throws {
        let spec = node.parameters[0]
        let bottom = graph.blobs[node.bottoms[0]].shape
        let columns = columnScale.isEmpty ? [Double](repeating: 1, count: bottom[1]) : columnScale
        let rows: Int
        switch node.kind {
        case .deconvolution(let p): rows = spec.shape[1] * p.groups
        default: rows = spec.shape[0]
        }
        guard rowScale.count == rows, shift.count == rows, columns.count == bottom[1] else {
            throw AlgorithmError.badDirective(layer: node.name, reason: "affine map with \(rowScale.count) row scales, \(shift.count) shifts, \(columns.count) column scales for \(rows) rows and \(bottom[1]) input channels")
        }
        // Changed in place; rows (output channels, or input channels of a deconvolution) in
        // parallel: each element is touched once, so the result does not depend on the split.
        let kind = node.kind, shape = spec.shape
        withWeights(weightKey) { buffer in
            nonisolated(unsafe) let w = buffer.baseAddress!
            let scale = { @Sendable (count: Int, factor: Double, base: Int) in
                for j in base..<(base + count) { w[j] = Float(Double(w[j]) * factor) }
            }
            switch kind {
            case .convolution(let p):
                let o = shape[0], inPerGroup = shape[1], k = shape[2] * shape[3]
                DispatchQueue.concurrentPerform(iterations: o) { row in
                    let group = row / (o / p.groups)
                    for ci in 0..<inPerGroup {
                        scale(k, rowScale[row] * columns[group * inPerGroup + ci], (row * inPerGroup + ci) * k)
                    }
                }
            case .deconvolution(let p):
                let c = shape[0], outPerGroup = shape[1], k = shape[2] * shape[3]
                let inPerGroup = c / p.groups
                DispatchQueue.concurrentPerform(iterations: c) { ci in
                    let group = ci / inPerGroup
                    for oi in 0..<outPerGroup {
                        scale(k, rowScale[group * outPerGroup + oi] * columns[ci], (ci * outPerGroup + oi) * k)
                    }
                }
            default:
                // Inner product: feature j belongs to bottom channel j / perChannel.
                let o = shape[0], f = shape[1]
                let perChannel = max(f / columns.count, 1)
                DispatchQueue.concurrentPerform(iterations: o) { row in
                    var j = 0
                    while j < f {
                        let channel = j / perChannel, end = min(f, (channel + 1) * perChannel)
                        scale(end - j, rowScale[row] * columns[channel], row * f + j)
                        j = end
                    }
                }
            }
        }
        if let biasKey {
            var b = parameters[biasKey]!.data
            for o in 0..<rows { b[o] = Float(Double(b[o]) * rowScale[o] + shift[o]) }
            parameters[biasKey]!.data = b
        } else if shift.contains(where: { $0 != 0 }) {
            throw AlgorithmError.badDirective(layer: node.name, reason: "the layer has no bias, so it cannot be centred at β")
        }
    }
}
