import Testing
import MagicInitAlgorithms
import MagicInitCore
import MagicInitTestKit

/// Gaussian directives on a ``WeightReplica``: filled in place and redrawn row by row, with
/// exactly the values of a fresh full draw.
@Suite struct WeightReplicaTests {
    /// An inner product (rows of 48 · 4 · 4 = 768) and a grouped convolution (rows of
    /// 8 · 3 · 3 = 72, not a multiple of the 256-draw groups).
    static let layers = ["fc4", "conv2"]

    @Test(arguments: layers)
    func test_gaussian_filledInPlace_equalsFreshDraw(layer: String) throws {
        let graph = try Graph(reluNetwork())
        var replica = WeightReplica(graph: graph)
        let spec = try #require(graph.parameters.first { $0.layer == layer && $0.role == .weight })
        try replica.apply(.gaussian(layer: layer, seed: 7, std: 0.1))
        #expect(replica.parameters[spec.key] == GaussianWeights.generate(spec: spec, seed: 7, std: 0.1))
    }

    @Test(arguments: layers)
    func test_redrawRows_givesExactlyThoseRowsOfAFullDraw(layer: String) throws {
        let graph = try Graph(reluNetwork())
        var replica = WeightReplica(graph: graph)
        let spec = try #require(graph.parameters.first { $0.layer == layer && $0.role == .weight })
        let biasKey = layer + ".bias"
        try replica.apply(.gaussian(layer: layer, seed: 7, std: 0.1))
        try replica.apply(.set(key: biasKey, value: Tensor(shape: [spec.shape[0]], repeating: 1)))
        let before = try #require(replica.parameters[spec.key])

        let rows = [0, 5, spec.shape[0] - 1]
        try replica.apply(.redrawRows(layer: layer, rows: rows, seed: 7, std: 0.1, attempt: 2))
        let full = GaussianWeights.generate(spec: spec, seed: 7, std: 0.1, attempt: 2)
        let after = try #require(replica.parameters[spec.key])
        let rowLength = spec.count / spec.shape[0]
        for row in 0..<spec.shape[0] {
            let range = (row * rowLength)..<((row + 1) * rowLength)
            let expected = rows.contains(row) ? full.data[range] : before.data[range]
            #expect(after.data[range] == expected, "row \(row)")
            #expect(replica.parameters[biasKey]!.data[row] == (rows.contains(row) ? 0 : 1), "bias \(row)")
        }
    }

    @Test func test_redrawRows_rowOutOfRange_refusedBeforeAnyChange() throws {
        let graph = try Graph(reluNetwork())
        var replica = WeightReplica(graph: graph)
        try replica.apply(.gaussian(layer: "fc4", seed: 7, std: 0.1))
        let before = replica.parameters
        #expect(throws: AlgorithmError.badDirective(layer: "fc4", reason: "row 48 out of range")) {
            try replica.apply(.redrawRows(layer: "fc4", rows: [1, 48], seed: 7, std: 0.1, attempt: 1))
        }
        #expect(replica.parameters == before)
    }
}
