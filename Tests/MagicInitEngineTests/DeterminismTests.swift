import Foundation
import Testing
import MagicInitCore
@testable import MagicInitEngine

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

/// ``Engine/saveForward(nodes:)`` keeps exactly what backward-to-data reads: restoring it
/// after other forward passes gives the same gradients, bit for bit.
@Suite(.serialized) struct SavedForwardTests {
    func engine(_ network: Network) throws -> Engine { try randomEngine(network, batchSize: 2, seed: 4) }

    /// Every gradient after a backward pass (over `restoring`, when given).
    func gradients(_ engine: Engine, restoring saved: SavedForward? = nil) throws -> [Tensor] {
        let output = engine.graph.outputs[0]
        let shape = engine.graph.blobs[output].shape
        try engine.setGradient(Tensor(shape: shape, data: Philox(seed: 5, stream: 0).gaussians(count: shape.reduce(1, *))), of: output)
        if let saved { try engine.backward(restoring: [saved]) } else { try engine.backward(weights: false) }
        return try engine.graph.blobs.indices.filter { !engine.graph.inputs.contains($0) }.map { try engine.gradient(of: $0) }
    }

    func image(_ engine: Engine, seed: UInt64) -> Tensor {
        let shape = engine.graph.blobs[engine.graph.inputs[0]].shape
        return Tensor(shape: shape, data: Philox(seed: seed, stream: 0).gaussians(count: shape.reduce(1, *)))
    }

    /// Leaky ReLU, Caffe-corrected average pooling, Sigmoid, Tanh, Concat and Softmax.
    static func mixed() -> Network {
        var b = NetworkBuilder(name: "mixed", shape: [3, 13, 13])
        b.conv("conv1", 8, kernel: 3, pad: 1); b.addInPlace("leaky1", .relu(negativeSlope: 0.1))
        b.averagePool("pool1", kernel: 3, stride: 2, pad: 1)
        b.add("conv2a", .convolution(.init(numOutput: 4, kernel: Size2(3), pad: Size2(1))), bottoms: ["pool1"], top: "conv2a")
        b.add("sig2a", .sigmoid, bottoms: ["conv2a"], top: "sig2a")
        b.add("conv2b", .convolution(.init(numOutput: 4, kernel: Size2(1))), bottoms: ["pool1"], top: "conv2b")
        b.add("tanh2b", .tanh, bottoms: ["conv2b"], top: "tanh2b")
        b.add("concat", .concat(axis: 1), bottoms: ["sig2a", "tanh2b"], top: "concat")
        b.innerProduct("fc3", 5)
        b.add("prob", .softmax(axis: 1), top: "prob")
        return b.network
    }

    @Test(arguments: ["small", "mixed"])
    func test_restoredForward_givesTheSameGradientsBitForBit(name: String) throws {
        // "small": conv, grouped conv, ReLU, max pooling, LRN (raw input and workspace),
        // inner products, dropout; "mixed": the layers of ``mixed()``.
        let network = name == "small" ? BuiltinNetworks.small() : SavedForwardTests.mixed()
        let engine = try engine(network)
        try engine.setInput(image(engine, seed: 1))
        try engine.forward()
        let expected = try gradients(engine)
        let saved = engine.saveForward(nodes: engine.graph.nodes.indices)
        #expect(saved.byteCount > 0)
        // Another image overwrites every value; the restore must bring back what matters.
        try engine.setInput(image(engine, seed: 2))
        try engine.forward()
        let other = try gradients(engine)
        engine.restoreForward(saved)
        let restored = try gradients(engine)
        let differing = zip(expected, restored).enumerated().filter { !zip($0.1.0.data, $0.1.1.data).allSatisfy { $0.bitPattern == $1.bitPattern } }.map(\.offset)
        #expect(differing.isEmpty, "gradients differing after the restore: \(differing)")
        #expect(zip(expected, other).contains { $0.0.data != $0.1.data }, "the second image should change the gradients")
        // The restore within the backward pass (ReLUs straight from the saved bits).
        try engine.setInput(image(engine, seed: 3))
        try engine.forward()
        let inOne = try gradients(engine, restoring: saved)
        let differingInOne = zip(expected, inOne).enumerated().filter { !zip($0.1.0.data, $0.1.1.data).allSatisfy { $0.bitPattern == $1.bitPattern } }.map(\.offset)
        #expect(differingInOne.isEmpty, "gradients differing after backward(restoring:): \(differingInOne)")
    }

