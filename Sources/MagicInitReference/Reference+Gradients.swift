import MagicInitCore

extension Reference {
    /// Central finite differences of the scalar
    ///
    ///     L = Σ_{b ∈ topGradients} ⟨topGradients[b], value(b)⟩
    ///
    /// with respect to every input element and every parameter element:
    /// `∂L/∂θ ≈ (L(θ + h) − L(θ − h)) / 2h`, exact for layers linear in `θ` up to rounding and
    /// with error `O(h²)` for smooth ones (non-smooth points such as ReLU at 0 or ties in max
    /// pooling give one-sided or averaged slopes).
    ///
    /// Only the nodes downstream of the perturbed value that lead to a blob in
    /// `topGradients` are re-run, and only the blobs they change enter the difference.
    ///
    /// - Parameters:
    ///   - inputs: as for ``forward(_:inputs:parameters:)``.
    ///   - parameters: as for ``forward(_:inputs:parameters:)``.
    ///   - topGradients: blob id → weights of that blob's size (`∂L/∂value(b)`); blobs not
    ///     listed contribute nothing.
    ///   - step: `h`, in the units of the values (Float64 arithmetic throughout).
    /// - Returns: `∂L/∂input` per graph input (``Graph/inputs`` order) and `∂L/∂parameter`
    ///   for every key of ``Graph/parameters``, each of its value's size.
    /// - Complexity: `2 · (inputs + parameters elements)` partial forward passes.
    public static func numericalGradients(_ graph: Graph, inputs: [[Double]], parameters: [String: [Double]],
                                          topGradients: [Int: [Double]], step: Double = 1e-5)
        -> (inputs: [[Double]], parameters: [String: [Double]]) {
        for (id, g) in topGradients {
            requireCount(g, graph.blobs[id].shape, "top gradient of '\(graph.blobs[id].label)'")
        }
        let base = forward(graph, inputs: inputs, parameters: parameters)
        let needed = nodesFeeding(Set(topGradients.keys), in: graph)

        /// `(L(+h) − L(−h)) / 2h` where `perturb(values, parameters, ±h)` shifts one element
        /// (of blob `perturbedBlob`, if it shifts a blob) and `nodes` are the nodes to re-run
        /// afterwards, in topological order.
        func difference(rerunning nodes: [Int], perturbedBlob: Int? = nil,
                        _ perturb: (inout [[Double]], inout [String: [Double]], Double) -> Void) -> Double {
            var changed = Set(nodes.flatMap { graph.nodes[$0].tops })
            if let perturbedBlob { changed.insert(perturbedBlob) }
            func loss(_ sign: Double) -> Double {
                var values = base
                var shifted = parameters
                perturb(&values, &shifted, sign * step)
                for node in nodes { run(node: node, of: graph, values: &values, parameters: shifted) }
                var sum = 0.0
                for (id, g) in topGradients where changed.contains(id) {
                    for j in g.indices { sum += g[j] * values[id][j] }
                }
                return sum
            }
            // Blobs outside `changed` hold equal values at ±h, so their terms cancel exactly.
            return (loss(1) - loss(-1)) / (2 * step)
        }

        var inputGradients: [[Double]] = []
        for (slot, id) in graph.inputs.enumerated() {
            let nodes = nodesDownstream(ofBlob: id, in: graph).filter(needed.contains)
            inputGradients.append((0..<inputs[slot].count).map { j in
                difference(rerunning: nodes, perturbedBlob: id) { values, _, h in values[id][j] += h }
            })
        }

        var parameterGradients: [String: [Double]] = [:]
        for (index, node) in graph.nodes.enumerated() {
            let nodes = nodesDownstream(ofNode: index, in: graph).filter(needed.contains)
            for spec in node.parameters {
                parameterGradients[spec.key] = (0..<spec.count).map { j in
                    difference(rerunning: nodes) { _, shifted, h in shifted[spec.key]![j] += h }
                }
            }
        }
        return (inputGradients, parameterGradients)
    }

    /// Indices of the nodes that (transitively) compute any of `blobs`.
    static func nodesFeeding(_ blobs: Set<Int>, in graph: Graph) -> Set<Int> {
        var wanted = blobs
        var nodes = Set<Int>()
        for index in graph.nodes.indices.reversed() where !wanted.isDisjoint(with: graph.nodes[index].tops) {
            nodes.insert(index)
            wanted.formUnion(graph.nodes[index].bottoms)
        }
        return nodes
    }

    /// Nodes whose output depends on blob `id`, in topological order.
    static func nodesDownstream(ofBlob id: Int, in graph: Graph) -> [Int] {
        var dirty: Set<Int> = [id]
        var nodes: [Int] = []
        for (index, node) in graph.nodes.enumerated() where !dirty.isDisjoint(with: node.bottoms) {
            nodes.append(index)
            dirty.formUnion(node.tops)
        }
        return nodes
    }

    /// Node `start` and the nodes whose output depends on its tops, in topological order.
    static func nodesDownstream(ofNode start: Int, in graph: Graph) -> [Int] {
        var dirty = Set(graph.nodes[start].tops)
        var nodes = [start]
        for index in graph.nodes.indices where index > start && !dirty.isDisjoint(with: graph.nodes[index].bottoms) {
            nodes.append(index)
            dirty.formUnion(graph.nodes[index].tops)
        }
        return nodes
    }
}
