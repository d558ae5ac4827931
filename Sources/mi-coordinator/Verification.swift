import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitEngine
import MagicInitFormats
import MagicInitStatistics

/// `--verify`: an independent check of the written file — reload it, run a fresh engine
/// over every image, and report per affine layer how far the result is from what the mode
/// promises (docs/DESIGN.md §2, "What holds after both"). Names are never cut.
enum Verification {
    /// Largest accepted deviation of the channel statistics (modes with Algorithm 1) and of
    /// the network outputs from one global factor (`between-layer`).
    static let tolerance = 1e-3

    /// What ``run(network:parameters:startingWeights:images:chunkSize:options:threads:)`` needs from the run.
    struct Settings {
        var chunkSize: Int
        var options: InitOptions
        var threads: Int?
    }

    /// Runs the check that fits `options.mode` and prints a table and a verdict:
    /// * `within-layer`: per layer the largest `|mean − β|` and `|std − 1|` over its channels;
    /// * `both`, `pretrained-both`: the largest `|mean/std − β|` and the spread of the channel
    ///   stds (`max/min − 1`), exact only for homogeneous networks (otherwise only noted);
    /// * `between-layer`: the change rates measured again on the images (every
    ///   `|C_k / C̄ − 1|` within `--tolerance`), and the network's outputs against those of
    ///   `startingWeights` — one global factor `g` (least squares) and the largest
    ///   `|out/g − out₀| / max|out₀|` (within 1e-3; only reported where a layer is not
    ///   homogeneous, since no rescaling keeps such a function).
    /// - Parameters:
    ///   - parameters: the weights as read back from the written file.
    ///   - startingWeights: the weights Algorithm 2 started from (`between-layer`).
    ///   - images: `(N, C, H, W)`, the run's inputs.
    /// - Returns: whether every tolerance checked holds.
    /// - Throws: the engine's errors (naming the layer).
    static func run(network: Network, parameters: ParameterSet, startingWeights: ParameterSet?, images: Tensor,
                    settings: Settings) async throws -> Bool {
        let options = settings.options
        let breaking = try ChannelScales(graph: Graph(ChunkCollector.droppingOutputSoftmax(network))).nonHomogeneousLayers
        if options.mode == .betweenLayer, let startingWeights {
            return try await betweenLayer(network: network, parameters: parameters, startingWeights: startingWeights,
                                          images: images, settings: settings, breaking: breaking)
        }
        let n = images.shape[0]
        let moments = try affineMoments(network: network, parameters: parameters, images: images, chunkSize: settings.chunkSize)
        let beta = options.bias
        let afterAlgorithm1Only = options.mode == .withinLayer
        print(afterAlgorithm1Only
              ? "verify (fresh forward pass over \(n) images): largest |mean − β| and |std − 1| per layer"
              : "verify (fresh forward pass over \(n) images): largest |mean/std − β| and spread of channel stds (max/min − 1) per layer")
        let column = TextColumn(header: "worst", entries: moments.map(\.layer))
        var worst = (0.0, 0.0)
        for (layer, m) in moments {
            let mean = m.mean, std = m.standardDeviation
            let a: Double, b: Double
            if afterAlgorithm1Only {
                a = zip(mean, std).map { abs($0.0 - beta) }.max() ?? 0
                b = std.map { abs($0 - 1) }.max() ?? 0
            } else {
                a = zip(mean, std).map { abs($0.0 / $0.1 - beta) }.max() ?? 0
                b = (std.max() ?? 1) / (std.min() ?? 1) - 1
            }
            worst = (max(worst.0, a.isNaN ? .infinity : a), max(worst.1, b.isNaN ? .infinity : b))
            print("  \(column.pad(layer)) \(String(format: "%.2e", a))  \(String(format: "%.2e", b))")
        }
        print("  \(column.pad("worst")) \(String(format: "%.2e", worst.0))  \(String(format: "%.2e", worst.1))")
        if !afterAlgorithm1Only && !breaking.isEmpty {
            print("  note: \(breaking.joined(separator: ", ")) are not homogeneous, so Algorithm 2's rescaling cannot keep the layers after them exactly normalised; only the change rates are balanced there")
            return true
        }
        let passed = max(worst.0, worst.1) < tolerance
        print(passed ? "  verdict: within \(tolerance)" : "  verdict: NOT within \(tolerance)")
        return passed
    }

    /// Per affine layer, the channel moments of its output over every image (a fresh engine).
    static func affineMoments(network: Network, parameters: ParameterSet, images: Tensor, chunkSize: Int) throws -> [(layer: String, moments: ChannelMoments)] {
        var moments: [ChannelMoments?] = [], names: [String] = []
        try forEachBatch(network: network, parameters: parameters, images: images, chunkSize: chunkSize) { engine, graph, count in
            let affine = graph.nodes.filter { $0.kind.isAffine }
            if names.isEmpty {
                names = affine.map(\.name)
                moments = [ChannelMoments?](repeating: nil, count: affine.count)
            }
            for (k, node) in affine.enumerated() {
                let z = try engine.value(of: node.tops[0])
                let part = ChannelMoments(accumulating: Tensor(shape: [count] + z.shape.dropFirst(), data: Array(z.data[0..<(count * (z.count / z.shape[0]))])))
                if moments[k] == nil { moments[k] = part } else { moments[k]!.merge(part) }
            }
        }
        return names.indices.map { (names[$0], moments[$0]!) }
    }

