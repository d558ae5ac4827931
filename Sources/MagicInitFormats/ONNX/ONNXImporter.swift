import MagicInitCore

/// A constant value of the graph: an initializer, a `Constant` node, or a reshape of one.
struct ONNXConstant {
    /// The source tensor (for an attribute-form `Constant`, a synthesised one).
    var tensor: Onnx_TensorProto
    /// Where the source tensor lives; `nil` for synthesised tensors (not writable).
    var location: ONNXTensorLocation?
    /// The name of the source tensor in the file.
    var sourceName: String
    /// The dims this value has where it is used (differs from the stored dims after a
    /// Reshape or Transpose).
    var dims: [Int]
    /// The value is the transpose of the stored 2-D tensor (`Transpose(W, perm=[1, 0])`).
    var transposed = false
    /// The element count, or -1 when `dims` overflow (matching no shape).
    var count: Int { Tensor.checkedCount(of: dims) ?? -1 }
}

/// Translates an ONNX graph, node by node in the file's (topological) order, into IR
/// layers. Blob names are the ONNX value names. Shapes are tracked at batch 1 with
/// ``ShapeInference`` so that axis- and shape-dependent attributes can be checked as they come.
struct ONNXImporter {
    struct Result {
        var network: Network
        var parameters: ParameterSet
        var bindings: [String: ONNXBinding]
        var inputPermutations: [String: [Int]]
        var opset: Int
        var notes: [String]
    }

    let file: String
    let model: Onnx_ModelProto
    let options: ONNXImportOptions
    var graph: Onnx_GraphProto { model.graph }
    let opset: Int

    var inputs: [Network.Input] = []
    var layers: [Layer] = []
    /// IR blob → shape with batch 1.
    var shapes: [String: [Int]] = [:]
    /// IR blob → index in `layers` of the layer that last wrote it.
    var producer: [String: Int] = [:]
    /// ONNX value → IR blob, for values that are another value under a new name (Identity,
    /// the leading Transpose).
    var alias: [String: String] = [:]
    var constants: [String: ONNXConstant] = [:]
    /// How many node inputs and graph outputs read each ONNX value.
    var useCount: [String: Int] = [:]
    var layerNames = Set<String>()
    var bindings: [String: ONNXBinding] = [:]
    /// Parameters with no ONNX tensor (BatchNorm's moving-average factor).
    var synthesized: ParameterSet = [:]
    var inputPermutations: [String: [Int]] = [:]
    var notes: [String] = []
    /// Constant `Add` nodes folded into the bias of the layer before them.
    var foldedBiases = 0

