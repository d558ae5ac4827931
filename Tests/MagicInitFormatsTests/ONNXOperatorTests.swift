import Foundation
import Testing
import MagicInitCore
@testable import MagicInitFormats

/// Operator forms the fixtures do not cover, on models built in the test.
@Suite struct ONNXOperatorTests {
    typealias M = ONNXErrorTests

    @Test func test_linearAsTransposeThenMatMul_bindsTheStoredOIWeight() throws {
        // PyTorch's newer exporter: y = x · Wᵀ + b with W stored (O, I) = (4, 6).
        let w = M.tensor("fc.weight", [4, 6], (0..<24).map { Float($0) })
        let b = M.tensor("fc.bias", [4], [1, 2, 3, 4])
        let data = try M.model([
            M.node("Flatten", ["x"], ["f"], name: "flatten"),
            M.node("Transpose", ["fc.weight"], ["wt"], name: "t", ints: ["perm": [1, 0]]),
            M.node("MatMul", ["f", "wt"], ["mm"], name: "mm"),
            M.node("Add", ["mm", "fc.bias"], ["y"], name: "add"),
        ], [w, b], inputDims: [1, 6, 1, 1])
        let model = try ONNXModel(serializedData: data)
        #expect(model.network.layers.last == Layer(name: "fc", kind: .innerProduct(InnerProductParameters(numOutput: 4)),
                                                  bottoms: ["f"], tops: ["y"]))
        #expect(model.parameters["fc.weight"] == Tensor(shape: [4, 6], data: (0..<24).map { Float($0) }))
        var p = model.parameters
        p["fc.weight"] = Tensor(shape: [4, 6], data: (0..<24).map { Float(-$0) })
        let dict = try ONNXModel(serializedData: model.serialized(with: p)).stateDict(p)
        #expect(dict["fc.weight"] == p["fc.weight"])
    }

    @Test func test_convTranspose_isDeconvolution() throws {
        let data = try M.model([M.node("ConvTranspose", ["x", "up.weight", "up.bias"], ["y"], name: "up",
                                       ints: ["strides": [2, 2], "kernel_shape": [2, 2]])],
                               [M.tensor("up.weight", [3, 5, 2, 2]), M.tensor("up.bias", [5])])
        let model = try ONNXModel(serializedData: data)
        #expect(model.network.layers[0].kind == .deconvolution(ConvolutionParameters(numOutput: 5, kernel: Size2(2), stride: Size2(2))))
        let graph = try Graph(model.network)
        #expect(graph.outputs.map { graph.blobs[$0].shape } == [[1, 5, 16, 16]])
    }

    @Test func test_softmaxBeforeOpset13_overSeveralAxes_isRejected() throws {
        var m = try Onnx_ModelProto(serializedBytes: M.model([M.node("Softmax", ["x"], ["y"], name: "sm")]))
        m.opsetImport[0].version = 11
        let error = thrownError(ONNXError.self) { _ = try ONNXModel(serializedData: m.serializedBytes(), file: "m.onnx") }
        guard case .unsupportedUse(_, "sm", "Softmax", let message)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(message.contains("opset 13"))
    }

    @Test func test_flattenOtherThanAxis1_isRejected() throws {
        let data = try M.model([M.node("Flatten", ["x"], ["y"], name: "fl", int: ["axis": 2])])
        let error = thrownError(ONNXError.self) { _ = try ONNXModel(serializedData: data) }
        guard case .unsupportedUse(_, "fl", "Flatten", _)? = error else { Issue.record("got \(String(describing: error))"); return }
    }

    @Test func test_usedSecondOutput_isRejected() throws {
        let data = try M.model([M.node("Dropout", ["x"], ["y", "mask"], name: "drop"), M.node("Mul", ["y", "mask"], ["z"], name: "m")])
        let error = thrownError(ONNXError.self) { _ = try ONNXModel(serializedData: data) }
        guard case .unsupportedUse(_, "drop", "Dropout", let message)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(message.contains("'mask'"))
    }

    @Test func test_caffePrototxtWriter_writesOneValuePerLine() throws {
        let text = Caffe.prototxt(for: BuiltinNetworks.small())
        #expect(!text.contains("["))
        #expect(text.contains("  dim: 1\n  dim: 3\n  dim: 32\n  dim: 32\n"))
    }
}
