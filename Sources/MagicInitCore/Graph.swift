/// A compiled network: every blob value has its own id (in-place layers produce a new
/// version of a blob name), every blob has a shape with the batch axis, and the nodes are
/// in topological order.
public struct Graph: Sendable {
    /// One value flowing through the network.
    public struct Blob: Sendable, Hashable {
        /// The blob's name in the network definition (shared by in-place versions).
        public var name: String
        /// 0 for the first value written under ``name``, 1 after the first in-place layer, …
        public var version: Int
        /// Shape with the batch axis, e.g. `(N, C, H, W)` or `(N, C)`.
        public var shape: [Int]
        /// Index in ``Graph/nodes`` of the producing node; `nil` for network inputs.
        public var producer: Int?

        /// `conv1`, or `conv1@1` for the value after the first in-place layer.
        public var label: String { version == 0 ? name : "\(name)@\(version)" }
    }

    /// One layer with its blobs resolved to ids.
    public struct Node: Sendable, Hashable {
        public var layer: Layer
        /// Indices into ``Graph/blobs``.
        public var bottoms: [Int]
        /// Indices into ``Graph/blobs``.
        public var tops: [Int]
        public var parameters: [ParameterSpec]

        public var name: String { layer.name }
        public var kind: LayerKind { layer.kind }
    }

    public let network: Network
    public let batchSize: Int
    public private(set) var blobs: [Blob] = []
    /// Topological order: every node comes after the producers of its bottoms.
    public private(set) var nodes: [Node] = []
    /// Blob ids of the network inputs, in ``Network/inputs`` order.
    public private(set) var inputs: [Int] = []

    /// Compiles `network` for batches of `batchSize` images.
    /// - Throws: ``GraphError`` naming the layer whose bottoms, parameters or shapes are wrong,
    ///   or the input, blob or parameter whose size exceeds ``ShapeInference/maxElements``.
    public init(_ network: Network, batchSize: Int = 1) throws {
        guard batchSize >= 1 else { throw GraphError.invalidBatchSize(batchSize) }
        self.network = network
        self.batchSize = batchSize

        var seenLayers = Set<String>()
        for layer in network.layers where !seenLayers.insert(layer.name).inserted {
            throw GraphError.duplicateLayerName(layer.name)
        }
        var latest: [String: Int] = [:]
        for input in network.inputs {
            guard latest[input.name] == nil else { throw GraphError.duplicateInput(input.name) }
            try ShapeInference.checkBounded([batchSize] + input.shape, what: "input '\(input.name)' (with the batch axis)")
            latest[input.name] = blobs.count
            inputs.append(blobs.count)
            blobs.append(Blob(name: input.name, version: 0, shape: [batchSize] + input.shape, producer: nil))
        }
        for layer in try Graph.orderedLayers(network) {
            let bottomIDs = try layer.bottoms.map { name -> Int in
                guard let id = latest[name] else { throw GraphError.unknownBottom(layer: layer.name, blob: name) }
                return id
            }
            let bottomShapes = bottomIDs.map { blobs[$0].shape }
            let topShapes = try ShapeInference.outputShapes(of: layer, bottoms: bottomShapes)
            guard topShapes.count == layer.tops.count else {
                throw GraphError.wrongTopCount(layer: layer.name, type: layer.kind.caffeType,
                                               expected: topShapes.count, actual: layer.tops.count)
            }
            let nodeIndex = nodes.count
            var topIDs: [Int] = []
            for (name, shape) in zip(layer.tops, topShapes) {
                let version = latest[name].map { blobs[$0].name == name ? blobs[$0].version + 1 : 0 } ?? 0
                latest[name] = blobs.count
                topIDs.append(blobs.count)
                blobs.append(Blob(name: name, version: version, shape: shape, producer: nodeIndex))
            }
            let parameters = layer.kind.parameterSpecs(layer: layer.name, input: bottomShapes.first ?? [])
            for spec in parameters { try ShapeInference.checkBounded(spec.shape, what: "parameter '\(spec.key)'") }
            nodes.append(Node(layer: layer, bottoms: bottomIDs, tops: topIDs, parameters: parameters))
        }
    }

    /// The same network compiled for another batch size.
    public func withBatchSize(_ n: Int) throws -> Graph { try Graph(network, batchSize: n) }

    /// Every parameter blob, in node order then Caffe blob order.
    public var parameters: [ParameterSpec] { nodes.flatMap(\.parameters) }

    /// The id of the latest value of the blob called `name` (after any in-place layers).
    public func blob(named name: String) -> Int? {
        blobs.indices.last { blobs[$0].name == name }
    }

    /// The node for layer `name`, if any.
    public func node(named name: String) -> Int? {
        nodes.firstIndex { $0.name == name }
    }

    /// Nodes reading blob `id`, in topological order.
    public func consumers(of id: Int) -> [Int] {
        nodes.indices.filter { nodes[$0].bottoms.contains(id) }
    }

    /// Blobs no node reads: the network outputs.
    public var outputs: [Int] {
        var read = Set<Int>()
        for node in nodes { read.formUnion(node.bottoms) }
        return blobs.indices.filter { !read.contains($0) && !inputs.contains($0) }
    }

    /// Multiply–adds of the affine layers for the whole batch (forward pass).
    public var forwardMultiplyAdds: Int {
        nodes.reduce(0) { total, node in
            guard node.kind.isAffine, let weight = node.parameters.first else { return total }
            switch node.kind {
            case .convolution:
                let out = blobs[node.tops[0]].shape
                return total + out[0] * out[2] * out[3] * weight.count
            case .deconvolution:
                let input = blobs[node.bottoms[0]].shape
                return total + input[0] * input[2] * input[3] * weight.count
            default:
                return total + batchSize * weight.count
            }
        }
    }

    /// Layers in an order where each comes after the producers of its bottoms. The given
    /// order is kept when it already is one (always the case for Caffe files, which may
    /// reuse names in place); otherwise layers are sorted by their blob dependencies.
    static func orderedLayers(_ network: Network) throws -> [Layer] {
        var defined = Set(network.inputs.map(\.name))
        var inOrder = true
        for layer in network.layers {
            if !layer.bottoms.allSatisfy(defined.contains) { inOrder = false; break }
            defined.formUnion(layer.tops)
        }
        if inOrder { return network.layers }

        // Kahn's algorithm over producer → consumer edges (names are unique when unordered).
        var producer: [String: Int] = [:]
        for (i, layer) in network.layers.enumerated() {
            for top in layer.tops where producer[top] == nil { producer[top] = i }
        }
        let inputNames = Set(network.inputs.map(\.name))
        var pending = [Int](repeating: 0, count: network.layers.count)
        var dependents = [[Int]](repeating: [], count: network.layers.count)
        for (i, layer) in network.layers.enumerated() {
            for bottom in Set(layer.bottoms) where !inputNames.contains(bottom) {
                guard let p = producer[bottom] else {
                    throw GraphError.unknownBottom(layer: layer.name, blob: bottom)
                }
                if p == i { continue }
                pending[i] += 1
                dependents[p].append(i)
            }
        }
        var ready = network.layers.indices.filter { pending[$0] == 0 }
        var order: [Layer] = []
        while !ready.isEmpty {
            let i = ready.removeFirst()
            order.append(network.layers[i])
            for d in dependents[i] {
                pending[d] -= 1
                if pending[d] == 0 { ready.append(d) }
            }
        }
        guard order.count == network.layers.count else {
            throw GraphError.cycle(layers: network.layers.indices.filter { pending[$0] > 0 }
                .map { network.layers[$0].name })
        }
        return order
    }
}
