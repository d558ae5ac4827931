import Testing
import MagicInitCore
import MagicInitEngine
import MagicInitReference

/// Every layer kind, forward against the Float64 reference and backward against finite
/// differences, on small random shapes (groups, stride, pad, dilation, ceil-mode pooling,
/// Caffe's average-pooling divisor, LRN, multi-consumer gradient accumulation).
@Suite struct LayerTests {
    static let names = Cases.all.map(\.0)

    static func network(_ name: String) -> Network { Cases.all.first { $0.0 == name }!.1 }

    @Test(arguments: names)
    func test_forward_matchesFloat64Reference(_ name: String) throws {
        let check = try LayerCheck(Self.network(name))
        let (error, blob) = try check.forwardError()
        #expect(error < 1e-5, "\(name): largest relative difference \(error) at blob \(blob)")
    }

    @Test(arguments: names)
    func test_backward_matchesFiniteDifferences(_ name: String) throws {
        let check = try LayerCheck(Self.network(name))
        let (error, what) = try check.backwardError()
        #expect(error < 1e-4, "\(name): largest relative difference \(error) in \(what)")
    }

    @Test func test_batchNorm_globalStats_matchReferenceForwardAndBackward() throws {
        var b = NetworkBuilder(name: "bn", shape: [4, 3, 3])
        b.add("bn", .batchNorm(eps: 1e-5))
        let fixed: ParameterSet = [
            "bn.running_mean": Tensor(shape: [4], data: [0.2, -0.4, 1.0, 0]),
            "bn.running_var": Tensor(shape: [4], data: [1.0, 0.5, 4.0, 2.0]),
            "bn.moving_average_factor": Tensor(shape: [1], data: [2]),
        ]
        let check = try LayerCheck(b.network, fixed: fixed)
        let forward = try check.forwardError()
        #expect(forward.error < 1e-5, "forward: \(forward)")
        let backward = try check.backwardError()
        #expect(backward.error < 1e-4, "backward: \(backward)")
    }

    @Test func test_smallNetwork_endToEnd_matchesReference() throws {
        let check = try LayerCheck(BuiltinNetworks.small(inputSize: 16), batchSize: 2, parameterStd: 0.2)
        let forward = try check.forwardError()
        #expect(forward.error < 1e-4, "forward: \(forward)")
    }
}