    /// The network's outputs (a trailing Softmax dropped) for every image, `(N, …)` flattened.
    static func outputs(network: Network, parameters: ParameterSet, images: Tensor, chunkSize: Int) throws -> [Double] {
        var out: [Double] = []
        try forEachBatch(network: ChunkCollector.droppingOutputSoftmax(network), parameters: parameters, images: images,
                         chunkSize: chunkSize) { engine, graph, count in
            let z = try engine.value(of: graph.outputs[0])
            out += z.data[0..<(count * (z.count / z.shape[0]))].map(Double.init)
        }
        return out
    }

    /// Runs a fresh engine with `parameters` over `images` in batches of `chunkSize` (the
    /// last one padded with zeros); `body(engine, graph, images in this batch)` after each.
    static func forEachBatch(network: Network, parameters: ParameterSet, images: Tensor, chunkSize: Int,
                             _ body: (Engine, Graph, Int) throws -> Void) throws {
        let n = images.shape[0]
        let batch = min(chunkSize, n)
        let graph = try Graph(network, batchSize: batch)
        let engine = try Engine(graph: graph)
        try engine.setParameters(parameters.filter { key, _ in graph.parameters.contains { $0.key == key } })
        let perImage = images.count / n
        for first in stride(from: 0, to: n, by: batch) {
            let count = min(batch, n - first)
            var input = Tensor(shape: graph.blobs[graph.inputs[0]].shape)
            input.data.replaceSubrange(0..<(count * perImage), with: images.data[(first * perImage)..<((first + count) * perImage)])
            try engine.setInput(input)
            try engine.forward()
            try body(engine, graph, count)
        }
    }

    /// `between-layer`: rates balanced, outputs changed by one global factor.
    static func betweenLayer(network: Network, parameters: ParameterSet, startingWeights: ParameterSet, images: Tensor,
                             settings: Settings, breaking: [String]) async throws -> Bool {
        let options = settings.options
        let n = images.shape[0]
        let statistics = try LocalStatisticsSource(network: network, images: images, chunkSize: min(settings.chunkSize, n),
                                                   seed: options.seed, threads: settings.threads)
        let keys = Set(statistics.graph.parameters.map(\.key))
        try await statistics.apply(parameters.filter { keys.contains($0.key) }.sorted { $0.key < $1.key }
            .map { WeightDirective.set(key: $0.key, value: $0.value) })
        let measurement = try await statistics.measure(step: 0, weightGradients: true)
        let rates = ChangeRateModel(graph: statistics.graph, measurement: measurement, measure: options.rateMeasure)
            .rates(factors: [Double](repeating: 1, count: measurement.layers.count))
        let mean = ChangeRateModel.geometricMean(rates)
        let deviations = rates.map { abs($0 / mean - 1) }
        print("verify (fresh forward + backward pass over \(n) images): \(options.rateMeasure.rawValue) change rate per layer, |C/C̄ − 1| (tolerance \(options.tolerance))")
        let column = TextColumn(header: "worst", entries: measurement.layers.map(\.layer))
        for (k, layer) in measurement.layers.enumerated() {
            print("  \(column.pad(layer.layer)) \(String(format: "%.4e", rates[k]))  \(String(format: "%.2e", deviations[k]))")
        }
        let worstRate = deviations.map { $0.isNaN ? .infinity : $0 }.max() ?? 0
        let ratesPass = worstRate <= options.tolerance
        print("  \(column.pad("worst")) rates span ×\(String(format: "%.4f", (rates.max() ?? 1) / (rates.min() ?? 1))), largest |C/C̄ − 1| \(String(format: "%.2e", worstRate)): \(ratesPass ? "balanced" : "NOT balanced")")

        let before = try outputs(network: network, parameters: startingWeights, images: images, chunkSize: settings.chunkSize)
        let after = try outputs(network: network, parameters: parameters, images: images, chunkSize: settings.chunkSize)
        let (factor, deviation) = globalFactor(from: before, to: after)
        print("  outputs: one global factor \(String(format: "%.6g", factor)) against the starting weights, largest |out/g − out₀| / max|out₀| = \(String(format: "%.2e", deviation))")
        if !breaking.isEmpty {
            print("  note: \(breaking.joined(separator: ", ")) are not homogeneous, so no rescaling keeps the function; the outputs are not checked")
            print(ratesPass ? "  verdict: rates balanced" : "  verdict: rates NOT balanced within \(options.tolerance)")
            return ratesPass
        }
        let outputsPass = deviation <= tolerance
        print("  verdict: " + (ratesPass ? "rates balanced" : "rates NOT balanced within \(options.tolerance)")
              + ", " + (outputsPass ? "outputs kept up to one global factor within \(tolerance)" : "outputs NOT one global factor within \(tolerance)"))
        return ratesPass && outputsPass
    }

    /// The least-squares factor `g = ⟨after, before⟩ / ⟨before, before⟩` and the largest
    /// `|after/g − before|` relative to `max|before|` (∞ when anything is not finite or the
    /// outputs are all 0).
    static func globalFactor(from before: [Double], to after: [Double]) -> (factor: Double, deviation: Double) {
        let g = zip(after, before).reduce(0.0) { $0 + $1.0 * $1.1 } / before.reduce(0.0) { $0 + $1 * $1 }
        let largest = before.map(abs).max() ?? 0
        let worst = zip(after, before).map { abs($0 / g - $1) }.max() ?? 0
        let deviation = worst / largest
        return (g, deviation.isFinite ? deviation : .infinity)
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
        let column = TextColumn(header: "layer", entries: held.figure1.map(\.layer))
        func pad(_ name: String) -> String { column.pad(name) }
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
