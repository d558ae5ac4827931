import MagicInitCore

/// One translation per operator. ONNX attribute defaults are the specification's.
extension ONNXImporter {
    mutating func translate(_ node: Onnx_NodeProto, index: Int) throws(ONNXError) {
        let name = node.displayName(index: index)
        let file = self.file  // the closures below must not capture self, which the operators mutate
        func unsupported(_ message: String) -> ONNXError {
            ONNXError.unsupportedUse(file: file, node: name, opType: node.opType, message: message)
        }
        func input(_ i: Int) -> String? { i < node.input.count && !node.input[i].isEmpty ? node.input[i] : nil }
        func requiredInput(_ i: Int) throws(ONNXError) -> String {
            guard let v = input(i) else { throw unsupported("input \(i) is missing") }
            return v
        }
        guard let output = node.output.first, !output.isEmpty else { throw unsupported("the node has no output") }
        // Only the first output may be read (Dropout's mask, MaxPool's indices, BatchNorm's
        // training statistics are not computed).
        for extra in node.output.dropFirst() where !extra.isEmpty && useCount[extra, default: 0] > 0 {
            throw unsupported("output '\(extra)' is used; MagicInit computes only the first output")
        }

        switch node.opType {
        case "Constant":
            try constantNode(node, index: index, output: output, unsupported)

        case "Identity":
            let x = try requiredInput(0)
            if let c = constant(x) { constants[output] = c } else { alias[output] = try blob(x, node: node, index: index) }

        case "Conv", "ConvTranspose":
            try convolution(node, index: index, output: output, unsupported)

        case "Gemm":
            let a = try blob(requiredInput(0), node: node, index: index)
            let b = try requireConstant(requiredInput(1), node: node, index: index)
            guard node.int("transA", default: 0) == 0 else { throw unsupported("transA=1 is not supported") }
            guard node.float("alpha", default: 1) == 1, input(2) == nil || node.float("beta", default: 1) == 1 else {
                throw unsupported("alpha and beta other than 1 are not supported")
            }
            guard b.dims.count == 2 else { throw unsupported("weight '\(b.sourceName)' has dims \(describeShape(b.dims)); need 2-D") }
            let transB = node.int("transB", default: 0) != 0
            let (outputs, fanIn) = transB ? (b.dims[0], b.dims[1]) : (b.dims[1], b.dims[0])
            try innerProduct(node, index: index, input: a, output: output, weight: b, outputs: outputs, fanIn: fanIn,
                             transposed: !transB, bias: input(2), unsupported)

        case "MatMul":
            guard constant(try requiredInput(0)) == nil else {
                throw unsupported("the constant must be the second input (x · W) to map onto an inner product")
            }
            let a = try blob(requiredInput(0), node: node, index: index)
            let b = try requireConstant(requiredInput(1), node: node, index: index)
            guard b.dims.count == 2 else { throw unsupported("weight '\(b.sourceName)' has dims \(describeShape(b.dims)); need 2-D (I, O)") }
            try innerProduct(node, index: index, input: a, output: output, weight: b, outputs: b.dims[1], fanIn: b.dims[0],
                             transposed: true, bias: nil, unsupported)

        case "Add", "Mul":
            try addOrMultiply(node, index: index, output: output, unsupported)

        case "Relu":
            try simple(.relu(negativeSlope: 0), node, index: index, output: output)
        case "LeakyRelu":
            try simple(.relu(negativeSlope: node.float("alpha", default: 0.01)), node, index: index, output: output)
        case "Sigmoid":
            try simple(.sigmoid, node, index: index, output: output)
        case "Tanh":
            try simple(.tanh, node, index: index, output: output)

        case "MaxPool", "AveragePool":
            try pooling(node, index: index, output: output, unsupported)
        case "GlobalAveragePool":
            try simple(.pooling(PoolingParameters(method: .average, global: true)), node, index: index, output: output)
        case "GlobalMaxPool":
            try simple(.pooling(PoolingParameters(method: .max, global: true)), node, index: index, output: output)

        case "LRN":
            guard let size = node.attribute("size").map({ Int($0.i) }) else { throw unsupported("the size attribute is missing") }
            try simple(.lrn(LRNParameters(localSize: size, alpha: node.float("alpha", default: 1e-4),
                                          beta: node.float("beta", default: 0.75), k: node.float("bias", default: 1))),
                       node, index: index, output: output)

        case "Dropout":
            var ratio = node.float("ratio", default: 0.5)
            if let r = input(1) {
                guard let c = constant(r) else { throw unsupported("ratio must be a constant") }
                ratio = try floats(c).first ?? 0.5
            }
            if let t = input(2) {
                guard let c = constant(t), (try? ONNXTensorData.ints(c.tensor))?.first ?? 0 == 0 else {
                    throw unsupported("training_mode must be a constant false")
                }
            }
            try simple(.dropout(ratio: ratio), node, index: index, output: output)

        case "Concat":
            let bottoms = try node.input.map { v throws(ONNXError) in try blob(v, node: node, index: index) }
            guard let first = bottoms.first else { throw unsupported("no inputs") }
            let axisValue = node.int("axis", default: 1)  // required since opset 4; 1 before
            let rank = shape(of: first).count
            try append(Layer(name: plainLayerName(node, index: index), kind: .concat(axis: axisValue < 0 ? axisValue + rank : axisValue),
                             bottoms: bottoms, tops: [output]), node: node, index: index)

        case "Flatten":
            let x = try blob(requiredInput(0), node: node, index: index)
            let rank = shape(of: x).count
            var axis = node.int("axis", default: 1)
            if axis < 0 { axis += rank }
            guard axis == 1 else { throw unsupported("axis \(axis); only axis 1 (keep the batch axis) is supported") }
            try append(Layer(name: plainLayerName(node, index: index), kind: .flatten(axis: 1, endAxis: -1),
                             bottoms: [x], tops: [output]), node: node, index: index)

        case "Reshape":
            try reshape(node, index: index, output: output, unsupported)

        case "BatchNormalization":
            try batchNormalization(node, index: index, output: output, unsupported)

        case "Softmax":
            let x = try blob(requiredInput(0), node: node, index: index)
            let s = shape(of: x)
            var axis = node.int("axis", default: opset < 13 ? 1 : -1)
            if axis < 0 { axis += s.count }
            if opset < 13 && axis < s.count - 1 && s[(axis + 1)...].contains(where: { $0 != 1 }) {
                throw unsupported("before opset 13, Softmax normalises over axes \(axis)… of \(describeShape(s)) together; the IR normalises along one axis")
            }
            try simple(.softmax(axis: axis), node, index: index, output: output)

        case "Transpose":
            try leadingTranspose(node, index: index, output: output, unsupported)

        default:
            throw unsupported("not supported")  // checkOperators rejects these first
        }
    }

