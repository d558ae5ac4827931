import MagicInitCore

/// A naive Float64 forward pass of every ``LayerKind``, with Caffe's exact semantics: the
/// independent reference the oneDNN engine is tested against (in the spirit of
/// karpathy/llm.c's readable reference implementation).
///
/// Every layer is one static function over flattened row-major arrays, with the shape of each
/// argument in its doc comment; ``forward(_:inputs:parameters:)`` runs a whole ``Graph`` by
/// dispatching to them, and ``numericalGradients(_:inputs:parameters:topGradients:step:)``
/// differentiates it by central differences.
///
/// Layout letters (as in ``Tensor``): N = images in the batch, C = channels, H = height,
/// W = width, O = output channels, I = input channels, G = groups; `k`, `s`, `p`, `d` are
/// kernel, stride, pad and dilation along the axis at hand.
///
/// Written to be read, not to be fast: plain loops, no blocking, no threads, no BLAS.
/// Preconditions (not errors) guard the array sizes: a mismatch is a bug in the caller's test.
public enum Reference {
    /// Runs `graph` forward in Float64.
    ///
    /// - Parameters:
    ///   - inputs: one flattened row-major array per graph input blob, in ``Graph/inputs``
    ///     order, each of its blob's size (batch axis included).
    ///   - parameters: ``ParameterSpec/key`` (`conv1.weight`) → flattened values of the
    ///     parameter's shape; every parameter of ``Graph/parameters`` must be present.
    /// - Returns: the value of every blob, indexed by blob id (``Graph/blobs`` indices), so
    ///   the value before an in-place layer (`conv1`) and after it (`conv1@1`) both remain.
    /// - Complexity: the sum of the layers' costs; see each layer function.
    public static func forward(_ graph: Graph, inputs: [[Double]], parameters: [String: [Double]]) -> [[Double]] {
        precondition(inputs.count == graph.inputs.count,
                     "Reference.forward: the graph has \(graph.inputs.count) input(s), got \(inputs.count) array(s)")
        var values = [[Double]](repeating: [], count: graph.blobs.count)
        for (id, x) in zip(graph.inputs, inputs) {
            let blob = graph.blobs[id]
            requireCount(x, blob.shape, "input '\(blob.label)'")
            values[id] = x
        }
        for index in graph.nodes.indices {
            run(node: index, of: graph, values: &values, parameters: parameters)
        }
        return values
    }

    /// ``forward(_:inputs:parameters:)`` for float32 tensors, as the engine holds them: the
    /// values are widened to Float64 first.
    /// - Parameters:
    ///   - inputs: one tensor per graph input, in ``Graph/inputs`` order.
    ///   - parameters: ``ParameterSpec/key`` → tensor of the parameter's shape.
    public static func forward(_ graph: Graph, inputs: [Tensor], parameters: ParameterSet) -> [[Double]] {
        forward(graph, inputs: inputs.map { $0.data.map(Double.init) },
                parameters: parameters.mapValues { $0.data.map(Double.init) })
    }

    /// Computes the tops of node `index` from the bottoms already in `values` and stores them.
    static func run(node index: Int, of graph: Graph, values: inout [[Double]], parameters: [String: [Double]]) {
        let node = graph.nodes[index]
        let weights = node.parameters.map { spec -> [Double] in
            guard let value = parameters[spec.key] else {
                preconditionFailure("Reference: layer '\(node.name)' needs parameter '\(spec.key)' \(describeShape(spec.shape)), which is missing")
            }
            requireCount(value, spec.shape, "parameter '\(spec.key)'")
            return value
        }
        let bottoms = node.bottoms.map { values[$0] }
        let shapes = node.bottoms.map { graph.blobs[$0].shape }
        let tops = apply(node.kind, bottoms: bottoms, shapes: shapes, parameters: weights)
        for (id, top) in zip(node.tops, tops) {
            assert(top.count == elementCount(graph.blobs[id].shape),
                   "Reference: layer '\(node.name)' produced \(top.count) values for \(describeShape(graph.blobs[id].shape))")
            values[id] = top
        }
    }

    /// The tops of one layer of kind `kind`.
    /// - Parameters:
    ///   - bottoms: the bottom values, of shapes `shapes` (batch axis included).
    ///   - parameters: the layer's parameter values in Caffe blob order (``ParameterSpec``).
    static func apply(_ kind: LayerKind, bottoms: [[Double]], shapes: [[Int]], parameters w: [[Double]]) -> [[Double]] {
        let x = bottoms.first ?? []
        let shape = shapes.first ?? []
        switch kind {
        case .convolution(let p):
            return [convolution(x, shape: shape, weight: w[0], bias: p.biasTerm ? w[1] : nil, p)]
        case .deconvolution(let p):
            return [deconvolution(x, shape: shape, weight: w[0], bias: p.biasTerm ? w[1] : nil, p)]
        case .innerProduct(let p):
            return [innerProduct(x, shape: shape, weight: w[0], bias: p.biasTerm ? w[1] : nil, p)]
        case .relu(let slope):
            return [relu(x, negativeSlope: Double(slope))]
        case .sigmoid:
            return [sigmoid(x)]
        case .tanh:
            return [tanh(x)]
        case .lrn(let p):
            return [lrn(x, shape: shape, p)]
        case .pooling(let p):
            return [pooling(x, shape: shape, p)]
        case .dropout:
            return [dropout(x)]
        case .concat(let axis):
            return [concat(bottoms, shapes: shapes, axis: axis)]
        case .eltwise(let p):
            return [eltwise(bottoms, p)]
        case .softmax(let axis):
            return [softmax(x, shape: shape, axis: axis)]
        case .flatten:
            return [flatten(x)]
        case .reshape:
            return [reshape(x)]
        case .batchNorm(let eps):
            return [batchNorm(x, shape: shape, mean: w[0], variance: w[1], factor: w[2], eps: Double(eps))]
        case .scale(let hasBias):
            return [scale(x, shape: shape, gamma: w[0], beta: hasBias ? w[1] : nil)]
        }
    }
}

/// Number of elements of a blob of shape `shape`.
@inline(__always)
func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

/// Stops with a message naming `what` when `values` does not hold one element per entry of `shape`.
func requireCount(_ values: [Double], _ shape: [Int], _ what: @autoclosure () -> String) {
    precondition(values.count == elementCount(shape),
                 "Reference: \(what()) of shape \(describeShape(shape)) needs \(elementCount(shape)) values, got \(values.count)")
}