    init(file: String, model: Onnx_ModelProto, options: ONNXImportOptions) {
        self.file = file
        self.model = model
        self.options = options
        let defaultDomain = model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }
        self.opset = defaultDomain.map { Int($0.version) } ?? 1
    }

    mutating func run() throws(ONNXError) -> Result {
        for (i, tensor) in graph.initializer.enumerated() {
            constants[tensor.name] = ONNXConstant(tensor: tensor, location: .initializer(i), sourceName: tensor.name,
                                                  dims: tensor.dims.map { Int($0) })
        }
        for node in graph.node { for input in node.input where !input.isEmpty { useCount[input, default: 0] += 1 } }
        for output in graph.output { useCount[output.name, default: 0] += 1 }
        try checkOperators()
        try readInputs()
        for (i, node) in graph.node.enumerated() {
            try translate(node, index: i)
        }
        if foldedBiases > 0 { notes.append("folded \(foldedBiases) constant Add node(s) into the bias of the layer before them") }
        let network = Network(name: graph.name, inputs: inputs, layers: layers)
        let parameters = try loadParameters(network)
        return Result(network: network, parameters: parameters, bindings: bindings,
                      inputPermutations: inputPermutations, opset: opset, notes: notes)
    }

    /// Every operator outside ``ONNXModel/supportedOperators`` (or outside the default
    /// domain), with the nodes using it, in one error.
    private func checkOperators() throws(ONNXError) {
        var unsupported: [String: [String]] = [:]
        var order: [String] = []
        for (i, node) in graph.node.enumerated() {
            let defaultDomain = node.domain.isEmpty || node.domain == "ai.onnx"
            guard !defaultDomain || !ONNXModel.supportedOperators.contains(node.opType) else { continue }
            let op = defaultDomain ? node.opType : "\(node.domain).\(node.opType)"
            if unsupported[op] == nil { order.append(op) }
            unsupported[op, default: []].append(node.displayName(index: i))
        }
        guard order.isEmpty else {
            throw ONNXError.unsupportedOperators(
                file: file, operators: order.map { ONNXError.UnsupportedOperator(opType: $0, nodes: unsupported[$0]!) },
                supported: ONNXModel.supportedOperators)
        }
    }

    /// Graph inputs that are not initializers become IR inputs `(C, H, W)` (batch axis dropped).
    private mutating func readInputs() throws(ONNXError) {
        for info in graph.input where constants[info.name] == nil {
            let dims: [Int?] = info.type.tensorType.shape.dim.map { d in
                if case .dimValue(let v)? = d.value, v > 0 { return Int(v) }
                return nil
            }
            let shape: [Int]
            if let given = options.inputShapes[info.name] {
                shape = given
            } else {
                guard dims.count >= 2, dims.dropFirst().allSatisfy({ $0 != nil }) else {
                    let shown = "(" + dims.map { $0.map(String.init) ?? "?" }.joined(separator: ", ") + ")"
                    throw ONNXError.missingInputShape(
                        file: file, input: info.name,
                        message: "declared shape \(shown) has unknown extents; give the per-image shape (without the batch axis) in ONNXImportOptions.inputShapes")
                }
                shape = dims.dropFirst().map { $0! }
            }
            guard !shape.isEmpty, shape.allSatisfy({ $0 >= 1 }) else {
                throw ONNXError.missingInputShape(file: file, input: info.name, message: "shape \(describeShape(shape)) is not a valid per-image shape")
            }
            guard let count = Tensor.checkedCount(of: shape), count <= ShapeInference.maxElements else {
                throw ONNXError.missingInputShape(file: file, input: info.name,
                                                  message: "shape \(describeShape(shape)) has more than \(ShapeInference.maxElements) elements per image")
            }
            inputs.append(Network.Input(name: info.name, shape: shape))
            shapes[info.name] = [1] + shape
        }
        guard !inputs.isEmpty else { throw ONNXError.malformed(file: file, message: "the graph has no input besides its initializers") }
    }

    // MARK: - Values

    /// The IR blob carrying activation value `value`.
    func blob(_ value: String, node: Onnx_NodeProto, index: Int) throws(ONNXError) -> String {
        if let a = alias[value] { return a }
        if shapes[value] != nil { return value }
        if constants[value] != nil {
            throw ONNXError.unsupportedUse(file: file, node: node.displayName(index: index), opType: node.opType,
                                           message: "input '\(value)' is a constant; MagicInit supports this operator on values computed from the network input only")
        }
        throw ONNXError.undefinedValue(file: file, node: node.displayName(index: index), value: value)
    }

    func shape(of blob: String) -> [Int] { shapes[blob]! }

    /// The constant `value`, or `nil` if it is computed.
    func constant(_ value: String) -> ONNXConstant? { constants[value] }

    func requireConstant(_ value: String, node: Onnx_NodeProto, index: Int) throws(ONNXError) -> ONNXConstant {
        guard let c = constants[value] else {
            throw ONNXError.notConstant(file: file, node: node.displayName(index: index), opType: node.opType, input: value)
        }
        return c
    }

    func floats(_ c: ONNXConstant) throws(ONNXError) -> [Float] {
        do { return try ONNXTensorData.floats(c.tensor) } catch {
            guard case .unsupported(let m) = error else { fatalError() }
            throw ONNXError.unsupportedTensor(file: file, tensor: c.sourceName, message: m)
        }
    }

    func ints(_ c: ONNXConstant) throws(ONNXError) -> [Int] {
        do { return try ONNXTensorData.ints(c.tensor) } catch {
            guard case .unsupported(let m) = error else { fatalError() }
            throw ONNXError.unsupportedTensor(file: file, tensor: c.sourceName, message: m)
        }
    }

    // MARK: - Layers

    /// A layer name not yet used: `base`, else `base_2`, `base_3`, …
    mutating func uniqueName(_ base: String) -> String {
        var name = base
        var n = 2
        while layerNames.contains(name) {
            name = "\(base)_\(n)"
            n += 1
        }
        layerNames.insert(name)
        return name
    }

    /// The name of an affine (or BatchNorm) layer: its weight tensor's name minus `suffix`
    /// when it has one (PyTorch state-dict names), else the node's name.
    mutating func parameterLayerName(tensor: String?, suffix: String, node: Onnx_NodeProto, index: Int) -> String {
        if let tensor, tensor.hasSuffix(suffix), tensor.count > suffix.count {
            return uniqueName(String(tensor.dropLast(suffix.count)))
        }
        return uniqueName(node.name.isEmpty ? "\(node.opType)_\(index)" : node.name)
    }

    mutating func plainLayerName(_ node: Onnx_NodeProto, index: Int) -> String {
        uniqueName(node.name.isEmpty ? "\(node.opType)_\(index)" : node.name)
    }

    /// Appends `layer` after inferring its output shape.
    mutating func append(_ layer: Layer, node: Onnx_NodeProto, index: Int) throws(ONNXError) {
        let bottomShapes = layer.bottoms.map { shapes[$0]! }
        let topShapes: [[Int]]
        do {
            topShapes = try ShapeInference.outputShapes(of: layer, bottoms: bottomShapes)
        } catch {
            throw ONNXError.unsupportedUse(file: file, node: node.displayName(index: index), opType: node.opType,
                                           message: "as IR layer '\(layer.name)' (\(layer.kind.caffeType)): \(error)")
        }
        for (top, s) in zip(layer.tops, topShapes) {
            shapes[top] = s
            producer[top] = layers.count
        }
        layers.append(layer)
    }

    /// Binds IR parameter `key` (shape `irShape`) to constant `c`.
    mutating func bind(_ key: String, irShape: [Int], to c: ONNXConstant, transposed: Bool = false,
                       factorKey: String? = nil, node: Onnx_NodeProto, index: Int) throws(ONNXError) {
        guard let location = c.location else {
            throw ONNXError.unsupportedUse(file: file, node: node.displayName(index: index), opType: node.opType,
                                           message: "parameter '\(key)' comes from an attribute-form Constant, which cannot be written back")
        }
        guard !c.transposed || irShape.count == 2 else {
            throw ONNXError.unsupportedUse(file: file, node: node.displayName(index: index), opType: node.opType,
                                           message: "parameter '\(key)' comes from a transposed tensor '\(c.sourceName)', which only 2-D weights may")
        }
        guard c.count == irShape.reduce(1, *) else {
            throw ONNXError.unsupportedUse(file: file, node: node.displayName(index: index), opType: node.opType,
                                           message: "tensor '\(c.sourceName)' has dims \(describeShape(c.dims)); IR parameter '\(key)' needs \(describeShape(irShape))")
        }
        bindings[key] = ONNXBinding(tensorName: c.sourceName, location: location, storedShape: c.tensor.dims.map { Int($0) },
                                    irShape: irShape, transposed: transposed != c.transposed, factorKey: factorKey)
    }

    /// Checks every parameter of the compiled network against its binding and reads the
    /// values in IR layout.
    private func loadParameters(_ network: Network) throws(ONNXError) -> ParameterSet {
        let graph: Graph
        do {
            graph = try Graph(network, batchSize: 1)
        } catch {
            throw ONNXError.invalidNetwork(file: file, message: "the translated network does not compile: \(error)")
        }
        var parameters: ParameterSet = [:]
        for spec in graph.parameters {
            if let value = synthesized[spec.key] {
                parameters[spec.key] = value
                continue
            }
            guard let binding = bindings[spec.key], binding.irShape == spec.shape else {
                let actual = bindings[spec.key]?.irShape ?? []
                throw ONNXError.parameterShapeMismatch(file: file, key: spec.key, expected: spec.shape, actual: actual)
            }
            let c = constant(forLocation: binding.location)
            var data = try floats(c)
            if binding.transposed {
                data = ONNXModel.transpose(data, rows: binding.irShape[1], columns: binding.irShape[0])
            }
            parameters[spec.key] = Tensor(shape: spec.shape, data: data)
        }
        return parameters
    }

    private func constant(forLocation location: ONNXTensorLocation) -> ONNXConstant {
        let tensor: Onnx_TensorProto
        switch location {
        case .initializer(let i): tensor = graph.initializer[i]
        case .constantNode(let n): tensor = graph.node[n].attribute.first { $0.name == "value" }!.t
        }
        return ONNXConstant(tensor: tensor, location: location, sourceName: tensor.name, dims: tensor.dims.map { Int($0) })
    }
}
