/// Output shapes of each layer kind, with Caffe's formulas.
public enum ShapeInference {
    /// The most elements any blob (batch axis included) or parameter may have: 2³² float32
    /// values, 16 GiB. Shapes come from files and the wire; anything larger is refused with
    /// ``GraphError/tooLarge(what:shape:limit:)`` before it is allocated or multiplied further.
    public static let maxElements = 1 << 32

    /// The largest layer setting accepted (output count, kernel, stride, pad, dilation,
    /// groups, reshape extents): 2²⁴. With extents bounded by ``maxElements`` and settings by
    /// this, no formula below can overflow `Int`.
    public static let maxHyperparameter = 1 << 24

    /// Checks that `shape` has at most ``maxElements`` elements (overflow-checked).
    /// - Throws: ``GraphError/tooLarge(what:shape:limit:)`` naming `what`.
    public static func checkBounded(_ shape: [Int], what: @autoclosure () -> String) throws {
        guard let count = Tensor.checkedCount(of: shape), count <= maxElements else {
            throw GraphError.tooLarge(what: what(), shape: shape, limit: maxElements)
        }
    }

    /// Output extent of a convolution along one axis:
    /// `⌊(input + 2·pad − dilation·(kernel − 1) − 1) / stride⌋ + 1`.
    public static func convolutionOutput(_ input: Int, kernel: Int, stride: Int, pad: Int, dilation: Int) -> Int {
        (input + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1
    }

    /// Output extent of a deconvolution along one axis:
    /// `stride·(input − 1) + dilation·(kernel − 1) + 1 − 2·pad`.
    public static func deconvolutionOutput(_ input: Int, kernel: Int, stride: Int, pad: Int, dilation: Int) -> Int {
        stride * (input - 1) + dilation * (kernel - 1) + 1 - 2 * pad
    }

    /// Output extent of pooling along one axis. Caffe (`ceil`):
    /// `⌈(input + 2·pad − kernel) / stride⌉ + 1`, minus one when the last window would start
    /// inside the padding (`(out − 1)·stride ≥ input + pad`, checked whenever the layer has
    /// any padding, `anyPad`, as Caffe does); `floor` is PyTorch's default.
    public static func poolingOutput(_ input: Int, kernel: Int, stride: Int, pad: Int,
                                     roundMode: PoolingParameters.RoundMode, anyPad: Bool) -> Int {
        // `span` is negative when the kernel is larger than the padded input; round it the
        // way Caffe (float `ceil`) and PyTorch (floor division) do, not toward zero like `/`,
        // so such a layer gets no output (and is rejected) instead of one clipped window.
        let span = Double(input + 2 * pad - kernel)
        var out: Int
        switch roundMode {
        case .ceil: out = Int((span / Double(stride)).rounded(.up)) + 1
        case .floor: out = Int((span / Double(stride)).rounded(.down)) + 1
        }
        if anyPad && (out - 1) * stride >= input + pad { out -= 1 }
        return out
    }

    /// The effective kernel, stride and pad of a pooling layer on input `(N, C, H, W)`
    /// (global pooling takes the whole plane with stride 1 and no padding).
    public static func poolingWindow(_ p: PoolingParameters, input: [Int]) -> (kernel: Size2, stride: Size2, pad: Size2) {
        p.global ? (Size2(input[2], input[3]), Size2(1), Size2(0)) : (p.kernel, p.stride, p.pad)
    }

    /// Shapes of the tops of `layer` given the shapes of its bottoms.
    /// - Throws: ``GraphError`` naming the layer and the offending shapes or parameters;
    ///   ``GraphError/tooLarge(what:shape:limit:)`` when a bottom or top has more than
    ///   ``maxElements`` elements or a setting exceeds ``maxHyperparameter``.
    public static func outputShapes(of layer: Layer, bottoms: [[Int]]) throws -> [[Int]] {
        for (i, bottom) in bottoms.enumerated() {
            try checkBounded(bottom, what: "layer '\(layer.name)': bottom \(i)")
        }
        for (label, value) in layer.kind.hyperparameters where value > maxHyperparameter {
            throw GraphError.tooLarge(what: "layer '\(layer.name)': \(label)", shape: [value], limit: maxHyperparameter)
        }
        let tops = try unboundedOutputShapes(of: layer, bottoms: bottoms)
        for (i, top) in tops.enumerated() {
            try checkBounded(top, what: "layer '\(layer.name)': top \(i)")
        }
        return tops
    }

    private static func unboundedOutputShapes(of layer: Layer, bottoms: [[Int]]) throws -> [[Int]] {
        let name = layer.name
        let type = layer.kind.caffeType
        func requireBottoms(_ n: Int) throws {
            guard bottoms.count == n else {
                throw GraphError.wrongBottomCount(layer: name, type: type, expected: "\(n)", actual: bottoms.count)
            }
        }
        func require4D() throws -> [Int] {
            try requireBottoms(1)
            guard bottoms[0].count == 4 else {
                throw GraphError.shapeMismatch(layer: name, message: "\(type) needs a 4-D (N, C, H, W) bottom, got \(describeShape(bottoms[0]))")
            }
            return bottoms[0]
        }
        func invalid(_ message: String) -> GraphError { GraphError.invalidParameter(layer: name, message: message) }
        func positive(_ values: [(String, Int)]) throws {
            for (label, v) in values where v < 1 { throw invalid("\(label) must be ≥ 1, got \(v)") }
        }

        switch layer.kind {
        case .convolution(let p), .deconvolution(let p):
            let x = try require4D()
            try positive([("num_output", p.numOutput), ("kernel height", p.kernel.h), ("kernel width", p.kernel.w),
                          ("stride", min(p.stride.h, p.stride.w)), ("dilation", min(p.dilation.h, p.dilation.w)),
                          ("group", p.groups)])
            guard p.pad.h >= 0, p.pad.w >= 0 else { throw invalid("pad must be ≥ 0, got \(p.pad)") }
            guard x[1] % p.groups == 0, p.numOutput % p.groups == 0 else {
                throw GraphError.shapeMismatch(layer: name, message: "\(x[1]) input and \(p.numOutput) output channels are not divisible by group \(p.groups)")
            }
            let isConv: Bool
            if case .convolution = layer.kind { isConv = true } else { isConv = false }
            let f = isConv ? convolutionOutput : deconvolutionOutput
            let h = f(x[2], p.kernel.h, p.stride.h, p.pad.h, p.dilation.h)
            let w = f(x[3], p.kernel.w, p.stride.w, p.pad.w, p.dilation.w)
            guard h >= 1, w >= 1 else {
                throw GraphError.shapeMismatch(layer: name, message: "kernel \(p.kernel) (dilation \(p.dilation), pad \(p.pad)) does not fit input \(describeShape(x)); output would be \(h)×\(w)")
            }
            return [[x[0], p.numOutput, h, w]]

        case .innerProduct(let p):
            try requireBottoms(1)
            try positive([("num_output", p.numOutput)])
            guard bottoms[0].count >= 2 else {
                throw GraphError.shapeMismatch(layer: name, message: "InnerProduct needs a bottom with a batch axis, got \(describeShape(bottoms[0]))")
            }
            return [[bottoms[0][0], p.numOutput]]

        case .relu, .sigmoid, .tanh, .dropout:
            try requireBottoms(1)
            return [bottoms[0]]

        case .lrn(let p):
            let x = try require4D()
            guard p.localSize >= 1, p.localSize % 2 == 1 else { throw invalid("LRN local_size must be odd and ≥ 1, got \(p.localSize)") }
            return [x]

        case .batchNorm(let eps):
            try requireBottoms(1)
            guard bottoms[0].count >= 2 else {
                throw GraphError.shapeMismatch(layer: name, message: "BatchNorm needs a channel axis, got \(describeShape(bottoms[0]))")
            }
            guard eps >= 0 else { throw invalid("eps must be ≥ 0, got \(eps)") }
            return [bottoms[0]]

        case .scale:
            try requireBottoms(1)
            guard bottoms[0].count >= 2 else {
                throw GraphError.shapeMismatch(layer: name, message: "Scale needs a channel axis, got \(describeShape(bottoms[0]))")
            }
            return [bottoms[0]]

        case .pooling(let p):
            let x = try require4D()
            let (k, s, pad) = poolingWindow(p, input: x)
            try positive([("kernel height", k.h), ("kernel width", k.w), ("stride", min(s.h, s.w))])
            guard pad.h < k.h, pad.w < k.w else { throw invalid("pad \(pad) must be smaller than kernel \(k)") }
            let anyPad = pad.h > 0 || pad.w > 0
            let h = poolingOutput(x[2], kernel: k.h, stride: s.h, pad: pad.h, roundMode: p.roundMode, anyPad: anyPad)
            let w = poolingOutput(x[3], kernel: k.w, stride: s.w, pad: pad.w, roundMode: p.roundMode, anyPad: anyPad)
            guard h >= 1, w >= 1 else {
                throw GraphError.shapeMismatch(layer: name, message: "kernel \(k) does not fit input \(describeShape(x))")
            }
            return [[x[0], x[1], h, w]]

        case .concat(let axisIn):
            guard bottoms.count >= 1 else {
                throw GraphError.wrongBottomCount(layer: name, type: type, expected: "≥ 1", actual: 0)
            }
            let rank = bottoms[0].count
            let axis = axisIn < 0 ? axisIn + rank : axisIn
            guard (0..<rank).contains(axis) else { throw invalid("concat axis \(axisIn) out of range for rank \(rank)") }
            var out = bottoms[0]
            for b in bottoms.dropFirst() {
                guard b.count == rank, (0..<rank).allSatisfy({ $0 == axis || b[$0] == out[$0] }) else {
                    throw GraphError.shapeMismatch(layer: name, message: "cannot concatenate \(bottoms.map(describeShape).joined(separator: " and ")) along axis \(axis)")
                }
                out[axis] += b[axis]
            }
            return [out]

        case .eltwise(let p):
            guard bottoms.count >= 2 else {
                throw GraphError.wrongBottomCount(layer: name, type: type, expected: "≥ 2", actual: bottoms.count)
            }
            guard bottoms.allSatisfy({ $0 == bottoms[0] }) else {
                throw GraphError.shapeMismatch(layer: name, message: "Eltwise bottoms differ in shape: \(bottoms.map(describeShape).joined(separator: ", "))")
            }
            if !p.coefficients.isEmpty {
                guard p.operation == .sum, p.coefficients.count == bottoms.count else {
                    throw invalid("Eltwise needs one coefficient per bottom (\(bottoms.count)), and only for SUM; got \(p.coefficients.count)")
                }
            }
            return [bottoms[0]]

        case .softmax(let axisIn):
            try requireBottoms(1)
            let axis = axisIn < 0 ? axisIn + bottoms[0].count : axisIn
            guard (0..<bottoms[0].count).contains(axis) else { throw invalid("softmax axis \(axisIn) out of range for \(describeShape(bottoms[0]))") }
            return [bottoms[0]]

        case .flatten(let axisIn, let endIn):
            try requireBottoms(1)
            let x = bottoms[0]
            let axis = axisIn < 0 ? axisIn + x.count : axisIn
            let end = endIn < 0 ? endIn + x.count : endIn
            guard 0 <= axis, axis <= end, end < x.count else {
                throw invalid("flatten axes \(axisIn)…\(endIn) out of range for \(describeShape(x))")
            }
            return [Array(x[..<axis]) + [x[axis...end].reduce(1, *)] + Array(x[(end + 1)...])]

        case .reshape(let spec):
            try requireBottoms(1)
            let x = bottoms[0]
            var out: [Int] = []
            var inferred: Int?
            for (i, d) in spec.enumerated() {
                switch d {
                case 0:
                    guard i < x.count else { throw invalid("reshape dim \(i) is 0 (copy) but the bottom \(describeShape(x)) has no axis \(i)") }
                    out.append(x[i])
                case -1:
                    guard inferred == nil else { throw invalid("reshape has more than one -1") }
                    inferred = i
                    out.append(1)
                case let d where d > 0: out.append(d)
                default: throw invalid("reshape dim \(d) is invalid")
                }
            }
            let total = x.reduce(1, *)
            guard let known = Tensor.checkedCount(of: out), known <= maxElements else {
                throw GraphError.tooLarge(what: "layer '\(name)': reshape target", shape: out, limit: maxElements)
            }
            if let i = inferred {
                guard known > 0, total % known == 0 else {
                    throw GraphError.shapeMismatch(layer: name, message: "cannot reshape \(describeShape(x)) to \(spec)")
                }
                out[i] = total / known
            }
            guard out.reduce(1, *) == total else {
                throw GraphError.shapeMismatch(layer: name, message: "cannot reshape \(describeShape(x)) (\(total) elements) to \(describeShape(out))")
            }
            return [out]
        }
    }
}

extension LayerKind {
    /// The settings of this layer that enter shape arithmetic, with names for errors; each
    /// must be at most ``ShapeInference/maxHyperparameter``.
    var hyperparameters: [(String, Int)] {
        switch self {
        case .convolution(let p), .deconvolution(let p):
            [("num_output", p.numOutput), ("kernel height", p.kernel.h), ("kernel width", p.kernel.w),
             ("stride height", p.stride.h), ("stride width", p.stride.w), ("pad height", p.pad.h), ("pad width", p.pad.w),
             ("dilation height", p.dilation.h), ("dilation width", p.dilation.w), ("group", p.groups)]
        case .innerProduct(let p): [("num_output", p.numOutput)]
        case .pooling(let p):
            [("kernel height", p.kernel.h), ("kernel width", p.kernel.w), ("stride height", p.stride.h),
             ("stride width", p.stride.w), ("pad height", p.pad.h), ("pad width", p.pad.w)]
        case .lrn(let p): [("local_size", p.localSize)]
        default: []
        }
    }
}
