import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitEngine
import MagicInitFormats
import MagicInitStatistics

/// `--verify`: an independent check of the written file — reload it, run a fresh engine
/// over every image, and report per affine layer how far the channel statistics are from
/// what the algorithms promise.
enum Verification {
    static func run(network: Network, parameters: ParameterSet, images: Tensor, chunkSize: Int, beta: Double, mode: InitOptions.Mode) throws {
        let n = images.shape[0]
        let batch = min(chunkSize, n)
        let graph = try Graph(network, batchSize: batch)
        let engine = try Engine(graph: graph)
        try engine.setParameters(parameters.filter { key, _ in graph.parameters.contains { $0.key == key } })
        let affine = graph.nodes.filter { $0.kind.isAffine }
        var moments = affine.map { ChannelMoments(channelCount: graph.blobs[$0.tops[0]].shape[1]) }
        let perImage = images.count / n
        for first in stride(from: 0, to: n, by: batch) {
            let count = min(batch, n - first)
            var input = Tensor(shape: graph.blobs[graph.inputs[0]].shape)
            input.data.replaceSubrange(0..<(count * perImage), with: images.data[(first * perImage)..<((first + count) * perImage)])
            try engine.setInput(input)
            try engine.forward()
            for (k, node) in affine.enumerated() {
                let z = try engine.value(of: node.tops[0])
                let per = z.count / z.shape[0]
                moments[k].merge(ChannelMoments(accumulating: Tensor(shape: [count] + z.shape.dropFirst(), data: Array(z.data[0..<(count * per)]))))
            }
        }
        let afterAlgorithm1Only = mode == .withinLayer
        print(afterAlgorithm1Only
              ? "verify (fresh forward pass over \(n) images): largest |mean − β| and |std − 1| per layer"
              : "verify (fresh forward pass over \(n) images): largest |mean/std − β| and spread of channel stds (max/min − 1) per layer")
        var worst = (0.0, 0.0)
        for (k, node) in affine.enumerated() {
            let mean = moments[k].mean, std = moments[k].standardDeviation
            let a: Double, b: Double
            if afterAlgorithm1Only {
                a = zip(mean, std).map { abs($0.0 - beta) }.max() ?? 0
                b = std.map { abs($0 - 1) }.max() ?? 0
            } else {
                a = zip(mean, std).map { abs($0.0 / $0.1 - beta) }.max() ?? 0
                b = (std.max() ?? 1) / (std.min() ?? 1) - 1
            }
            worst = (max(worst.0, a), max(worst.1, b))
            print("  \(node.name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(String(format: "%.2e", a))  \(String(format: "%.2e", b))")
        }
        print("  worst      \(String(format: "%.2e", worst.0))  \(String(format: "%.2e", worst.1))")
        let breaking = try ChannelScales(graph: Graph(ChunkCollector.droppingOutputSoftmax(network))).nonHomogeneousLayers
        if !afterAlgorithm1Only && !breaking.isEmpty {
            print("  note: \(breaking.joined(separator: ", ")) are not homogeneous, so Algorithm 2's rescaling cannot keep the layers after them exactly normalised; only the change rates are balanced there")
        } else {
            print(max(worst.0, worst.1) < 1e-3 ? "  verdict: within 1e-3" : "  verdict: NOT within 1e-3")
        }
    }
}
