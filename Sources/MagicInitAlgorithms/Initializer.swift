import Foundation
import MagicInitCore
import MagicInitStatistics

/// The initialisation driver: runs §3.1 (Algorithm 1) and §3.2 (Algorithm 2) of
/// Krähenbühl et al. 2016 against a ``StatisticsSource``. It decides everything from merged
/// statistics and speaks to the network only through ``WeightDirective``s, so the same
/// driver runs in one process or over workers.
public struct Initializer: Sendable {
    public let options: InitOptions
    /// One line per event (`[algorithm 1] conv1: …`); never tensor payloads.
    public let log: @Sendable (String) -> Void

    public init(options: InitOptions, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.options = options
        self.log = log
    }

    /// Runs the configured algorithms and returns the final weights and the report.
    /// - Throws: ``AlgorithmError`` (naming the layer), or whatever the source throws.
    public func run(_ source: some StatisticsSource, images: Int) async throws -> (ParameterSet, InitReport) {
        let graph = source.graph
        let affine = graph.nodes.filter { $0.kind.isAffine }
        guard !affine.isEmpty else { throw AlgorithmError.noAffineLayers }
        // An output of spatial size 1 (inner products) has a single value per image and channel.
        if images < 2, let flat = affine.first(where: { graph.blobs[$0.tops[0]].shape.dropFirst(2).reduce(1, *) == 1 }) {
            throw AlgorithmError.tooFewImages(layer: flat.name, images: images)
        }
        var report = InitReport(network: graph.network.name, images: images, chunkSize: graph.batchSize, options: options,
                                layers: affine.map { InitReport.Layer(name: $0.name, type: $0.kind.caffeType, channels: $0.parameters[0].shape[$0.kind.isDeconvolution ? 1 : 0] * ($0.kind.isDeconvolution ? $0.groups : 1)) })
        let clock = ContinuousClock()

        if options.mode != .betweenLayer {
            let start = clock.now
            try await withinLayer(source, report: &report)
            report.phaseSeconds["algorithm1"] = (clock.now - start) / .seconds(1)
        }
        if options.mode != .withinLayer {
            let start = clock.now
            try await betweenLayer(source, report: &report)
            report.phaseSeconds["algorithm2"] = (clock.now - start) / .seconds(1)
        }
        return (try await source.parameters(), report)
    }

    /// Algorithm 1 (§3.1): per affine layer in topological order, Gaussian weights (unless
    /// starting from given ones), then `W[i] /= σ_i`, `b[i] = b[i]/σ_i + β − μ_i/σ_i`.
    /// Dead channels (σ = 0) are redrawn up to ``InitOptions/deadChannelRetries`` times,
    /// then left unscaled with mean β and reported; nothing becomes inf or NaN.
    func withinLayer(_ source: some StatisticsSource, report: inout InitReport) async throws {
        let graph = source.graph
        let gaussian = options.mode == .both || options.mode == .withinLayer
        for (k, nodeIndex) in graph.nodes.indices.filter({ graph.nodes[$0].kind.isAffine }).enumerated() {
            let node = graph.nodes[nodeIndex]
            let clock = ContinuousClock()
            let start = clock.now
            if gaussian {
                try await source.apply([.gaussian(layer: node.name, seed: options.seed, std: options.gaussianStd)])
            }
            var moments = try await source.outputMoments(layer: node.name)
            report.layers[k].before = Initializer.summary(moments)
            var dead = Initializer.deadChannels(moments)
            var attempt = 0
            while !dead.isEmpty && gaussian && attempt < options.deadChannelRetries {
                attempt += 1
                log("[algorithm 1] \(node.name): \(dead.count) dead channel(s), redraw \(attempt)")
                try await source.apply([.redrawRows(layer: node.name, rows: dead, seed: options.seed, std: options.gaussianStd, attempt: attempt)])
                moments = try await source.outputMoments(layer: node.name)
                dead = Initializer.deadChannels(moments)
            }
            report.layers[k].redraws = attempt
            report.layers[k].deadChannels = dead
            let deadSet = Set(dead)
            let std = moments.standardDeviation
            let beta = options.bias
            let scale = std.indices.map { deadSet.contains($0) ? 1 : 1 / std[$0] }
            // A layer without a bias can only be rescaled: unit variance, mean left at μ/σ.
            let hasBias = node.parameters.contains { $0.role == .bias }
            let shift = std.indices.map { c in
                !hasBias ? 0 : deadSet.contains(c) ? beta - moments.mean[c] : beta - moments.mean[c] / std[c]
            }
            if !hasBias { log("[algorithm 1] \(node.name) has no bias: scaled to unit variance, not centred at β") }
            if let bad = (scale + shift).first(where: { !$0.isFinite }) {
                throw AlgorithmError.nonFinite(layer: node.name, what: "the normalisation factor \(bad)")
            }
            try await source.apply([.normalize(layer: node.name, scale: scale, shift: shift)])
            report.layers[k].after = Initializer.summary(moments.affine(scale: scale, shift: shift))
            report.layers[k].algorithm1Seconds = (clock.now - start) / .seconds(1)
            if !dead.isEmpty {
                let listed = dead.prefix(10).map(String.init).joined(separator: ", ") + (dead.count > 10 ? " … (\(dead.count) in all)" : "")
                log("[algorithm 1] \(node.name): channel(s) \(listed) stay constant after \(attempt) redraw(s); left unscaled at mean β")
            }
            log("[algorithm 1] \(node.name) normalised (\(std.count) channels, σ from \(fmt(std.min() ?? 0)) to \(fmt(std.max() ?? 0)))")
        }
    }

