import Testing
import MagicInitCore
@testable import MagicInitFormats

@Suite struct PrototxtTests {
    /// What all-layers.prototxt should become (TEST phase).
    static let expectedAllLayers: Network = {
        func conv(_ n: Int, _ k: Size2, pad: Size2 = Size2(0), dilation: Size2 = Size2(1), stride: Size2 = Size2(1),
                  groups: Int = 1, bias: Bool = true) -> ConvolutionParameters {
            ConvolutionParameters(numOutput: n, kernel: k, stride: stride, pad: pad, dilation: dilation, groups: groups, biasTerm: bias)
        }
        let layers: [Layer] = [
            Layer(name: "conv1", kind: .convolution(conv(8, Size2(3, 5), pad: Size2(1, 2))), bottoms: ["data"], tops: ["conv1"]),
            Layer(name: "relu1", kind: .relu(negativeSlope: 0.1), bottoms: ["conv1"], tops: ["conv1"]),
            Layer(name: "pool1", kind: .pooling(PoolingParameters(method: .max, kernel: Size2(3), stride: Size2(2))),
                  bottoms: ["conv1"], tops: ["pool1"]),
            Layer(name: "norm1", kind: .lrn(LRNParameters(localSize: 3, alpha: 0.0001, beta: 0.75, k: 1)), bottoms: ["pool1"], tops: ["norm1"]),
            Layer(name: "conv2", kind: .convolution(conv(8, Size2(3), pad: Size2(2), dilation: Size2(2), groups: 2, bias: false)),
                  bottoms: ["norm1"], tops: ["conv2"]),
            Layer(name: "bn2", kind: .batchNorm(eps: 0.001), bottoms: ["conv2"], tops: ["conv2"]),
            Layer(name: "scale2", kind: .scale(bias: true), bottoms: ["conv2"], tops: ["conv2"]),
            Layer(name: "sig", kind: .sigmoid, bottoms: ["conv2"], tops: ["sig"]),
            Layer(name: "tanh", kind: .tanh, bottoms: ["conv2"], tops: ["tanh"]),
            Layer(name: "diff", kind: .eltwise(EltwiseParameters(operation: .sum, coefficients: [1, -1])), bottoms: ["sig", "tanh"], tops: ["diff"]),
            Layer(name: "emax", kind: .eltwise(EltwiseParameters(operation: .max)), bottoms: ["diff", "aux"], tops: ["emax"]),
            Layer(name: "eprod", kind: .eltwise(EltwiseParameters(operation: .product)), bottoms: ["emax", "aux"], tops: ["eprod"]),
            Layer(name: "cat", kind: .concat(axis: 1), bottoms: ["eprod", "diff"], tops: ["cat"]),
            Layer(name: "pool2", kind: .pooling(PoolingParameters(method: .average, kernel: Size2(2), stride: Size2(2), roundMode: .floor)),
                  bottoms: ["cat"], tops: ["pool2"]),
            Layer(name: "deconv", kind: .deconvolution(conv(4, Size2(2), stride: Size2(2))), bottoms: ["pool2"], tops: ["deconv"]),
            Layer(name: "pool3", kind: .pooling(PoolingParameters(method: .average, global: true)), bottoms: ["deconv"], tops: ["pool3"]),
            Layer(name: "flat", kind: .flatten(axis: 1, endAxis: -1), bottoms: ["pool3"], tops: ["flat"]),
            Layer(name: "ip1", kind: .innerProduct(InnerProductParameters(numOutput: 10)), bottoms: ["flat"], tops: ["ip1"]),
            Layer(name: "drop1", kind: .dropout(ratio: 0.3), bottoms: ["ip1"], tops: ["ip1"]),
            Layer(name: "reshape", kind: .reshape(shape: [0, 2, 5]), bottoms: ["ip1"], tops: ["pairs"]),
            Layer(name: "prob", kind: .softmax(axis: 2), bottoms: ["pairs"], tops: ["prob"]),
        ]
        return Network(name: "AllLayers", inputs: [.init(name: "data", shape: [3, 32, 32]), .init(name: "aux", shape: [8, 16, 16])],
                       layers: layers)
    }()

    @Test func test_allLayers_parsesIntoExpectedNetwork_andCompiles() throws {
        let net = try Caffe.readPrototxt(path: Fixture.path("all-layers.prototxt"))
        #expect(net.network.inputs == Self.expectedAllLayers.inputs)
        #expect(net.network.layers.count == Self.expectedAllLayers.layers.count)
        for (got, want) in zip(net.network.layers, Self.expectedAllLayers.layers) {
            #expect(got == want, "layer \(want.name)")
        }
        #expect(net.network == Self.expectedAllLayers)

        let graph = try Graph(net.network, batchSize: 2)
        #expect(graph.outputs.map { graph.blobs[$0].label } == ["prob"])
        #expect(graph.blobs[graph.outputs[0]].shape == [2, 2, 5])
        #expect(graph.blobs[try #require(graph.blob(named: "pool1"))].shape == [2, 8, 16, 16])
        #expect(graph.blobs[try #require(graph.blob(named: "deconv"))].shape == [2, 4, 16, 16])
        // In place: conv1 has a second version after relu1; conv2 three more after bn2, scale2.
        #expect(graph.blobs.filter { $0.name == "conv1" }.count == 2)
        #expect(graph.blobs.filter { $0.name == "conv2" }.count == 3)
        #expect(graph.nodes.filter { $0.kind.isAffine }.count == 4)
    }

