import Foundation
import Testing
import MagicInitCore
@testable import MagicInitFormats

@Suite struct CaffemodelTests {
    @Test func test_writeThenRead_isLossless_forNetworkAndWeights() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.cleanup() }
        let network = PrototxtTests.expectedAllLayers
        let graph = try Graph(network)
        let parameters = distinctParameters(for: graph)
        let path = scratch.file("all-layers.caffemodel")
        try Caffe.writeCaffemodel(parameters, graph: graph, to: path)

        let weights = try Caffe.readWeights(path: path, for: graph)
        #expect(weights.parameters == parameters)
        #expect(weights.missingLayers.isEmpty && weights.unusedLayers.isEmpty)
        // The caffemodel carries the definition too.
        #expect(try Caffe.readNetwork(caffemodel: path).network == network)
        // No temporary file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == ["all-layers.caffemodel"])
    }

    @Test func test_writtenBlobs_haveCaffeOrderAndShapes() throws {
        let graph = try Graph(PrototxtTests.expectedAllLayers)
        let parameters = distinctParameters(for: graph)
        let net = try Caffe_NetParameter(serializedBytes: Caffe.caffemodel(parameters, graph: graph))
        let bn = try #require(net.layer.first { $0.name == "bn2" })
        #expect(bn.type == "BatchNorm")
        #expect(bn.blobs.map { $0.shape.dim } == [[8], [8], [1]])
        #expect(bn.blobs[1].data == parameters["bn2.running_var"]!.data)
        let conv = try #require(net.layer.first { $0.name == "conv1" })
        #expect(conv.bottom == ["data"] && conv.top == ["conv1"])
        #expect(conv.blobs.map { $0.shape.dim } == [[8, 3, 3, 5], [8]])
        #expect(net.input == ["data", "aux"])
        #expect(net.inputShape.map(\.dim) == [[1, 3, 32, 32], [1, 8, 16, 16]])
        #expect(net.layer.first { $0.name == "relu1" }?.blobs.isEmpty == true)
    }

    @Test func test_legacyV1Caffemodel_with4DBlobs_isRead() throws {
        let net = try Caffe.readPrototxt(path: Fixture.path("legacy-v1.prototxt"))
        let graph = try Graph(net.network)
        let weights = try Caffe.readWeights(path: Fixture.path("legacy-v1.caffemodel"), for: graph)
        #expect(weights.missingLayers.isEmpty)
        #expect(maxDifference(try #require(weights.parameters["conv1.weight"]), ramp([4, 3, 3, 3], -0.2)) == 0)
        #expect(maxDifference(try #require(weights.parameters["conv1.bias"]), ramp([4], 0.1)) == 0)
        // InnerProduct weights stored (1, 1, O, I), bias (1, 1, 1, O).
        #expect(maxDifference(try #require(weights.parameters["fc2.weight"]), ramp([5, 36], 0)) == 0)
        #expect(maxDifference(try #require(weights.parameters["fc2.bias"]), ramp([5], -0.5)) == 0)
    }

    @Test func test_blobShapeMismatch_namesFileLayerAndShapes() throws {
        // The legacy file's conv1 has 4 outputs; ask for 6.
        var network = try Caffe.readPrototxt(path: Fixture.path("legacy-v1.prototxt")).network
        network.layers[0].kind = .convolution(ConvolutionParameters(numOutput: 6, kernel: Size2(3), stride: Size2(2)))
        let graph = try Graph(network)
        let path = Fixture.path("legacy-v1.caffemodel")
        let error = thrownError(CaffeError.self) { _ = try Caffe.readWeights(path: path, for: graph) }
        #expect(error == .blobShapeMismatch(file: path, layer: "conv1", blob: 0, expected: [6, 3, 3, 3], actual: [4, 3, 3, 3]))
        #expect(error?.description.contains("conv1") == true && error?.description.contains("(6, 3, 3, 3)") == true)
    }

    @Test func test_blobCountMismatch_namesLayer() throws {
        var network = try Caffe.readPrototxt(path: Fixture.path("legacy-v1.prototxt")).network
        network.layers[2].kind = .innerProduct(InnerProductParameters(numOutput: 5, biasTerm: false))
        let path = Fixture.path("legacy-v1.caffemodel")
        let error = thrownError(CaffeError.self) { _ = try Caffe.readWeights(path: path, for: try Graph(network)) }
        #expect(error == .blobCountMismatch(file: path, layer: "fc2", expected: 1, actual: 2))
    }

    @Test func test_missingAndUnusedLayers_areReported() throws {
        var network = try Caffe.readPrototxt(path: Fixture.path("legacy-v1.prototxt")).network
        network.layers[2].name = "fc_new"
        let weights = try Caffe.readWeights(path: Fixture.path("legacy-v1.caffemodel"), for: try Graph(network))
        #expect(weights.missingLayers == ["fc_new"])
        #expect(weights.unusedLayers == ["fc2"])
        #expect(Set(weights.parameters.keys) == ["conv1.weight", "conv1.bias"])
    }

    @Test func test_writingWithMissingParameter_isErrorNamingKey() throws {
        let graph = try Graph(BuiltinNetworks.small())
        var parameters = distinctParameters(for: graph)
        parameters["fc5.bias"] = nil
        let error = thrownError(CaffeError.self) { _ = try Caffe.caffemodel(parameters, graph: graph, file: "out.caffemodel") }
        #expect(error == .missingParameter(file: "out.caffemodel", key: "fc5.bias"))
    }

    @Test func test_malformedCaffemodel_isError() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.cleanup() }
        let path = scratch.file("bad.caffemodel")
        try Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).write(to: URL(fileURLWithPath: path))
        let error = thrownError(CaffeError.self) { _ = try Caffe.readWeights(path: path, for: try Graph(BuiltinNetworks.small())) }
        guard case .malformedBinary(let file, _)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(file == path)
    }
}
