import Foundation
import Testing
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitEngine
import MagicInitImages
import MagicInitStatistics

/// Real photographs shipped in the repo (the image module's fixtures; Public Domain / CC0).
enum SamplePhotos {
    static var folder: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("MagicInitImagesTests/Fixtures").path
    }

    static let names = [
        "000_gcompris__fishes__fish1.jpg", "028_gcompris__monuments__IndiaGate.jpg",
        "036_gcompris__monuments__eiffelTower.jpg", "049_gcompris__monuments__parthenon.jpg",
        "061_gcompris__renewable__solar1.jpg", "085_gcompris__tools__hammer1.jpg",
        "png_parthenon.png", "cmyk_hammer1.jpg",
    ]

    /// The photos at `size`², Caffe preprocessing, `(8, 3, size, size)`.
    static func load(size: Int) throws -> Tensor {
        let loader = try ImageLoader(inputShape: [3, size, size], preprocessing: .caffe)
        return try loader.loadBatch(paths: names.map { folder + "/" + $0 }) { _ in }.tensor
    }
}

/// Independent check of a network's weights: a fresh engine, one batch with every image,
/// per-channel moments of every affine layer's output.
func affineOutputMoments(_ network: Network, parameters: ParameterSet, images: Tensor) throws -> [(String, ChannelMoments)] {
    let graph = try Graph(network, batchSize: images.shape[0])
    let engine = try Engine(graph: graph)
    try engine.setParameters(parameters)
    try engine.setInput(images)
    try engine.forward()
    return try graph.nodes.filter { $0.kind.isAffine }.map { node in
        (node.name, ChannelMoments(accumulating: try engine.value(of: node.tops[0])))
    }
}

/// The network's outputs (Softmax dropped) for `images` under `parameters`.
func scores(_ network: Network, parameters: ParameterSet, images: Tensor) throws -> Tensor {
    let graph = try Graph(ChunkCollector.droppingOutputSoftmax(network), batchSize: images.shape[0])
    let engine = try Engine(graph: graph)
    try engine.setParameters(parameters)
    try engine.setInput(images)
    try engine.forward()
    return try engine.value(of: graph.outputs[0])
}

/// Gaussian `N(0, std²)` weights and zero biases for every affine layer.
func gaussianParameters(_ network: Network, std: Double, seed: UInt64 = 3) throws -> ParameterSet {
    let graph = try Graph(network)
    var out: ParameterSet = [:]
    for spec in graph.parameters where spec.role == .weight || spec.role == .bias {
        out[spec.key] = spec.role == .weight ? GaussianWeights.generate(spec: spec, seed: seed, std: std) : Tensor(shape: spec.shape)
    }
    return out
}

/// A ReLU network without LRN (homogeneous), seven affine layers: convolutions (one
/// grouped), max and average pooling, dropout and inner products, input `(3, 32, 32)`.
func reluNetwork() -> Network {
    var b = NetworkBuilder(name: "relu-net", shape: [3, 32, 32])
    b.conv("conv1", 16, kernel: 5, stride: 2, pad: 2); b.relu("relu1")
    b.maxPool("pool1", kernel: 2, stride: 2)
    b.conv("conv2", 24, kernel: 3, pad: 1, groups: 2); b.relu("relu2")
    b.conv("conv3", 32, kernel: 3, pad: 1); b.relu("relu3")
    b.conv("conv3b", 32, kernel: 3, pad: 1); b.relu("relu3b")
    b.conv("conv3c", 48, kernel: 3, pad: 1); b.relu("relu3c")
    b.averagePool("pool3", kernel: 2, stride: 2)
    b.innerProduct("fc4", 48); b.relu("relu4"); b.dropout("drop4")
    b.innerProduct("fc5", 10)
    return b.network
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
        try collector.apply([.affine(layer: node.name, rowScale: std.map { 1 / $0 }, columnScale: [],
                                     shift: std.indices.map { 0.1 - merged!.mean[$0] / std[$0] })])
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
