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

extension Verification {
    /// `--verify-images`: the weights a run wrote, measured on images it did not see, with
    /// one pass of Algorithm 2's measurement (forward, backward to the data and to the
    /// weights, the random linear loss with η drawn per image; Krähenbühl et al. 2016, §3.2):
    /// per affine layer the channel statistics and the change rate by both measures.
    /// - Parameters:
    ///   - parameters: the weights as written, by parameter key.
    ///   - images: the other images, `(N, 3, H, W)`, preprocessed like the run's.
    ///   - balanced: the measure the run balanced (the rows' ``LayerFigure1/changeRate``).
    /// - Throws: the engine's errors (naming the layer).
    static func heldOut(network: Network, parameters: ParameterSet, images: Tensor, source: String, chunkSize: Int,
                        seed: UInt64, threads: Int?, balanced: InitOptions.RateMeasure) async throws -> InitReport.HeldOut {
        let n = images.shape[0]
        let statistics = try LocalStatisticsSource(network: network, images: images, chunkSize: min(chunkSize, n), seed: seed, threads: threads)
        let keys = Set(statistics.graph.parameters.map(\.key))
        try await statistics.apply(parameters.filter { keys.contains($0.key) }.sorted { $0.key < $1.key }
            .map { WeightDirective.set(key: $0.key, value: $0.value) })
        let measurement = try await statistics.measure(step: 0, weightGradients: true)
        let byMeasure = ChangeRateModel.ratesByMeasure(graph: statistics.graph, measurement: measurement)
        return InitReport.HeldOut(source: source, images: n,
                                  figure1: Figure1.rows(measurement, rates: byMeasure[balanced]!, byMeasure: byMeasure),
                                  spreadByMeasure: Dictionary(uniqueKeysWithValues: byMeasure.map { ($0.key.rawValue, ($0.value.max() ?? 1) / ($0.value.min() ?? 1)) }))
    }

    /// The held-out figures beside the same figures on the initialisation images.
    static func printHeldOut(_ report: InitReport) {
        guard let held = report.heldOut else { return }
        let initial = Dictionary(uniqueKeysWithValues: (report.figure1After ?? []).map { ($0.layer, $0) })
        func f(_ x: Double?) -> String {
            guard let x, x.isFinite else { return "        –" }
            return String(format: abs(x) < 1e-3 && x != 0 ? "%9.2e" : "%9.4f", x)
        }
        print("held-out check (--verify-images \(held.source): \(held.images) image(s)), beside the \(report.images) initialisation images:")
        // Names are never cut: the first column is as wide as the longest.
        let width = max(5, held.figure1.map(\.layer.count).max() ?? 0)
        func pad(_ name: String) -> String { name + String(repeating: " ", count: width - name.count) }
        print("  " + pad("layer") + "  mean/std: init  held-out   CV(σ): init  held-out   wgrad C: init  held-out     eq4 C: init  held-out")
        for row in held.figure1 {
            let a = initial[row.layer]
            func ratio(_ r: LayerFigure1?) -> Double? { r.map { $0.meanOfMeans / $0.meanOfStds } }
            // The CV of channel stds that are all 0 (one image through an inner product) is 0/0.
            func stdCV(_ r: LayerFigure1?) -> Double? { r.flatMap { $0.meanOfStds > 0 ? $0.outputStdCV : nil } }
            print("  " + pad(row.layer)
                  + "  " + f(ratio(a)) + " " + f(ratio(row)) + "    " + f(stdCV(a)) + " " + f(stdCV(row))
                  + "      " + f(a?.weightGradientRate) + " " + f(row.weightGradientRate)
                  + "      " + f(a?.equation4Rate) + " " + f(row.equation4Rate))
        }
        for measure in InitOptions.RateMeasure.allCases {
            let before = report.algorithm2?.spreadByMeasure[measure.rawValue]
            let onInit = before?.after.map { String(format: "×%.4g", $0) } ?? "–"
            let initImages = before.map { $0.afterImages > 0 && $0.afterImages < report.images ? " (\($0.afterImages) verification images)" : "" } ?? ""
            let onHeld = held.spreadByMeasure[measure.rawValue].map { String(format: "×%.4g", $0) } ?? "–"
            print("  \(measure.rawValue) change rates span \(onInit) on the initialisation images\(initImages), \(onHeld) on the held-out images"
                  + (report.algorithm2?.rateMeasure == measure.rawValue ? " (the measure Algorithm 2 balanced)" : ""))
        }
    }
}
