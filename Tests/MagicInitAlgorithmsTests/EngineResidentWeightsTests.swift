import Testing
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitSamples
import MagicInitStatistics

/// Weights that oneDNN keeps in the Caffe layout may live only in the engine's buffer
/// (`engineResidentBytes`): every statistic and every weight must come out bitwise as when
/// the replica keeps its own copy, on one engine and on two, and after a chunk adopted
/// mid-run is rebuilt by replaying Algorithm 1 (the replay runs older weights through the
/// engine and must put the resident ones back).
@Suite struct EngineResidentWeightsTests {
    /// Algorithm 1 over every affine layer, then two Algorithm 2 measurements with a
    /// scale directive between them. `lateChunks` are added after `lateAfter` layers
    /// (replayed). Returns every statistic as bits, and the final weights.
    private func run(_ collector: ChunkCollector, early: [Chunk], late: [Chunk], lateAfter: Int) throws -> (bits: [UInt64], weights: ParameterSet) {
        var bits: [UInt64] = []
        func record(_ values: [Double]) { bits += values.map(\.bitPattern) }
        try collector.add(early)
        let affine = collector.graph.nodes.filter { $0.kind.isAffine }
        for (k, node) in affine.enumerated() {
            if k == lateAfter { try collector.add(late) }
            try collector.apply([.gaussian(layer: node.name, seed: 11, std: 1)])
            var merged: ChannelMoments?
            for part in try collector.outputMoments(layer: node.name) {
                record(part.moments.mean + part.moments.m2)
                if merged == nil { merged = part.moments } else { merged!.merge(part.moments) }
            }
            let std = merged!.standardDeviation
            try collector.apply([.affine(layer: node.name, rowScale: std.map { 1 / $0 }, columnScale: [],
                                         shift: std.indices.map { 0.1 - merged!.mean[$0] / std[$0] })])
        }
        for step in 0..<2 {
            for part in try collector.measure(step: step, seed: 3, weightGradients: false) {
                for layer in part.measurement.layers {
                    record(layer.outputGradientSquares.sumOfSquares + [layer.outputGradientNorm.sum] + layer.weightSquares + layer.inputSquares.sumOfSquares)
                }
            }
            // An Algorithm 2 style correction: scale fc4's rows, undo it in fc5's columns.
            let rows = (0..<48).map { 1 + Double($0) / 97 }
            let fc5Columns = rows.map { 1 / $0 }
            try collector.apply([.affine(layer: "fc4", rowScale: rows, columnScale: [], shift: [Double](repeating: 0, count: 48)),
                                 .affine(layer: "fc5", rowScale: [Double](repeating: 1, count: 10), columnScale: fc5Columns,
                                         shift: [Double](repeating: 0, count: 10))])
        }
        return (bits, collector.parameters)
    }

    @Test(arguments: [1, 2])
    func test_engineResidentWeights_giveTheSameBitsAsAReplicaCopy(threads: Int) throws {
        let network = reluNetwork()
        let images = try SamplePhotos.load(size: 32)
        let chunks = LocalStatisticsSource.chunks(of: images, size: 4)
        let resident = try ChunkCollector(network: network, chunkSize: 4, threads: threads, engineResidentBytes: 0)
        let copied = try ChunkCollector(network: network, chunkSize: 4, threads: threads, engineResidentBytes: .max)
        // fc4 reads a (48, 4, 4) blob and fc5 a vector: oneDNN keeps at least one of them plain.
        #expect(!resident.engineResidentKeys.isEmpty, "no weight is held in the Caffe layout by the engine")
        #expect(copied.engineResidentKeys.isEmpty)
        let half = chunks.count / 2
        let a = try run(resident, early: Array(chunks[..<half]), late: Array(chunks[half...]), lateAfter: 3)
        let b = try run(copied, early: Array(chunks[..<half]), late: Array(chunks[half...]), lateAfter: 3)
        #expect(a.bits.count == b.bits.count && a.bits.count > 1000)
        let firstDifference = a.bits.indices.first { $0 >= b.bits.count || a.bits[$0] != b.bits[$0] }
        #expect(firstDifference == nil, "statistics differ from entry \(firstDifference ?? -1) of \(a.bits.count)")
        #expect(Set(a.weights.keys) == Set(b.weights.keys))
        for (key, value) in b.weights {
            let same = a.weights[key]?.data.map(\.bitPattern) == value.data.map(\.bitPattern)
            #expect(same, "\(key) differs")
        }
        // Every engine (the second copies the first's buffer) holds the final weights.
        for (e, engine) in resident.engines.enumerated() {
            for key in resident.engineResidentKeys {
                let same = try engine.parameterValue(key).data.map(\.bitPattern) == b.weights[key]?.data.map(\.bitPattern)
                #expect(same, "engine \(e) holds other values of \(key)")
            }
        }
    }
}
