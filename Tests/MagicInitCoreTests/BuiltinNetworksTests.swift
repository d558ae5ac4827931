import Testing
@testable import MagicInitCore

@Suite struct BuiltinNetworksTests {
    /// `(label, shape)` of every blob, in id order.
    func blobTable(_ graph: Graph) -> [String] {
        graph.blobs.map { "\($0.label) \(describeShape($0.shape))" }
    }

    @Test func test_caffeNet_parameterCount_matchesPublished() throws {
        let graph = try Graph(BuiltinNetworks.caffeNet())
        #expect(graph.parameters.reduce(0) { $0 + $1.count } == 60_965_224)
    }

    @Test func test_vgg16_parameterCount_matchesPublished() throws {
        let graph = try Graph(BuiltinNetworks.vgg16())
        #expect(graph.parameters.reduce(0) { $0 + $1.count } == 138_357_544)
    }

    @Test func test_caffeNet_everyBlobShape_matchesDeployPrototxt() throws {
        let graph = try Graph(BuiltinNetworks.caffeNet())
        let expected = [
            "data (1, 3, 227, 227)",
            "conv1 (1, 96, 55, 55)", "conv1@1 (1, 96, 55, 55)",
            "pool1 (1, 96, 27, 27)", "norm1 (1, 96, 27, 27)",
            "conv2 (1, 256, 27, 27)", "conv2@1 (1, 256, 27, 27)",
            "pool2 (1, 256, 13, 13)", "norm2 (1, 256, 13, 13)",
            "conv3 (1, 384, 13, 13)", "conv3@1 (1, 384, 13, 13)",
            "conv4 (1, 384, 13, 13)", "conv4@1 (1, 384, 13, 13)",
            "conv5 (1, 256, 13, 13)", "conv5@1 (1, 256, 13, 13)",
            "pool5 (1, 256, 6, 6)",
            "fc6 (1, 4096)", "fc6@1 (1, 4096)", "fc6@2 (1, 4096)",
            "fc7 (1, 4096)", "fc7@1 (1, 4096)", "fc7@2 (1, 4096)",
            "fc8 (1, 1000)", "prob (1, 1000)",
        ]
        #expect(blobTable(graph) == expected)
        #expect(graph.outputs.map { graph.blobs[$0].label } == ["prob"])
    }

    @Test func test_vgg16_everyBlobShape_halvesAtEachPool() throws {
        let graph = try Graph(BuiltinNetworks.vgg16())
        let expected = [
            "data (1, 3, 224, 224)",
            "conv1_1 (1, 64, 224, 224)", "conv1_1@1 (1, 64, 224, 224)",
            "conv1_2 (1, 64, 224, 224)", "conv1_2@1 (1, 64, 224, 224)",
            "pool1 (1, 64, 112, 112)",
            "conv2_1 (1, 128, 112, 112)", "conv2_1@1 (1, 128, 112, 112)",
            "conv2_2 (1, 128, 112, 112)", "conv2_2@1 (1, 128, 112, 112)",
            "pool2 (1, 128, 56, 56)",
            "conv3_1 (1, 256, 56, 56)", "conv3_1@1 (1, 256, 56, 56)",
            "conv3_2 (1, 256, 56, 56)", "conv3_2@1 (1, 256, 56, 56)",
            "conv3_3 (1, 256, 56, 56)", "conv3_3@1 (1, 256, 56, 56)",
            "pool3 (1, 256, 28, 28)",
            "conv4_1 (1, 512, 28, 28)", "conv4_1@1 (1, 512, 28, 28)",
            "conv4_2 (1, 512, 28, 28)", "conv4_2@1 (1, 512, 28, 28)",
            "conv4_3 (1, 512, 28, 28)", "conv4_3@1 (1, 512, 28, 28)",
            "pool4 (1, 512, 14, 14)",
            "conv5_1 (1, 512, 14, 14)", "conv5_1@1 (1, 512, 14, 14)",
            "conv5_2 (1, 512, 14, 14)", "conv5_2@1 (1, 512, 14, 14)",
            "conv5_3 (1, 512, 14, 14)", "conv5_3@1 (1, 512, 14, 14)",
            "pool5 (1, 512, 7, 7)",
            "fc6 (1, 4096)", "fc6@1 (1, 4096)", "fc6@2 (1, 4096)",
            "fc7 (1, 4096)", "fc7@1 (1, 4096)", "fc7@2 (1, 4096)",
            "fc8 (1, 1000)", "prob (1, 1000)",
        ]
        #expect(blobTable(graph) == expected)
    }