    /// Algorithm 2 (§3.2): measure, then balance the layers' change rates (by
    /// ``InitOptions/rateMeasure``) with damped corrections `r_k = (C_k / C̄)^(α/2)` undone
    /// in the consumers. The corrections are iterated on the closed-form ``ChangeRateModel``
    /// between measurement passes. For a network of homogeneous layers (with η reused) the
    /// model is exact: one real forward + backward pass over the first chunks
    /// (``InitOptions/verificationImages``) must then reproduce the rates it predicts for
    /// those chunks; if it does not, or the network is not homogeneous, passes over every
    /// image repeat (at most ``InitOptions/maxIterations``) until converged.
    ///
    /// The report gives every layer's rate by both measures before and after (the Figure-1
    /// columns). The first pass computes weight gradients only when they are balanced (eq. 4's
    /// pass reuses Algorithm 1's forward pass); every later pass computes them, so with eq. 4
    /// the weight-gradient rates after come from the verification images (or the last pass).
    func betweenLayer(_ source: some StatisticsSource, report: inout InitReport) async throws {
        let graph = source.graph
        let clock = ContinuousClock()
        let start = clock.now
        let balanced = options.rateMeasure
        let chunkCount = source.chunkCount
        let verificationChunks = options.verificationImages == 0 ? chunkCount
            : min(chunkCount, (options.verificationImages + graph.batchSize - 1) / graph.batchSize)
        // Pass 1 merged in two groups, so the verification chunks' own statistics are at hand.
        let groups = verificationChunks < chunkCount ? [0..<verificationChunks, verificationChunks..<chunkCount] : [0..<chunkCount]
        let pass1 = try await source.measure(step: 0, weightGradients: balanced == .weightGradient, groups: groups)
        let head = pass1[0]
        var measurement = head
        if pass1.count > 1 { measurement.merge(pass1[1]) }
        var model = ChangeRateModel(graph: graph, measurement: measurement, measure: balanced)
        let ones = [Double](repeating: 1, count: measurement.layers.count)
        let initialByMeasure = ChangeRateModel.ratesByMeasure(graph: graph, measurement: measurement)
        let initialRates = initialByMeasure[balanced]!
        report.figure1Before = Figure1.rows(measurement, rates: initialRates, byMeasure: initialByMeasure)
        let spreadBefore = Initializer.spread(initialRates)
        log("[algorithm 2] pass 1: change rates span ×\(fmt(spreadBefore)) (\(balanced.rawValue))"
            + initialByMeasure.filter { $0.key != balanced }.map { ", ×\(fmt(Initializer.spread($0.value))) by \($0.key.rawValue)" }.joined())
        var cumulative = ones
        var passes = 1, steps = 0
        var rates = initialRates
        // After the run, per measure: the layer rates and the images they were measured on.
        var ratesAfter = initialByMeasure
        var imagesAfter: [InitOptions.RateMeasure: Int] = [:]
        var converged = false
        let homogeneous = model.scales.isHomogeneous
        var verification: InitReport.Verification?
        var figureAfter: [LayerFigure1]?
        while passes <= options.maxIterations {
            let solution = try model.solve(from: ones, damping: options.damping, tolerance: options.tolerance,
                                           maxSteps: options.modelStepsPerPass)
            steps += solution.steps
            if solution.steps == 0 { converged = true; break }
            try await source.apply(model.directives(factors: solution.factors))
            for k in cumulative.indices { cumulative[k] *= solution.factors[k] }
            if homogeneous && !options.freshTopGradientEachPass && verification == nil {
                // The closed form is exact here: check it on the verification chunks.
                let check = try await source.measure(step: 0, weightGradients: true, groups: [0..<verificationChunks])[0]
                passes += 1
                let predicted = ChangeRateModel(graph: graph, measurement: head, measure: balanced).rates(factors: cumulative)
                let measured = ChangeRateModel(graph: graph, measurement: check, measure: balanced).rates(factors: ones)
                // The model leaves the global output scale at 1: compare relative rates C_k / C̄.
                let measuredMean = ChangeRateModel.geometricMean(measured), predictedMean = ChangeRateModel.geometricMean(predicted)
                let deviation = zip(measured, predicted).map { abs(($0 / measuredMean) / ($1 / predictedMean) - 1) }.max() ?? 0
                let images = min(verificationChunks * graph.batchSize, report.images)
                verification = InitReport.Verification(images: images, chunks: verificationChunks,
                                                       maxRateDeviation: deviation, tolerance: options.verificationTolerance)
                if deviation <= options.verificationTolerance {
                    if verificationChunks == chunkCount {
                        // The check covered every image: report what it measured.
                        measurement = check
                        rates = measured
                        ratesAfter = ChangeRateModel.ratesByMeasure(graph: graph, measurement: check)
                    } else {
                        // Absolute rates: the model's, times the global scale the check measured,
                        // per measure; a measure pass 1 did not compute comes from the check alone.
                        for measure in InitOptions.RateMeasure.allCases {
                            let checked = ChangeRateModel(graph: graph, measurement: check, measure: measure).rates(factors: ones)
                            guard ChangeRateModel.canMeasure(measure, from: measurement) else {
                                ratesAfter[measure] = checked
                                imagesAfter[measure] = images
                                continue
                            }
                            let global = ChangeRateModel.geometricMean(checked) / ChangeRateModel.geometricMean(
                                ChangeRateModel(graph: graph, measurement: head, measure: measure).rates(factors: cumulative))
                            ratesAfter[measure] = ChangeRateModel(graph: graph, measurement: measurement, measure: measure)
                                .rates(factors: solution.factors).map { $0 * global }
                        }
                        rates = ratesAfter[balanced]!
                        figureAfter = Figure1.rows(Initializer.scaled(measurement, byLayer: solution.factors), rates: rates, byMeasure: ratesAfter)
                    }
                    let mean = ChangeRateModel.geometricMean(rates)
                    converged = rates.allSatisfy { abs($0 / mean - 1) <= options.tolerance }
                    log("[algorithm 2] verification pass on \(images) image(s): measured rates within \(fmt(deviation)) of the closed form; change rates span ×\(fmt(Initializer.spread(rates)))\(converged ? ", converged" : "")")
                    break
                }
                log("[algorithm 2] verification pass on \(images) image(s): measured rates are \(fmt(deviation)) off the closed form (tolerance \(fmt(options.verificationTolerance))); measuring every image again")
            }
            measurement = try await source.measure(step: options.freshTopGradientEachPass ? passes : 0, weightGradients: true)
            passes += 1
            model = ChangeRateModel(graph: graph, measurement: measurement, measure: balanced)
            ratesAfter = ChangeRateModel.ratesByMeasure(graph: graph, measurement: measurement)
            imagesAfter = [:]
            rates = ratesAfter[balanced]!
            let mean = ChangeRateModel.geometricMean(rates)
            converged = rates.allSatisfy { abs($0 / mean - 1) <= options.tolerance }
            log("[algorithm 2] pass \(passes): \(solution.steps) model step(s), change rates span ×\(fmt(Initializer.spread(rates)))\(converged ? ", converged" : "")")
            if converged || (homogeneous && solution.converged) { break }
        }
        for k in cumulative.indices { report.layers[k].betweenLayerFactor = cumulative[k] }
        report.figure1After = figureAfter ?? Figure1.rows(measurement, rates: rates, byMeasure: ratesAfter)
        var spreads: [String: InitReport.MeasureSpread] = [:]
        for measure in InitOptions.RateMeasure.allCases {
            spreads[measure.rawValue] = InitReport.MeasureSpread(
                before: initialByMeasure[measure].map(Initializer.spread), after: ratesAfter[measure].map(Initializer.spread),
                afterImages: ratesAfter[measure] == nil ? 0 : imagesAfter[measure] ?? report.images)
        }
        if let other = ratesAfter.first(where: { $0.key != balanced }) {
            log("[algorithm 2] after: \(other.key.rawValue) rates span ×\(fmt(Initializer.spread(other.value)))"
                + (imagesAfter[other.key].map { " (on the \($0) verification image(s))" } ?? ""))
        }
        report.algorithm2 = InitReport.Algorithm2(
            rateMeasure: balanced.rawValue, homogeneous: homogeneous,
            nonHomogeneousLayers: model.scales.nonHomogeneousLayers, passes: passes, modelSteps: steps,
            converged: converged, rateSpreadBefore: spreadBefore, rateSpreadAfter: Initializer.spread(rates),
            spreadByMeasure: spreads, verification: verification, seconds: (clock.now - start) / .seconds(1))
    }