    mutating func simple(_ kind: LayerKind, _ node: Onnx_NodeProto, index: Int, output: String) throws(ONNXError) {
        guard let x = node.input.first else {
            throw ONNXError.unsupportedUse(file: file, node: node.displayName(index: index), opType: node.opType, message: "no input")
        }
        let bottom = try blob(x, node: node, index: index)
        try append(Layer(name: plainLayerName(node, index: index), kind: kind, bottoms: [bottom], tops: [output]),
                   node: node, index: index)
    }

    mutating func constantNode(_ node: Onnx_NodeProto, index: Int, output: String,
                               _ unsupported: (String) -> ONNXError) throws(ONNXError) {
        if let value = node.attribute("value") {
            constants[output] = ONNXConstant(tensor: value.t, location: .constantNode(index), sourceName: output,
                                             dims: value.t.dims.map { Int($0) })
            return
        }
        var t = Onnx_TensorProto()
        if let a = node.attribute("value_float") {
            t.dataType = ONNXTensorData.floatType
            t.floatData = [a.f]
        } else if let a = node.attribute("value_floats") {
            t.dataType = ONNXTensorData.floatType
            t.floatData = a.floats
            t.dims = [Int64(a.floats.count)]
        } else if let a = node.attribute("value_int") {
            t.dataType = ONNXTensorData.int64Type
            t.int64Data = [a.i]
        } else if let a = node.attribute("value_ints") {
            t.dataType = ONNXTensorData.int64Type
            t.int64Data = a.ints
            t.dims = [Int64(a.ints.count)]
        } else {
            throw unsupported("only value, value_float(s) and value_int(s) constants are supported")
        }
        constants[output] = ONNXConstant(tensor: t, location: nil, sourceName: output, dims: t.dims.map { Int($0) })
    }

