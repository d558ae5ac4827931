import Testing
import MagicInitCore

@Suite struct GraphErrorTests {
    /// A network reading `data` `(3, 8, 8)` (and `aux` `(2, 4, 4)`) with `layers`.
    func network(_ layers: [Layer]) -> Network {
        Network(name: "t", inputs: [.init(name: "data", shape: [3, 8, 8]), .init(name: "aux", shape: [2, 4, 4])],
                layers: layers)
    }

    func conv(_ name: String, _ bottom: String, outputs: Int = 4, kernel: Int = 3, stride: Int = 1, groups: Int = 1) -> Layer {
        Layer(name: name, kind: .convolution(.init(numOutput: outputs, kernel: Size2(kernel), stride: Size2(stride), groups: groups)),
              bottoms: [bottom], tops: [name])
    }

    /// The error compiling `network` throws; records an issue when it compiles.
    func compileError(_ network: Network, sourceLocation: SourceLocation = #_sourceLocation) -> GraphError? {
        do {
            _ = try Graph(network)
            Issue.record("expected a GraphError", sourceLocation: sourceLocation)
            return nil
        } catch let error as GraphError {
            return error
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    @Test func test_unknownBottom_namesLayerAndBlob() throws {
        let error = try #require(compileError(network([conv("conv1", "missing")])))
        #expect(error == .unknownBottom(layer: "conv1", blob: "missing"))
        #expect(error.description.contains("conv1") && error.description.contains("missing"))
    }

    @Test func test_groupNotDividingChannels_isShapeMismatchNamingLayer() throws {
        let error = try #require(compileError(network([conv("conv1", "data", outputs: 4, groups: 2)])))
        guard case .shapeMismatch(let layer, _) = error else { Issue.record("got \(error)"); return }
        #expect(layer == "conv1")
        #expect(error.description.contains("conv1") && error.description.contains("group 2"))
    }

    @Test func test_kernelLargerThanInput_isShapeMismatchNamingLayer() throws {
        let error = try #require(compileError(network([conv("big", "data", kernel: 9)])))
        guard case .shapeMismatch(let layer, _) = error else { Issue.record("got \(error)"); return }
        #expect(layer == "big")
        #expect(error.description.contains("big"))
    }

    @Test func test_poolKernelLargerThanInput_isRejected() throws {
        // aux is 4×4; a 9×9 window with stride 5 has span 4 − 9 = −5 → ⌈−5/5⌉ + 1 = 0 outputs
        // (Caffe's float ceil; a truncating integer division would have said 1).
        let pool = Layer(name: "pool", kind: .pooling(.init(method: .max, kernel: Size2(9), stride: Size2(5))),
                         bottoms: ["aux"], tops: ["pool"])
        let error = try #require(compileError(network([pool])))
        guard case .shapeMismatch(let layer, _) = error else { Issue.record("got \(error)"); return }
        #expect(layer == "pool")
    }

    @Test func test_concatMismatch_namesLayerAndShapes() throws {
        let cat = Layer(name: "cat", kind: .concat(axis: 1), bottoms: ["data", "aux"], tops: ["cat"])
        let error = try #require(compileError(network([cat])))
        guard case .shapeMismatch(let layer, _) = error else { Issue.record("got \(error)"); return }
        #expect(layer == "cat")
        #expect(error.description.contains("cat") && error.description.contains("(1, 2, 4, 4)"))
    }

    @Test func test_eltwiseMismatch_namesLayer() throws {
        let sum = Layer(name: "sum", kind: .eltwise(.init(operation: .sum)), bottoms: ["data", "aux"], tops: ["sum"])
        let error = try #require(compileError(network([sum])))
        guard case .shapeMismatch(let layer, _) = error else { Issue.record("got \(error)"); return }
        #expect(layer == "sum")
        #expect(error.description.contains("sum"))
    }

    @Test func test_duplicateLayerNames_namesTheLayer() throws {
        let error = try #require(compileError(network([conv("conv1", "data"), conv("conv1", "aux", groups: 2)])))
        #expect(error == .duplicateLayerName("conv1"))
        #expect(error.description.contains("conv1"))
    }

    @Test func test_cycle_namesTheLayersInIt() throws {
        let a = Layer(name: "a", kind: .relu(negativeSlope: 0), bottoms: ["b"], tops: ["a"])
        let b = Layer(name: "b", kind: .relu(negativeSlope: 0), bottoms: ["a"], tops: ["b"])
        let ok = Layer(name: "ok", kind: .relu(negativeSlope: 0), bottoms: ["data"], tops: ["ok"])
        let error = try #require(compileError(network([ok, a, b])))
        #expect(error == .cycle(layers: ["a", "b"]))
        #expect(error.description.contains("a, b"))
    }

    @Test func test_wrongBottomCount_andInvalidBatchSize() throws {
        let sum = Layer(name: "lonely", kind: .eltwise(.init(operation: .sum)), bottoms: ["data"], tops: ["s"])
        let error = try #require(compileError(network([sum])))
        #expect(error == .wrongBottomCount(layer: "lonely", type: "Eltwise", expected: "≥ 2", actual: 1))
        #expect(throws: GraphError.invalidBatchSize(0)) { try Graph(network([]), batchSize: 0) }
    }

    @Test func test_outOfOrderLayers_areSortedTopologically() throws {
        // A diamond listed backwards: data → conv → (left, right) → cat → fc.
        let layers = [
            Layer(name: "fc", kind: .innerProduct(.init(numOutput: 2)), bottoms: ["cat"], tops: ["fc"]),
            Layer(name: "cat", kind: .concat(axis: 1), bottoms: ["left", "right"], tops: ["cat"]),
            Layer(name: "right", kind: .sigmoid, bottoms: ["conv"], tops: ["right"]),
            Layer(name: "left", kind: .relu(negativeSlope: 0), bottoms: ["conv"], tops: ["left"]),
            conv("conv", "data"),
        ]
        let graph = try Graph(network(layers))
        let order = graph.nodes.map(\.name)
        #expect(order.first == "conv" && order.last == "fc")
        #expect(Set(order[1...2]) == ["left", "right"] && order[3] == "cat")
        for (index, node) in graph.nodes.enumerated() {
            for bottom in node.bottoms {
                if let producer = graph.blobs[bottom].producer { #expect(producer < index, "\(node.name) before its bottom") }
            }
        }
        #expect(graph.blobs[graph.blob(named: "cat")!].shape == [1, 8, 6, 6])
        #expect(graph.blobs[graph.blob(named: "fc")!].shape == [1, 2])
    }

    @Test func test_inOrderLayers_keepTheirOrder() throws {
        let layers = [conv("c2", "aux", outputs: 2), conv("c1", "data")]
        #expect(try Graph(network(layers)).nodes.map(\.name) == ["c2", "c1"])
    }
}
