import Foundation
import Testing
import MagicInitCore
@testable import MagicInitFormats

/// The models written by scripts/make-format-fixtures.
@Suite struct ONNXFixtureTests {
    @Test func test_tinyConvGemm_translatesEveryNode() throws {
        let model = try ONNXModel(path: Fixture.path("tiny-conv-gemm.onnx"))
        let n = model.network
        #expect(n.inputs == [.init(name: "input", shape: [3, 8, 8])])
        #expect(n.layers.map(\.name) == [
            "features.0", "/features/features.1/Relu", "/features/features.2/MaxPool", "features.3",
            "/features/features.4/LeakyRelu", "/features/features.5/AveragePool", "/avgpool/GlobalAveragePool",
            "/Flatten", "classifier.0", "/classifier/classifier.1/Relu", "/classifier/classifier.2/Dropout",
            "classifier.3", "/Softmax",
        ])
        #expect(n.layers[0].kind == .convolution(ConvolutionParameters(numOutput: 4, kernel: Size2(3), pad: Size2(1))))
        #expect(n.layers[2].kind == .pooling(PoolingParameters(method: .max, kernel: Size2(2), stride: Size2(2), roundMode: .floor)))
        #expect(n.layers[3].kind == .convolution(ConvolutionParameters(numOutput: 6, kernel: Size2(3), pad: Size2(1), groups: 2, biasTerm: false)))
        #expect(n.layers[4].kind == .relu(negativeSlope: 0.2))
        #expect(n.layers[5].kind == .pooling(PoolingParameters(method: .average, kernel: Size2(3), stride: Size2(2), pad: Size2(1), roundMode: .ceil)))
        #expect(n.layers[6].kind == .pooling(PoolingParameters(method: .average, global: true)))
        #expect(n.layers[7].kind == .flatten(axis: 1, endAxis: -1))
        #expect(n.layers[8].kind == .innerProduct(InnerProductParameters(numOutput: 7)))
        #expect(n.layers[10].kind == .dropout(ratio: 0.5))
        #expect(n.layers[12].kind == .softmax(axis: 1))

        let graph = try Graph(n, batchSize: 3)
        #expect(graph.outputs.map { graph.blobs[$0].shape } == [[3, 5]])
        #expect(graph.blobs[try #require(graph.blob(named: "p2"))].shape == [3, 6, 3, 3])
        #expect(graph.nodes.filter { $0.kind.isAffine }.count == 4)
    }

    @Test func test_tinyConvGemm_keysArePyTorchNames_andValuesMatchFile() throws {
        let model = try ONNXModel(path: Fixture.path("tiny-conv-gemm.onnx"))
        let keys = ["features.0.weight", "features.0.bias", "features.3.weight", "classifier.0.weight",
                    "classifier.0.bias", "classifier.3.weight", "classifier.3.bias"]
        #expect(Set(model.parameters.keys) == Set(keys))
        #expect(model.tensorNames == Dictionary(uniqueKeysWithValues: keys.map { ($0, $0) }))
        let p = model.parameters
        #expect(maxDifference(p["features.0.weight"]!, ramp([4, 3, 3, 3], -0.1)) == 0)
        #expect(maxDifference(p["features.0.bias"]!, ramp([4], 0.5)) == 0)  // stored as float_data
        #expect(maxDifference(p["classifier.0.weight"]!, ramp([7, 6], 0.3)) == 0)  // transB=1: (O, I) as stored
        // transB=0: stored (I, O) = (7, 5); the IR weight is (O, I) = (5, 7), W[o][i] = stored[i][o].
        let w = try #require(p["classifier.3.weight"])
        #expect(w.shape == [5, 7])
        let expected = Tensor(shape: [5, 7], data: (0..<35).map { k in Float((k % 7) * 5 + k / 7) / 100 + 0.1 })
        #expect(maxDifference(w, expected) == 0)
    }

    @Test func test_tinyConvGemm_writeThenRead_isLossless_andLeavesTheRestUnchanged() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.cleanup() }
        let model = try ONNXModel(path: Fixture.path("tiny-conv-gemm.onnx"))
        let graph = try Graph(model.network)
        let updated = distinctParameters(for: graph, seed: 3)
        let path = scratch.file("out.onnx")
        try model.write(updated, to: path)

        let back = try ONNXModel(path: path)
        #expect(back.parameters == updated)
        #expect(back.network == model.network)
        #expect(back.tensorNames == model.tensorNames)

        // Apart from the tensor values, the file is the same message.
        var before = try Onnx_ModelProto(serializedBytes: Data(contentsOf: URL(fileURLWithPath: Fixture.path("tiny-conv-gemm.onnx"))))
        var after = try Onnx_ModelProto(serializedBytes: Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(after.graph.initializer.map(\.hasRawData) == before.graph.initializer.map(\.hasRawData))
        for i in before.graph.initializer.indices {
            before.graph.initializer[i].rawData = Data()
            before.graph.initializer[i].floatData = []
            after.graph.initializer[i].rawData = Data()
            after.graph.initializer[i].floatData = []
        }
        #expect(before == after)
        #expect(after.metadataProps.first?.value == "MagicInit test fixture")
    }

    @Test func test_unchangedParameters_reproduceTheFileExactly() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("tiny-conv-gemm.onnx")))
        let model = try ONNXModel(serializedData: bytes)
        #expect(try model.serialized(with: model.parameters) == bytes)
        #expect(try model.serialized(with: [:]) == bytes)
    }

    @Test func test_batchNormNet_mapsBatchNormToBatchNormPlusScale() throws {
        let model = try ONNXModel(path: Fixture.path("batchnorm-net.onnx"))
        let n = model.network
        #expect(n.layers.map(\.name) == [
            "conv1", "bn1", "bn1.affine", "relu1", "branch_a", "branch_b", "concat", "residual", "product",
            "norm", "sigmoid", "gain_mul", "tanh", "gmp", "flatten", "head",
        ])
        #expect(n.layers[1] == Layer(name: "bn1", kind: .batchNorm(eps: 1e-3), bottoms: ["c1"], tops: ["b1"]))
        #expect(n.layers[2] == Layer(name: "bn1.affine", kind: .scale(bias: true), bottoms: ["b1"], tops: ["b1"]))
        #expect(n.layers[5].kind == .convolution(ConvolutionParameters(numOutput: 2, kernel: Size2(3), pad: Size2(1))))  // SAME_UPPER
        #expect(n.layers[6].kind == .concat(axis: 1))
        #expect(n.layers[7].kind == .eltwise(EltwiseParameters(operation: .sum)))
        #expect(n.layers[8].kind == .eltwise(EltwiseParameters(operation: .product)))
        #expect(n.layers[9].kind == .lrn(LRNParameters(localSize: 3, alpha: 2e-4, beta: 0.75, k: 1.5)))
        // Mul by a (1, C, 1, 1) constant, then Add of a (C, 1, 1) constant: one Scale with bias.
        #expect(n.layers[11] == Layer(name: "gain_mul", kind: .scale(bias: true), bottoms: ["s"], tops: ["gs"]))
        #expect(n.layers[13].kind == .pooling(PoolingParameters(method: .max, global: true)))
        #expect(n.layers[14].kind == .reshape(shape: [0, -1]))
        // MatMul + Add: an inner product with bias.
        #expect(n.layers[15] == Layer(name: "head", kind: .innerProduct(InnerProductParameters(numOutput: 3)), bottoms: ["flat"], tops: ["out"]))
        #expect(model.notes.contains { $0.contains("leading 1") })

        #expect(model.tensorNames["bn1.running_mean"] == "bn1.running_mean")
        #expect(model.tensorNames["bn1.affine.weight"] == "bn1.weight")
        #expect(model.tensorNames["bn1.affine.bias"] == "bn1.bias")
        #expect(model.tensorNames["gain_mul.weight"] == "gain")
        #expect(model.tensorNames["gain_mul.bias"] == "shift")
        #expect(model.tensorNames["bn1.moving_average_factor"] == nil)
        #expect(model.parameters["bn1.moving_average_factor"] == Tensor(shape: [1], data: [1]))
        #expect(maxDifference(model.parameters["bn1.running_var"]!, ramp([4], 0.9)) == 0)
        #expect(maxDifference(model.parameters["gain_mul.weight"]!, ramp([4], 0.5)) == 0)
        // head.weight stored (I, O) = (4, 3).
        #expect(model.parameters["head.weight"]!.shape == [3, 4])
        #expect(model.parameters["head.weight"]!.data[1] == ramp([4, 3], 0).data[3])

        let graph = try Graph(n, batchSize: 2)
        #expect(graph.outputs.map { graph.blobs[$0].shape } == [[2, 3]])
        #expect(graph.nodes.filter { $0.kind.isAffine }.count == 4)
    }

    @Test func test_batchNormNet_roundTrip_foldsMovingAverageFactor() throws {
        let model = try ONNXModel(path: Fixture.path("batchnorm-net.onnx"))
        var updated = distinctParameters(for: try Graph(model.network), seed: 1)
        updated["bn1.moving_average_factor"] = Tensor(shape: [1], data: [1])
        let back = try ONNXModel(serializedData: model.serialized(with: updated))
        #expect(back.parameters == updated)

        updated["bn1.moving_average_factor"] = Tensor(shape: [1], data: [4])
        let folded = try ONNXModel(serializedData: model.serialized(with: updated))
        let mean = try #require(updated["bn1.running_mean"])
        #expect(maxDifference(folded.parameters["bn1.running_mean"]!, Tensor(shape: mean.shape, data: mean.data.map { $0 / 4 })) < 1e-7)
    }

    @Test func test_batchNormNet_stateDict_usesOnnxNamesAndLayouts() throws {
        let model = try ONNXModel(path: Fixture.path("batchnorm-net.onnx"))
        let dict = try model.stateDict(model.parameters)
        #expect(Set(dict.keys) == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                                   "branch_a.weight", "branch_a.bias", "branch_b.weight", "branch_b.bias",
                                   "gain", "shift", "head.weight", "head.bias"])
        #expect(dict["gain"]!.shape == [1, 4, 1, 1])
        #expect(dict["shift"]!.shape == [4, 1, 1])
        #expect(maxDifference(dict["head.weight"]!, ramp([4, 3], 0)) == 0)
    }

    @Test func test_nhwcConstants_absorbsTransposeAndBindsConstantNodes() throws {
        let model = try ONNXModel(path: Fixture.path("nhwc-constants.onnx"))
        let n = model.network
        #expect(model.opsetVersion == 11)
        #expect(n.inputs == [.init(name: "input_1", shape: [2, 5, 5])])
        #expect(model.inputPermutations == ["input_1": [0, 3, 1, 2]])
        #expect(n.layers.map(\.name) == ["conv/Conv2D", "conv/Tanh", "flatten/Reshape", "dense/MatMul", "dense/Softmax"])
        #expect(n.layers[0] == Layer(name: "conv/Conv2D",
                                     kind: .convolution(ConvolutionParameters(numOutput: 3, kernel: Size2(3), stride: Size2(2), pad: Size2(1))),
                                     bottoms: ["input_1"], tops: ["conv_biased"]))
        #expect(n.layers[2].kind == .reshape(shape: [-1, 27]))
        #expect(n.layers[3] == Layer(name: "dense/MatMul", kind: .innerProduct(InnerProductParameters(numOutput: 4)),
                                     bottoms: ["flat"], tops: ["logits"]))
        #expect(model.tensorNames == ["conv/Conv2D.weight": "conv/kernel", "conv/Conv2D.bias": "conv/bias",
                                      "dense/MatMul.weight": "dense/kernel", "dense/MatMul.bias": "dense/bias"])
        #expect(maxDifference(model.parameters["conv/Conv2D.bias"]!, ramp([3], 0.25)) == 0)
        let graph = try Graph(n, batchSize: 2)
        #expect(graph.outputs.map { graph.blobs[$0].label } == ["probs"])
        #expect(graph.blobs[graph.outputs[0]].shape == [2, 4])
    }

    @Test func test_nhwcConstants_writeThenRead_rewritesConstantNodes() throws {
        let model = try ONNXModel(path: Fixture.path("nhwc-constants.onnx"))
        let updated = distinctParameters(for: try Graph(model.network), seed: 7)
        let bytes = try model.serialized(with: updated)
        let back = try ONNXModel(serializedData: bytes)
        #expect(back.parameters == updated)
        let proto = try Onnx_ModelProto(serializedBytes: bytes)
        #expect(proto.graph.initializer.isEmpty)
        let bias = try #require(proto.graph.node.first { $0.output == ["conv/bias"] }?.attribute.first?.t)
        #expect(bias.dims == [3])
        #expect(try ONNXTensorData.floats(bias) == updated["conv/Conv2D.bias"]!.data)
    }
}