    /// `measurement` with every affine layer's output multiplied by its factor (what the
    /// corrections do to a homogeneous network, docs/DESIGN.md §2): moments scaled; the Figure-1
    /// coefficients of variation do not change.
    static func scaled(_ measurement: NetworkMeasurement, byLayer factors: [Double]) -> NetworkMeasurement {
        var out = measurement
        for k in out.layers.indices {
            let c = out.layers[k].outputMoments.channelCount
            out.layers[k].outputMoments = out.layers[k].outputMoments.affine(scale: [Double](repeating: factors[k], count: c),
                                                                             shift: [Double](repeating: 0, count: c))
        }
        return out
    }

    /// Channels with zero (or float32-noise-level) standard deviation.
    static func deadChannels(_ moments: ChannelMoments) -> [Int] {
        let std = moments.standardDeviation
        return std.indices.filter { c in !(std[c] > 1e-6 * abs(moments.mean[c])) || std[c] == 0 }
    }

    static func summary(_ moments: ChannelMoments) -> InitReport.ChannelSummary {
        let std = moments.standardDeviation
        return .init(meanMin: moments.mean.min() ?? 0, meanMax: moments.mean.max() ?? 0,
                     stdMin: std.min() ?? 0, stdMax: std.max() ?? 0)
    }

    /// Largest over smallest rate.
    static func spread(_ rates: [Double]) -> Double { (rates.max() ?? 1) / (rates.min() ?? 1) }
}

/// A number for log lines: 4 significant digits (`1.243e+06`, `1.019`).
func fmt(_ x: Double) -> String { String(format: "%.4g", x) }

extension LayerKind {
    var isDeconvolution: Bool { if case .deconvolution = self { true } else { false } }
}

extension Graph.Node {
    /// Groups of a (de)convolution, 1 otherwise.
    var groups: Int {
        switch kind {
        case .convolution(let p), .deconvolution(let p): p.groups
        default: 1
        }
    }
}
