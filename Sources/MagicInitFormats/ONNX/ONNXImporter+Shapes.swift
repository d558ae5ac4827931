import MagicInitCore

/// Operators that only rearrange: Reshape (of values and of constants) and Transpose (of the
/// network input or of a 2-D constant).
extension ONNXImporter {
    mutating func reshape(_ node: Onnx_NodeProto, index: Int, output: String,
                          _ unsupported: (String) -> ONNXError) throws(ONNXError) {
        guard !node.input.isEmpty else { throw unsupported("needs a data input") }
        // Opset 5 and later give the shape as an input; opset 1 as an attribute.
        let given: [Int]
        if node.input.count >= 2 {
            given = try ints(requireConstant(node.input[1], node: node, index: index))
        } else if let attribute = node.ints("shape") {
            given = attribute
        } else {
            throw unsupported("needs a shape")
        }
        var spec = given
        if node.int("allowzero", default: 0) != 0 && spec.contains(0) {
            throw unsupported("allowzero=1 with a 0 in the shape is not supported")
        }
        if let c = constant(node.input[0]) {
            guard !c.transposed else { throw unsupported("reshaping a transposed constant is not supported") }
            // A reshaped constant (a bias stored (C) used as (1, C, 1, 1)) stays bound to its source.
            var dims = spec.enumerated().map { $0.element == 0 && $0.offset < c.dims.count ? c.dims[$0.offset] : $0.element }
            if let i = dims.firstIndex(of: -1) {
                let known = Tensor.checkedCount(of: dims.enumerated().filter { $0.offset != i }.map(\.element)) ?? 0
                guard known > 0, c.count % known == 0 else { throw unsupported("cannot reshape \(describeShape(c.dims)) to \(spec)") }
                dims[i] = c.count / known
            }
            guard c.count >= 0, Tensor.checkedCount(of: dims) == c.count else { throw unsupported("cannot reshape \(describeShape(c.dims)) to \(spec)") }
            var reshaped = c
            reshaped.dims = dims
            constants[output] = reshaped
            return
        }
        let x = try blob(node.input[0], node: node, index: index)
        if spec.first == 1 {
            spec[0] = 0
            notes.append("Reshape '\(node.displayName(index: index))': the leading 1 of shape \(given) is taken as the batch axis (kept as is)")
        }
        try append(Layer(name: plainLayerName(node, index: index), kind: .reshape(shape: spec), bottoms: [x], tops: [output]),
                   node: node, index: index)
    }

    /// A Transpose reading a network input directly (NHWC from TensorFlow): the IR input takes
    /// the transposed shape, and the Transpose disappears. A Transpose of a 2-D constant (a
    /// `Linear` weight before `MatMul`) stays bound to the stored tensor.
    mutating func leadingTranspose(_ node: Onnx_NodeProto, index: Int, output: String,
                                   _ unsupported: (String) -> ONNXError) throws(ONNXError) {
        let x = node.input.first ?? ""
        if var c = constant(x) {
            guard c.dims.count == 2, (node.ints("perm") ?? [1, 0]) == [1, 0] else {
                throw unsupported("only 2-D constants can be transposed (perm [1, 0]); '\(c.sourceName)' has dims \(describeShape(c.dims))")
            }
            c.dims.reverse()
            c.transposed.toggle()
            constants[output] = c
            return
        }
        guard let i = inputs.firstIndex(where: { $0.name == x }), alias[x] == nil, useCount[x] == 1,
              let full = shapes[x], producer[x] == nil else {
            throw unsupported("only a Transpose applied directly to a network input (NHWC → NCHW) is supported")
        }
        let perm = node.ints("perm") ?? Array((0..<full.count).reversed())
        guard perm.count == full.count, perm.first == 0, Set(perm) == Set(0..<full.count) else {
            throw unsupported("perm \(perm) must keep the batch axis first (e.g. [0, 3, 1, 2] for NHWC → NCHW)")
        }
        let permuted = perm.map { full[$0] }
        inputs[i].shape = Array(permuted.dropFirst())
        shapes[x] = permuted
        alias[output] = x
        inputPermutations[x] = perm
        notes.append("input '\(x)': the Transpose '\(node.displayName(index: index))' (perm \(perm)) is absorbed; feed \(describeShape(inputs[i].shape)) (NCHW) images")
    }
}
