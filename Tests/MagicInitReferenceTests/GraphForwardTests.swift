import MagicInitCore
import MagicInitReference
import Testing

@Suite struct GraphForwardTests {
    @Test func test_forward_inPlaceRelu_keepsValueBeforeAndAfter() throws {
        var b = NetworkBuilder(name: "t", shape: [1, 3, 3])
        b.conv("conv1", 2, kernel: 2)
        b.relu("relu1")
        let g = try Graph(b.network)
        let x = pattern(9)
        let parameters = ["conv1.weight": [1, 0, 0, 1, -1, 0, 0, -1], "conv1.bias": [0, 0.5]]
        let values = Reference.forward(g, inputs: [x], parameters: parameters)

        let conv = g.blobs.firstIndex { $0.label == "conv1" }!
        let relu = g.blobs.firstIndex { $0.label == "conv1@1" }!
        let direct = Reference.convolution(x, shape: [1, 1, 3, 3], weight: parameters["conv1.weight"]!,
                                           bias: parameters["conv1.bias"]!, ConvolutionParameters(numOutput: 2, kernel: Size2(2)))
        #expect(values[conv] == direct)
        #expect(values[relu] == Reference.relu(direct))
        #expect(values[conv].contains { $0 < 0 }, "degenerate test: nothing for the ReLU to clip")
    }

    @Test func test_forward_branchesAndConcat_matchLayerFunctions() throws {
        // data → (pool, conv) → concat → eltwise with itself → scale → softmax.
        let g = try graph(input: [2, 4, 4], batch: 2, [
            Layer(name: "pool", kind: .pooling(.init(method: .average, kernel: Size2(2), stride: Size2(2))),
                  bottoms: ["data"], tops: ["pool"]),
            Layer(name: "conv", kind: .convolution(.init(numOutput: 3, kernel: Size2(2), stride: Size2(2))),
                  bottoms: ["data"], tops: ["conv"]),
            Layer(name: "cat", kind: .concat(axis: 1), bottoms: ["pool", "conv"], tops: ["cat"]),
            Layer(name: "sum", kind: .eltwise(.init(operation: .sum, coefficients: [1, 2])), bottoms: ["cat", "cat"], tops: ["sum"]),
            Layer(name: "scale", kind: .scale(bias: true), bottoms: ["sum"], tops: ["sum"]),
            Layer(name: "prob", kind: .softmax(axis: 1), bottoms: ["sum"], tops: ["prob"]),
        ])
        let x = pattern(2 * 2 * 4 * 4, divisor: 3)
        let parameters = ["conv.weight": pattern(3 * 2 * 2 * 2, multiplier: 5, modulus: 7, offset: 3, divisor: 4),
                          "conv.bias": [0.1, 0.2, 0.3],
                          "scale.weight": [1, 0.5, -1, 2, 0.25], "scale.bias": [0, 1, 0, -1, 0]]
        let values = Reference.forward(g, inputs: [x], parameters: parameters)

        let pool = Reference.pooling(x, shape: [2, 2, 4, 4], PoolingParameters(method: .average, kernel: Size2(2), stride: Size2(2)))
        let conv = Reference.convolution(x, shape: [2, 2, 4, 4], weight: parameters["conv.weight"]!, bias: parameters["conv.bias"]!,
                                         ConvolutionParameters(numOutput: 3, kernel: Size2(2), stride: Size2(2)))
        let cat = Reference.concat([pool, conv], shapes: [[2, 2, 2, 2], [2, 3, 2, 2]], axis: 1)
        let scaled = Reference.scale(cat.map { 3 * $0 }, shape: [2, 5, 2, 2],
                                     gamma: parameters["scale.weight"]!, beta: parameters["scale.bias"]!)
        expectClose(values[g.blob(named: "prob")!], Reference.softmax(scaled, shape: [2, 5, 2, 2], axis: 1), tolerance: 1e-15)
    }

    @Test func test_forward_floatTensors_matchDoubleArrays() throws {
        let g = try Graph(BuiltinNetworks.small(inputSize: 8))
        let x = Tensor(shape: [1, 3, 8, 8], data: pattern(192, divisor: 8).map(Float.init))
        var parameters: ParameterSet = [:]
        for (k, spec) in g.parameters.enumerated() {
            parameters[spec.key] = Tensor(shape: spec.shape, data: pattern(spec.count, multiplier: 3 + k, modulus: 13, offset: 6, divisor: 64).map(Float.init))
        }
        let fromTensors = Reference.forward(g, inputs: [x], parameters: parameters)
        let fromArrays = Reference.forward(g, inputs: [x.data.map(Double.init)],
                                           parameters: parameters.mapValues { $0.data.map(Double.init) })
        #expect(fromTensors == fromArrays)
        #expect(fromTensors[g.outputs[0]].count == 10)
    }
}