    /// Symmetric 2-D padding `(h, w)` from `pads` `[top, left, bottom, right]` or `auto_pad`.
    func padding(_ node: Onnx_NodeProto, input: [Int], extent: Size2, stride: Size2, allowSame: Bool,
                 _ unsupported: (String) -> ONNXError) throws(ONNXError) -> Size2 {
        switch node.string("auto_pad", default: "NOTSET") {
        case "NOTSET", "":
            let p = node.ints("pads") ?? [0, 0, 0, 0]
            guard p.count == 4 else { throw unsupported("pads \(p): a 2-D operator needs 4 values") }
            guard p[0] == p[2], p[1] == p[3] else {
                throw unsupported("asymmetric padding pads=\(p) (top, left, bottom, right); the IR pads both sides equally")
            }
            return Size2(p[0], p[1])
        case "VALID":
            return Size2(0)
        case let mode where allowSame && (mode == "SAME_UPPER" || mode == "SAME_LOWER"):
            var pad: [Int] = []
            for (size, (k, s)) in zip(input[2...3], [(extent.h, stride.h), (extent.w, stride.w)]) {
                let out = (size + s - 1) / s
                let total = max((out - 1) * s + k - size, 0)
                guard total % 2 == 0 else {
                    throw unsupported("auto_pad \(mode) needs \(total) padding cells on an axis of \(size), which cannot be split evenly; the IR pads both sides equally")
                }
                pad.append(total / 2)
            }
            return Size2(pad[0], pad[1])
        case let mode:
            throw unsupported("auto_pad \(mode) is not supported")
        }
    }

    func pair(_ node: Onnx_NodeProto, _ attribute: String, default value: Int,
              _ unsupported: (String) -> ONNXError) throws(ONNXError) -> Size2 {
        guard let v = node.ints(attribute) else { return Size2(value) }
        guard v.count == 2 else { throw unsupported("\(attribute) \(v): only 2-D is supported") }
        return Size2(v[0], v[1])
    }

    mutating func pooling(_ node: Onnx_NodeProto, index: Int, output: String,
                          _ unsupported: (String) -> ONNXError) throws(ONNXError) {
        let x = try blob(node.input.first ?? "", node: node, index: index)
        let input = shape(of: x)
        guard input.count == 4 else { throw unsupported("input has shape \(describeShape(input)); need (N, C, H, W)") }
        guard let k = node.ints("kernel_shape"), k.count == 2 else { throw unsupported("kernel_shape must have 2 values") }
        let kernel = Size2(k[0], k[1])
        guard (node.ints("dilations") ?? []).allSatisfy({ $0 == 1 }) else { throw unsupported("dilated pooling is not supported") }
        let stride = try pair(node, "strides", default: 1, unsupported)
        let pad = try padding(node, input: input, extent: kernel, stride: stride, allowSame: true, unsupported)
        let isMax = node.opType == "MaxPool"
        if !isMax && node.int("count_include_pad", default: 0) == 0 && (pad.h > 0 || pad.w > 0) {
            throw unsupported("count_include_pad=0 with padding \(pad) divides border windows by the cells inside the image; the IR's average pooling (Caffe's) also counts the padding, so the results would differ at the borders. Export with count_include_pad=1 (PyTorch's default) or without padding")
        }
        let roundMode: PoolingParameters.RoundMode = node.int("ceil_mode", default: 0) != 0 ? .ceil : .floor
        try simple(.pooling(PoolingParameters(method: isMax ? .max : .average, kernel: kernel, stride: stride, pad: pad,
                                              global: false, roundMode: roundMode)),
                   node, index: index, output: output)
    }
}
