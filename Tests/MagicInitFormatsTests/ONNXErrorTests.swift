import Foundation
import Testing
import MagicInitCore
@testable import MagicInitFormats

/// Models built in the test with the generated protobuf types.
@Suite struct ONNXErrorTests {
    static func tensor(_ name: String, _ dims: [Int], _ values: [Float]? = nil) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims.map { Int64($0) }
        t.dataType = 1
        t.floatData = values ?? [Float](repeating: 0.5, count: dims.reduce(1, *))
        return t
    }

    static func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String,
                     ints: [String: [Int]] = [:], int: [String: Int] = [:]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.input = inputs
        n.output = outputs
        n.name = name
        for (k, v) in ints.sorted(by: { $0.key < $1.key }) {
            var a = Onnx_AttributeProto()
            a.name = k
            a.type = .ints
            a.ints = v.map { Int64($0) }
            n.attribute.append(a)
        }
        for (k, v) in int.sorted(by: { $0.key < $1.key }) {
            var a = Onnx_AttributeProto()
            a.name = k
            a.type = .int
            a.i = Int64(v)
            n.attribute.append(a)
        }
        return n
    }

    /// A model reading `x` `(1, 3, 8, 8)`.
    static func model(_ nodes: [Onnx_NodeProto], _ initializers: [Onnx_TensorProto] = [], inputDims: [Int64] = [1, 3, 8, 8]) throws -> Data {
        var m = Onnx_ModelProto()
        m.irVersion = 8
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 13
        m.opsetImport = [opset]
        var input = Onnx_ValueInfoProto()
        input.name = "x"
        input.type.tensorType.elemType = 1
        input.type.tensorType.shape.dim = inputDims.map { v in
            var d = Onnx_TensorShapeProto.Dimension()
            if v > 0 { d.dimValue = v } else { d.dimParam = "N" }
            return d
        }
        m.graph.input = [input]
        m.graph.node = nodes
        m.graph.initializer = initializers
        var output = Onnx_ValueInfoProto()
        output.name = nodes.last?.output.first ?? "x"
        m.graph.output = [output]
        return try m.serializedBytes()
    }

    func importError(_ data: Data, options: ONNXImportOptions = ONNXImportOptions(),
                     sourceLocation: SourceLocation = #_sourceLocation) -> ONNXError? {
        let error = thrownError(ONNXError.self) { _ = try ONNXModel(serializedData: data, file: "m.onnx", options: options) }
        if error == nil { Issue.record("expected an ONNXError", sourceLocation: sourceLocation) }
        return error
    }

    @Test func test_unsupportedOperators_allListedWithNodes_andSupportedOps() throws {
        let data = try Self.model([
            Self.node("HardSigmoid", ["x"], ["h"], name: "hs1"),
            Self.node("Clip", ["h"], ["c1"], name: "clip1"),
            Self.node("Clip", ["c1"], ["c2"], name: ""),
            Self.node("FusedConv", ["c2"], ["f"], name: "fc").withDomain("com.microsoft"),
        ])
        let error = try #require(importError(data))
        guard case .unsupportedOperators(let file, let ops, let supported) = error else { Issue.record("got \(error)"); return }
        #expect(file == "m.onnx")
        #expect(ops == [.init(opType: "HardSigmoid", nodes: ["hs1"]), .init(opType: "Clip", nodes: ["clip1", "Clip #2"]),
                        .init(opType: "com.microsoft.FusedConv", nodes: ["fc"])])
        #expect(supported == ONNXModel.supportedOperators)
        #expect(error.description.contains("Clip (nodes 'clip1', 'Clip #2')") && error.description.contains("BatchNormalization"))
    }

    @Test func test_asymmetricConvPadding_isUnsupportedUse() throws {
        let data = try Self.model([Self.node("Conv", ["x", "w"], ["y"], name: "conv", ints: ["pads": [0, 0, 1, 1]])],
                                  [Self.tensor("w", [2, 3, 3, 3])])
        let error = try #require(importError(data))
        guard case .unsupportedUse(_, "conv", "Conv", let message) = error else { Issue.record("got \(error)"); return }
        #expect(message.contains("asymmetric"))
    }

    @Test func test_averagePoolExcludingPadding_isRejected_butWithoutPaddingAccepted() throws {
        let padded = try Self.model([Self.node("AveragePool", ["x"], ["y"], name: "pool",
                                               ints: ["kernel_shape": [3, 3], "pads": [1, 1, 1, 1]])])
        let error = try #require(importError(padded))
        guard case .unsupportedUse(_, "pool", "AveragePool", let message) = error else { Issue.record("got \(error)"); return }
        #expect(message.contains("count_include_pad=0"))

        let unpadded = try Self.model([Self.node("AveragePool", ["x"], ["y"], name: "pool", ints: ["kernel_shape": [2, 2], "strides": [2, 2]])])
        let model = try ONNXModel(serializedData: unpadded)
        #expect(model.network.layers[0].kind == .pooling(PoolingParameters(method: .average, kernel: Size2(2), stride: Size2(2), roundMode: .floor)))

        let included = try Self.model([Self.node("AveragePool", ["x"], ["y"], name: "pool",
                                                 ints: ["kernel_shape": [3, 3], "pads": [1, 1, 1, 1]], int: ["count_include_pad": 1])])
        #expect(try ONNXModel(serializedData: included).network.layers.count == 1)
    }

    @Test func test_computedWeights_areNotConstant() throws {
        let data = try Self.model([Self.node("Relu", ["x"], ["r"], name: "relu"),
                                   Self.node("Conv", ["x", "r"], ["y"], name: "conv")])
        let error = try #require(importError(data))
        #expect(error == .notConstant(file: "m.onnx", node: "conv", opType: "Conv", input: "r"))
    }

    @Test func test_constantAddWithoutAffineProducer_isUnsupportedUse() throws {
        let data = try Self.model([Self.node("Relu", ["x"], ["r"], name: "relu"), Self.node("Add", ["r", "b"], ["y"], name: "add")],
                                  [Self.tensor("b", [1, 3, 1, 1])])
        let error = try #require(importError(data))
        guard case .unsupportedUse(_, "add", "Add", let message) = error else { Issue.record("got \(error)"); return }
        #expect(message.contains("bias"))
    }

    @Test func test_broadcastingAdd_isUnsupportedUse() throws {
        let data = try Self.model([Self.node("GlobalAveragePool", ["x"], ["g"], name: "gap"), Self.node("Add", ["x", "g"], ["y"], name: "add")])
        let error = try #require(importError(data))
        guard case .unsupportedUse(_, "add", "Add", let message) = error else { Issue.record("got \(error)"); return }
        #expect(message.contains("broadcasting"))
    }

    @Test func test_unknownInputExtent_needsOption() throws {
        let data = try Self.model([Self.node("Relu", ["x"], ["y"], name: "relu")], inputDims: [0, 3, 0, 0])
        let error = try #require(importError(data))
        guard case .missingInputShape(_, "x", let message) = error else { Issue.record("got \(error)"); return }
        #expect(message.contains("(?, 3, ?, ?)"))
        let model = try ONNXModel(serializedData: data, options: ONNXImportOptions(inputShapes: ["x": [3, 4, 5]]))
        #expect(model.network.inputs == [.init(name: "x", shape: [3, 4, 5])])
    }

    @Test func test_externalData_isUnsupportedTensor() throws {
        var w = Self.tensor("w", [2, 3, 1, 1], [])
        w.dataLocation = .external
        let data = try Self.model([Self.node("Conv", ["x", "w"], ["y"], name: "conv")], [w])
        let error = try #require(importError(data))
        guard case .unsupportedTensor(_, "w", let message) = error else { Issue.record("got \(error)"); return }
        #expect(message.contains("external"))
    }

    @Test func test_garbage_isMalformed() {
        let error = thrownError(ONNXError.self) { _ = try ONNXModel(serializedData: Data([0x0A, 0xFF, 0x01]), file: "bad.onnx") }
        guard case .malformed("bad.onnx", _)? = error else { Issue.record("got \(String(describing: error))"); return }
    }

    @Test func test_writingWrongShape_isParameterShapeMismatch() throws {
        let data = try Self.model([Self.node("Conv", ["x", "w"], ["y"], name: "conv")], [Self.tensor("w", [2, 3, 1, 1])])
        let model = try ONNXModel(serializedData: data, file: "m.onnx")
        let error = thrownError(ONNXError.self) { _ = try model.serialized(with: ["conv.weight": Tensor(shape: [2, 3], repeating: 0)]) }
        #expect(error == .parameterShapeMismatch(file: "m.onnx", key: "conv.weight", expected: [2, 3, 1, 1], actual: [2, 3]))
    }

    @Test func test_sharedWeight_conflictingValues_isError() throws {
        let data = try Self.model([Self.node("Conv", ["x", "w"], ["a"], name: "c1"), Self.node("Conv", ["x", "w"], ["b"], name: "c2"),
                                   Self.node("Add", ["a", "b"], ["y"], name: "sum")],
                                  [Self.tensor("w", [3, 3, 1, 1])])
        let model = try ONNXModel(serializedData: data, file: "m.onnx")
        #expect(model.tensorNames == ["c1.weight": "w", "c2.weight": "w"])
        var p = model.parameters
        p["c2.weight"] = Tensor(shape: [3, 3, 1, 1], repeating: 2)
        let error = thrownError(ONNXError.self) { _ = try model.serialized(with: p) }
        #expect(error == .conflictingSharedTensor(file: "m.onnx", tensor: "w", keys: ["c1.weight", "c2.weight"]))
    }
}

extension Onnx_NodeProto {
    func withDomain(_ domain: String) -> Onnx_NodeProto {
        var n = self
        n.domain = domain
        return n
    }
}
