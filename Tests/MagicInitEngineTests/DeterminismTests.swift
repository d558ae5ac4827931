import Foundation
import Testing
import MagicInitCore
import MagicInitEngine

/// The distributed run needs results that do not depend on how many OpenMP threads a
/// replica uses (a worker count changes the threads per worker).
@Suite(.serialized) struct EngineDeterminismTests {
    func run(_ network: Network, threads: Int) throws -> [Tensor] {
        let graph = try Graph(network, batchSize: 3)
        let engine = try Engine(graph: graph, options: .init(threads: threads))
        var parameters: ParameterSet = [:]
        for (i, spec) in graph.parameters.enumerated() {
            parameters[spec.key] = Tensor(shape: spec.shape, data: Philox(seed: 9, stream: UInt64(i)).gaussians(count: spec.count, std: 0.1))
        }
        try engine.setParameters(parameters)
        let input = graph.blobs[graph.inputs[0]].shape
        try engine.setInput(Tensor(shape: input, data: Philox(seed: 1, stream: 0).gaussians(count: input.reduce(1, *))))
        try engine.forward()
        let output = graph.outputs[0]
        try engine.setGradient(Tensor(shape: graph.blobs[output].shape, data: Philox(seed: 2, stream: 0).gaussians(count: graph.blobs[output].shape.reduce(1, *))), of: output)
        try engine.backward(weights: false)
        return try graph.blobs.indices.dropFirst().flatMap { [try engine.value(of: $0), try engine.gradient(of: $0)] }
    }

    @Test func test_forwardAndBackwardData_sameBitsForOneAndTwoThreads() throws {
        let network = BuiltinNetworks.small()
        let one = try run(network, threads: 1)
        let two = try run(network, threads: 2)
        let differing = zip(one, two).enumerated().filter { !zip($0.1.0.data, $0.1.1.data).allSatisfy { $0.bitPattern == $1.bitPattern } }.map(\.offset)
        #expect(differing.isEmpty, "tensors differing between 1 and 2 threads: \(differing)")
    }
}