    @Test func test_caffeNet_parameterShapes_followCaffeBlobLayout() throws {
        let graph = try Graph(BuiltinNetworks.caffeNet())
        let shapes = Dictionary(uniqueKeysWithValues: graph.parameters.map { ($0.key, $0.shape) })
        #expect(shapes["conv1.weight"] == [96, 3, 11, 11])
        #expect(shapes["conv1.bias"] == [96])
        #expect(shapes["conv2.weight"] == [256, 48, 5, 5], "group 2 halves the input channels")
        #expect(shapes["conv4.weight"] == [384, 192, 3, 3])
        #expect(shapes["conv5.weight"] == [256, 192, 3, 3])
        #expect(shapes["fc6.weight"] == [4096, 9216], "256·6·6 inputs")
        #expect(shapes["fc8.bias"] == [1000])
        #expect(graph.parameters.count == 16, "weight and bias for 5 conv + 3 fc layers")
        #expect(graph.parameters.map(\.caffeBlobIndex).prefix(2) == [0, 1])
    }

    @Test func test_vgg16_parameterShapes_ofFirstAndFullyConnectedLayers() throws {
        let graph = try Graph(BuiltinNetworks.vgg16())
        let shapes = Dictionary(uniqueKeysWithValues: graph.parameters.map { ($0.key, $0.shape) })
        #expect(shapes["conv1_1.weight"] == [64, 3, 3, 3])
        #expect(shapes["conv5_3.weight"] == [512, 512, 3, 3])
        #expect(shapes["fc6.weight"] == [4096, 25088], "512·7·7 inputs")
        #expect(shapes["fc7.weight"] == [4096, 4096])
    }

    @Test func test_caffeNet_inPlaceRelu_givesConvOutputItsOwnVersion() throws {
        let graph = try Graph(BuiltinNetworks.caffeNet())
        let conv1 = try #require(graph.node(named: "conv1"))
        let relu1 = try #require(graph.node(named: "relu1"))
        let convOut = graph.nodes[conv1].tops[0]
        let reluOut = graph.nodes[relu1].tops[0]

        #expect(graph.blobs[convOut].label == "conv1")
        #expect(graph.blobs[reluOut].label == "conv1@1")
        #expect(graph.nodes[relu1].bottoms == [convOut])
        #expect(graph.blobs[reluOut].producer == relu1)
        #expect(graph.consumers(of: convOut) == [relu1])
        #expect(graph.blob(named: "conv1") == reluOut, "the name resolves to the latest version")
        #expect(graph.nodes[try #require(graph.node(named: "pool1"))].bottoms == [reluOut])
        // drop6 is the second in-place layer on fc6.
        let drop6 = try #require(graph.node(named: "drop6"))
        #expect(graph.blobs[graph.nodes[drop6].tops[0]].label == "fc6@2")
    }

    @Test func test_caffeNet_forwardMultiplyAdds_matchesKnown724Million() throws {
        // conv1 105,415,200 + conv2 223,948,800 + conv3 149,520,384 + conv4 112,140,288
        // + conv5 74,760,192 + fc6 37,748,736 + fc7 16,777,216 + fc8 4,096,000.
        let graph = try Graph(BuiltinNetworks.caffeNet())
        #expect(graph.forwardMultiplyAdds == 724_406_816)
        #expect(try graph.withBatchSize(4).forwardMultiplyAdds == 4 * 724_406_816)
    }

    @Test func test_withBatchSize_prefixesEveryBlobWithTheBatch() throws {
        let graph = try Graph(BuiltinNetworks.small()).withBatchSize(5)
        #expect(graph.blobs.allSatisfy { $0.shape[0] == 5 })
        #expect(graph.blobs[graph.outputs[0]].shape == [5, 10])
    }

    @Test func test_networkNamed_acceptsSpellingVariants() {
        #expect(BuiltinNetworks.network(named: "VGG-16")?.name == "VGG-16")
        #expect(BuiltinNetworks.network(named: "vgg_16")?.name == "VGG-16")
        #expect(BuiltinNetworks.network(named: "CaffeNet")?.name == "CaffeNet")
        #expect(BuiltinNetworks.network(named: "resnet") == nil)
    }
}