    @Test func test_allLayers_dataLayerGivesPreprocessing_andNotesSkips() throws {
        let net = try Caffe.readPrototxt(path: Fixture.path("all-layers.prototxt"))
        let p = try #require(net.preprocessing)
        #expect(p == CaffePreprocessing(layer: "data", cropSize: 32, meanValues: [104, 117, 123], scale: 0.017,
                                        mirror: false, channels: 3, source: "val_lmdb"))
        let notes = net.notes.joined(separator: "\n")
        #expect(notes.contains("'data' (Data, not in the TEST phase)"))
        #expect(notes.contains("'loss' (SoftmaxWithLoss)"))
        #expect(notes.contains("'accuracy' (Accuracy)"))
        #expect(notes.contains("layer.param ×2"))
        #expect(notes.contains("layer.convolution_param.weight_filler"))
        #expect(notes.contains("layer.relu_param.engine"))
        #expect(notes.contains("label top 'label' dropped"))
    }

    @Test func test_legacyInputDim_form() throws {
        let text = """
        name: "t"
        input: "data"
        input_dim: 10
        input_dim: 3
        input_dim: 8
        input_dim: 6
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
        """
        let net = try Caffe.parsePrototxt(text)
        #expect(net.network.inputs == [.init(name: "data", shape: [3, 8, 6])])
        #expect(net.preprocessing == nil)
    }

    @Test func test_inputShape_form_withTwoInputs() throws {
        let text = """
        input: "a"
        input_shape { dim: 1 dim: 3 dim: 4 dim: 4 }
        input: "b"
        input_shape { dim: 1 dim: 3 dim: 4 dim: 4 }
        layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" }
        """
        let net = try Caffe.parsePrototxt(text)
        #expect(net.network.inputs == [.init(name: "a", shape: [3, 4, 4]), .init(name: "b", shape: [3, 4, 4])])
        let graph = try Graph(net.network)
        #expect(graph.blobs[graph.outputs[0]].shape == [1, 3, 4, 4])
    }

    @Test func test_inputLayer_form() throws {
        let text = """
        layer { name: "input" type: "Input" top: "data" input_param { shape: { dim: 1 dim: 1 dim: 28 dim: 28 } } }
        layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2 kernel_size: [3, 5] } }
        """
        let net = try Caffe.parsePrototxt(text)
        #expect(net.network.inputs == [.init(name: "data", shape: [1, 28, 28])])
        guard case .convolution(let p) = net.network.layers[0].kind else { Issue.record("not a convolution"); return }
        #expect(p.kernel == Size2(3, 5))
    }

    @Test func test_imageDataLayer_usesCropOrResize() throws {
        let text = """
        layer { name: "img" type: "ImageData" top: "data" top: "label"
                image_data_param { source: "list.txt" new_height: 40 new_width: 30 is_color: false } }
        """
        let net = try Caffe.parsePrototxt(text)
        #expect(net.network.inputs == [.init(name: "data", shape: [1, 40, 30])])
        #expect(net.preprocessing?.resize == Size2(40, 30))
        #expect(net.preprocessing?.channels == 1)
    }

    @Test func test_v1Prototxt_isUpgraded() throws {
        let net = try Caffe.readPrototxt(path: Fixture.path("legacy-v1.prototxt"))
        #expect(net.network.layers.map(\.kind.caffeType) == ["Convolution", "ReLU", "InnerProduct", "Softmax"])
        #expect(net.notes.contains { $0.contains("V1") })
        #expect(net.notes.contains { $0.contains("layers.blobs_lr ×2") })
        let graph = try Graph(net.network)
        #expect(graph.parameters.map(\.shape) == [[4, 3, 3, 3], [4], [5, 36], [5]])
    }

    @Test func test_squeezeNet_realFile_compiles() throws {
        let net = try Caffe.readPrototxt(path: Fixture.path("squeezenet-v1.0-deploy.prototxt"))
        #expect(net.network.inputs == [.init(name: "data", shape: [3, 416, 416])])
        let graph = try Graph(net.network)
        #expect(graph.nodes.filter { $0.kind.isAffine }.count == 26)
        #expect(graph.nodes.filter { $0.kind == .concat(axis: 1) }.count == 8)
        // SqueezeNet v1.0: 1,248,424 parameters (Iandola et al. 2016, Table 1 counts 1.25 M).
        #expect(graph.parameters.reduce(0) { $0 + $1.count } == 1_248_424)
        #expect(graph.outputs.map { graph.blobs[$0].shape } == [[1, 1000, 1, 1]])
        // In-place ReLU (leaky, slope 0.01) after every convolution.
        #expect(graph.nodes.filter { $0.kind == .relu(negativeSlope: 0.01) }.count == 26)
        #expect(net.notes.contains { $0.contains("weight_filler") })
    }

    @Test func test_prototxtWriter_roundTrips() throws {
        let text = Caffe.prototxt(for: Self.expectedAllLayers)
        let back = try Caffe.parsePrototxt(text)
        #expect(back.network == Self.expectedAllLayers)
        for name in BuiltinNetworks.names {
            let network = try #require(BuiltinNetworks.network(named: name))
            #expect(try Caffe.parsePrototxt(Caffe.prototxt(for: network)).network == network, "\(name)")
        }
    }
}