    @Test func test_maskPositive_matchesGradientTimesUnpackedSigns() {
        // Lengths around the SIMD and word boundaries; negative gradients must give −0.
        for count in [1, 15, 63, 64, 65, 130, 1000, (1 << 20) + 77] {
            let values = (0..<count).map { i -> Float in i % 3 == 0 ? -1 : Float(i % 5) - 2 }
            let diff = (0..<count).map { i -> Float in Float(i % 11) - 5.5 }
            let words = values.withUnsafeBufferPointer { Engine.packPositive($0.baseAddress!, count: count) }
            var masked = [Float](repeating: .nan, count: count)
            diff.withUnsafeBufferPointer { d in
                masked.withUnsafeMutableBufferPointer { Engine.maskPositive(words, diff: d.baseAddress!, into: $0.baseAddress!, count: count) }
            }
            let expected = zip(values, diff).map { $0 > 0 ? $1 * 1 : $1 * 0 }
            #expect(masked.map(\.bitPattern) == expected.map(\.bitPattern), "count \(count)")
            #expect(count < 64 || masked.contains { $0 == 0 && $0.sign == .minus })
        }
    }

    @Test func test_positivityPacking_matchesElementwiseComparison() {
        // Lengths around the SIMD and word boundaries, with zeros, negatives and NaN.
        for count in [1, 15, 63, 64, 65, 130, 1000, (1 << 20) + 77] {
            let values = (0..<count).map { i -> Float in
                switch i % 7 { case 0: 0; case 1: -1.5; case 2: .nan; case 3: -0.0; default: Float(i % 13) * 0.25 }
            }
            let words = values.withUnsafeBufferPointer { Engine.packPositive($0.baseAddress!, count: count) }
            var restored = [Float](repeating: -7, count: count)
            restored.withUnsafeMutableBufferPointer { Engine.unpackPositive(words, into: $0.baseAddress!, count: count) }
            #expect(restored == values.map { $0 > 0 ? 1 : 0 }, "count \(count)")
        }
    }
}

/// ``Engine/Options/inPlaceActivations``: a ReLU writes over its input, and every value,
/// gradient and weight gradient that is still there is bit for bit what separate buffers give.
@Suite(.serialized) struct InPlaceActivationTests {
    @Test(arguments: ["small", "mixed"])
    func test_inPlaceReLU_sameBitsAsSeparateBuffers(name: String) throws {
        // "small": ReLUs before LRN, max pooling and dropout; "mixed": a leaky ReLU (slope
        // 0.1, in place too) and Sigmoid / Tanh (never in place).
        let network = name == "small" ? BuiltinNetworks.small() : SavedForwardTests.mixed()
        let separate = try randomEngine(network, batchSize: 2, seed: 4)
        let shared = try randomEngine(network, batchSize: 2, seed: 4, inPlaceActivations: true)
        let graph = shared.graph
        let reluTops = graph.nodes.filter { if case .relu = $0.kind { true } else { false } }.map(\.tops[0])
        let overwritten = Set(shared.inPlace.values), aliased = Set(shared.inPlace.keys)
        #expect(!aliased.isEmpty && aliased.isSubset(of: Set(reluTops)))
        for (top, bottom) in shared.inPlace { #expect(shared.values[top] === shared.values[bottom]) }
        #expect(separate.inPlace.isEmpty)
        let images = SavedForwardTests().image(shared, seed: 1)
        let output = graph.outputs[0], outputShape = graph.blobs[output].shape
        let eta = Tensor(shape: outputShape, data: Philox(seed: 5, stream: 0).gaussians(count: outputShape.reduce(1, *)))
        func pass(_ engine: Engine, restoring saved: SavedForward? = nil) throws -> (values: [[UInt32]], gradients: [[UInt32]], weights: [[UInt32]]) {
            try engine.setInput(images)
            try engine.forward()
            let values = try graph.blobs.indices.filter { !overwritten.contains($0) }.map { try engine.value(of: $0).data.map(\.bitPattern) }
            try engine.setGradient(eta, of: output)
            if let saved { try engine.backward(restoring: [saved]) } else { try engine.backward(weights: true) }
            let gradients = try graph.blobs.indices.filter { !graph.inputs.contains($0) && !aliased.contains($0) }
                .map { try engine.gradient(of: $0).data.map(\.bitPattern) }
            let weights = saved != nil ? [] : try graph.parameters.map { try engine.parameterGradient($0.key).data.map(\.bitPattern) }
            return (values, gradients, weights)
        }
        let expected = try pass(separate), actual = try pass(shared)
        #expect(actual.values == expected.values)
        #expect(actual.gradients == expected.gradients)
        #expect(actual.weights == expected.weights && !expected.weights.isEmpty)
        // Backward over a saved forward pass (ReLUs straight from the saved bits, in place).
        let saved = (separate.saveForward(nodes: graph.nodes.indices), shared.saveForward(nodes: graph.nodes.indices))
        #expect(try pass(shared, restoring: saved.1).gradients == pass(separate, restoring: saved.0).gradients)
    }
}

/// An engine for `network` with Gaussian weights (std 0.1) and biases (mean 0.05) from `seed`.
func randomEngine(_ network: Network, batchSize: Int, seed: UInt64, inPlaceActivations: Bool = false) throws -> Engine {
    let graph = try Graph(network, batchSize: batchSize)
    let engine = try Engine(graph: graph, options: .init(threads: 2, inPlaceActivations: inPlaceActivations))
    var parameters: ParameterSet = [:]
    for (i, spec) in graph.parameters.enumerated() {
        parameters[spec.key] = Tensor(shape: spec.shape, data: Philox(seed: seed, stream: UInt64(i)).gaussians(count: spec.count, mean: spec.role == .bias ? 0.05 : 0, std: 0.1))
    }
    try engine.setParameters(parameters)
    return engine
}

/// A second engine may use the first one's weight buffers (`sharingWeightsOf`): both then
/// compute with whatever weights were set last through either, and a backward pass after a
/// change never uses a stale backward-data copy of the old weights.
@Suite(.serialized) struct SharedWeightsTests {
    func parameters(_ graph: Graph, seed: UInt64) -> ParameterSet {
        var parameters: ParameterSet = [:]
        for (i, spec) in graph.parameters.enumerated() {
            parameters[spec.key] = Tensor(shape: spec.shape, data: Philox(seed: seed, stream: UInt64(i)).gaussians(count: spec.count, std: 0.1))
        }
        return parameters
    }

