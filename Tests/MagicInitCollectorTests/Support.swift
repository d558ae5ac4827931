import Testing
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitStatistics

/// A collector of `network` with chunks of `chunkSize` images on `threads` threads, its
/// other options set by `configure`.
func collector(_ network: Network, chunkSize: Int = 4, threads: Int,
               _ configure: (inout ChunkCollector.Options) -> Void = { _ in }) throws -> ChunkCollector {
    var options = ChunkCollector.Options(threads: threads)
    configure(&options)
    return try ChunkCollector(network: network, chunkSize: chunkSize, options: options)
}

/// For `reluNetwork()`: Algorithm 1 over every affine layer, then two Algorithm 2
/// measurements with a scale directive between them. The `late` chunks are added after
/// `lateAfter` layers (replayed). Returns every statistic as bits, and the final weights.
func algorithm1ThenMeasurements(_ collector: ChunkCollector, early: [Chunk], late: [Chunk], lateAfter: Int) throws -> (bits: [UInt64], weights: ParameterSet) {
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
        try collector.apply([.normalize(layer: node.name, scale: std.map { 1 / $0 }, shift: std.indices.map { 0.1 - merged!.mean[$0] / std[$0] })])
    }
    for step in 0..<2 {
        for part in try collector.measure(step: step, seed: 3, weightGradients: false) {
            for layer in part.measurement.layers {
                record(layer.outputGradientSquares.sumOfSquares + [layer.outputGradientNorm.sum] + layer.weightSquares + layer.inputSquares.sumOfSquares
                       + layer.outputMoments.mean + layer.outputMoments.m2)
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

/// Expects two results of ``algorithm1ThenMeasurements(_:early:late:lateAfter:)`` to agree
/// bit for bit.
func expectSameBits(_ a: (bits: [UInt64], weights: ParameterSet), _ b: (bits: [UInt64], weights: ParameterSet)) {
    #expect(a.bits.count == b.bits.count && a.bits.count > 1000)
    let firstDifference = a.bits.indices.first { $0 >= b.bits.count || a.bits[$0] != b.bits[$0] }
    #expect(firstDifference == nil, "statistics differ from entry \(firstDifference ?? -1) of \(a.bits.count)")
    #expect(Set(a.weights.keys) == Set(b.weights.keys))
    for (key, value) in b.weights {
        let same = a.weights[key]?.data.map(\.bitPattern) == value.data.map(\.bitPattern)
        #expect(same, "\(key) differs")
    }
}