    /// Every value and gradient after a forward and backward pass over a fixed input.
    func pass(_ engine: Engine) throws -> [UInt32] {
        let graph = engine.graph
        let input = graph.blobs[graph.inputs[0]].shape
        try engine.setInput(Tensor(shape: input, data: Philox(seed: 1, stream: 0).gaussians(count: input.reduce(1, *))))
        try engine.forward()
        let output = graph.outputs[0], shape = graph.blobs[output].shape
        try engine.setGradient(Tensor(shape: shape, data: Philox(seed: 2, stream: 0).gaussians(count: shape.reduce(1, *))), of: output)
        try engine.backward(weights: false)
        return try graph.blobs.indices.dropFirst().flatMap { try engine.value(of: $0).data + engine.gradient(of: $0).data }.map(\.bitPattern)
    }

    @Test func test_sharedWeights_followEveryWriteAndRenewBackwardCopies() throws {
        let graph = try Graph(BuiltinNetworks.small(), batchSize: 2)
        let first = try Engine(graph: graph, options: .init(threads: 1))
        let second = try Engine(graph: graph, options: .init(threads: 1), sharingWeightsOf: first)
        let affine = graph.parameters.filter { spec in graph.nodes.first { $0.name == spec.layer }!.kind.isAffine }
        #expect(!affine.isEmpty && affine.allSatisfy { second.sharesParameter($0.key) && !first.sharesParameter($0.key) })
        let (a, b) = (parameters(graph, seed: 7), parameters(graph, seed: 8))
        try first.setParameters(a)
        try second.setParameters(a.filter { !second.sharesParameter($0.key) })
        // A lone engine with the same weights gives the reference bits.
        func reference(_ p: ParameterSet) throws -> [UInt32] {
            let lone = try Engine(graph: graph, options: .init(threads: 1))
            try lone.setParameters(p)
            return try pass(lone)
        }
        let withA = try reference(a), withB = try reference(b)
        #expect(withA != withB)
        #expect(try pass(first) == withA)
        #expect(try pass(second) == withA)
        // New weights written through the second engine reach the first, whose backward
        // pass (it built its backward-data copies with `a`) must use them.
        try second.setParameters(b)
        #expect(try pass(first) == withB)
        #expect(try pass(second) == withB)
        for spec in affine {
            #expect(try first.parameterValue(spec.key).data == b[spec.key]!.data, "\(spec.key)")
        }
    }
}
