import Foundation
import MagicInitCore
import MagicInitStatistics

extension Initializer {
    /// Algorithm 2 (§3.2): measure, then balance the layers' change rates (by
    /// ``InitOptions/rateMeasure``) with damped corrections `r_k = (C_k / C̄)^(α/2)` undone
    /// in the consumers, iterated on the closed-form ``ChangeRateModel`` (at most
    /// ``InitOptions/modelStepsPerPass`` steps per measurement). BatchNorm statistics and
    /// Scale biases follow the factors and residual sums tie them (``ChannelScales``).
    ///
    /// * **Closed form exact** (homogeneous layers, BatchNorm, Scale, sums; η reused): the
    ///   model's solution is applied once and one real forward + backward pass over the first
    ///   chunks (``InitOptions/verificationImages``) must reproduce the rates it predicts.
    /// * **Otherwise** (LRN, sigmoid, tanh; or the verification failed): one step per
    ///   measurement pass over every image, the model's solution from the best measured
    ///   iterate; a step that does not lower the spread is taken back and halved
    ///   (backtracking); the best measured iterate is kept. Five halvings in a row without
    ///   progress end the run as diverged.
    ///
    /// At most ``InitOptions/maxIterations`` measurement passes in all, pass 1 and the
    /// verification pass included. The report gives every layer's rate by both measures
    /// before and after (the Figure-1 columns) and the spread after every pass; whether it
    /// converged is ``InitReport/Algorithm2/converged`` (the caller decides what to write).
    /// - Throws: ``AlgorithmError/diverged(reason:)`` when a pass measures a change rate
    ///   that is 0 or not finite, or no step lowers the spread;
    ///   ``AlgorithmError/vanishingChangeRate(layer:)`` when the first pass does.
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
        let scales = model.scales
        let ones = [Double](repeating: 1, count: measurement.layers.count)
        let initialByMeasure = ChangeRateModel.ratesByMeasure(graph: graph, measurement: measurement)
        let initialRates = initialByMeasure[balanced]!
        if let bad = initialRates.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw AlgorithmError.vanishingChangeRate(layer: measurement.layers[bad].layer)
        }
        report.figure1Before = Figure1.rows(measurement, rates: initialRates, byMeasure: initialByMeasure)
        let spreadBefore = Initializer.spread(initialRates)
        log("[algorithm 2] pass 1: change rates span ×\(fmt(spreadBefore)) (\(balanced.rawValue))"
            + initialByMeasure.filter { $0.key != balanced }.map { ", ×\(fmt(Initializer.spread($0.value))) by \($0.key.rawValue)" }.joined())
        if scales.hasTies {
            let pinned = scales.tiedClass.indices.filter { scales.tiedClass[$0] == nil }.map { measurement.layers[$0].layer }
            log("[algorithm 2] residual sums tie the factors of \(Set(scales.tiedClass.compactMap { $0 }).count) class(es) of layers"
                + (pinned.isEmpty ? "" : "; fixed at 1 (summed with the input or a normalised blob): \(pinned.joined(separator: ", "))"))
        }
        var cumulative = ones
        var passes = 1, steps = 0, backtracks = 0
        var spreadPerPass = [spreadBefore]
        var rates = initialRates
        // After the run, per measure: the layer rates and the images they were measured on.
        var ratesAfter = initialByMeasure
        var imagesAfter: [InitOptions.RateMeasure: Int] = [:]
        var converged = isBalanced(initialRates)
        let exact = scales.isHomogeneous && !options.freshTopGradientEachPass
        var verification: InitReport.Verification?
        var figureAfter: [LayerFigure1]?
        var clamped: [String] = []
        // The factors applied but not yet measured on every image (a failed verification).
        var unmeasured: [Double]?

        if !converged && exact {
            let solution = try model.solve(from: ones, damping: options.damping, tolerance: options.tolerance,
                                           maxSteps: options.modelStepsPerPass)
            steps += solution.steps
            try await rescale(source, model: model, by: solution.factors, clamped: &clamped)
            cumulative = solution.factors
            if passes >= options.maxIterations {
                // No pass left to check it: the model's rates (exact here, up to rounding).
                rates = solution.rates
                for (measure, _) in ratesAfter {
                    ratesAfter[measure] = ChangeRateModel(graph: graph, measurement: measurement, measure: measure).rates(factors: cumulative)
                }
                converged = solution.converged
                figureAfter = Figure1.rows(Initializer.scaled(measurement, byLayer: cumulative), rates: rates, byMeasure: ratesAfter)
                spreadPerPass.append(Initializer.spread(rates))
                log("[algorithm 2] closed form applied (\(solution.steps) model steps, rates span ×\(fmt(Initializer.spread(rates)))); --iterations \(options.maxIterations) leaves no pass to verify it")
            } else {
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
                                                       maxRateDeviation: deviation.isNaN ? .infinity : deviation,
                                                       tolerance: options.verificationTolerance)
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
                                .rates(factors: cumulative).map { $0 * global }
                        }
                        rates = ratesAfter[balanced]!
                        figureAfter = Figure1.rows(Initializer.scaled(measurement, byLayer: cumulative), rates: rates, byMeasure: ratesAfter)
                    }
                    converged = isBalanced(rates)
                    spreadPerPass.append(Initializer.spread(rates))
                    log("[algorithm 2] verification pass on \(images) image(s): measured rates within \(fmt(deviation)) of the closed form; change rates span ×\(fmt(Initializer.spread(rates)))\(converged ? ", converged" : solution.converged ? "" : " (the closest the model reaches in \(solution.steps) steps; not converged)")")
                } else {
                    log("[algorithm 2] verification pass on \(images) image(s): measured rates are \(fmt(deviation)) off the closed form (tolerance \(fmt(options.verificationTolerance))); measuring every image again")
                    unmeasured = cumulative
                }
            }
        }

        if !exact || unmeasured != nil {
            // Measured iteration: one step per pass over every image, from the best iterate.
            var best = (factors: ones, measurement: measurement, byMeasure: initialByMeasure, spread: spreadBefore)
            var stepScale = 1.0
            var tried = 0
            let smallestStep = 1.0 / 16
            while !converged && passes < options.maxIterations {
                let target: [Double]
                var modelSteps = 0
                if let pending = unmeasured {
                    target = pending
                    unmeasured = nil
                } else {
                    model = ChangeRateModel(graph: graph, measurement: best.measurement, measure: balanced)
                    let solution = try model.solve(from: ones, damping: options.damping, tolerance: options.tolerance,
                                                   maxSteps: options.modelStepsPerPass)
                    modelSteps = solution.steps
                    steps += modelSteps
                    target = zip(best.factors, solution.factors).map { $0 * pow($1, stepScale) }
                    try await rescale(source, model: model, by: zip(target, cumulative).map { $0 / $1 }, clamped: &clamped)
                    cumulative = target
                }
                let m = try await source.measure(step: options.freshTopGradientEachPass ? passes : 0, weightGradients: true)
                passes += 1
                tried += 1
                let byMeasure = ChangeRateModel.ratesByMeasure(graph: graph, measurement: m)
                let r = byMeasure[balanced]!
                if let bad = r.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
                    throw AlgorithmError.diverged(reason: "pass \(passes) measured a change rate of \(r[bad]) for layer '\(m.layers[bad].layer)' (spreads so far: \(spreadPerPass.map { "×" + fmt($0) }.joined(separator: ", "))); nothing was written")
                }
                let spread = Initializer.spread(r)
                spreadPerPass.append(spread)
                if spread < best.spread {
                    best = (target, m, byMeasure, spread)
                    converged = isBalanced(r)
                    stepScale = 1
                    log("[algorithm 2] pass \(passes): \(modelSteps) model step(s), change rates span ×\(fmt(spread))\(converged ? ", converged" : "")")
                } else {
                    backtracks += 1
                    stepScale /= 2
                    log("[algorithm 2] pass \(passes): \(modelSteps) model step(s), change rates span ×\(fmt(spread)), not below the best ×\(fmt(best.spread)): back to it, step ×\(fmt(stepScale))")
                    if stepScale < smallestStep { break }
                }
            }
            if cumulative != best.factors {
                try await rescale(source, model: model, by: zip(best.factors, cumulative).map { $0 / $1 }, clamped: &clamped)
                cumulative = best.factors
                log(tried > 0 ? "[algorithm 2] the best measured iterate (change rates span ×\(fmt(best.spread))) is kept"
                    : "[algorithm 2] --iterations \(options.maxIterations) leaves no pass to measure the step every image: taken back")
            }
            if stepScale < smallestStep && best.spread >= spreadBefore {
                throw AlgorithmError.diverged(reason: "every step tried made the change rates spread further (pass 1 ×\(fmt(spreadBefore)), then \(spreadPerPass.dropFirst().map { "×" + fmt($0) }.joined(separator: ", "))); nothing was written")
            }
            measurement = best.measurement
            ratesAfter = best.byMeasure
            imagesAfter = [:]
            rates = best.byMeasure[balanced]!
            figureAfter = nil
        }
        if !clamped.isEmpty {
            log("[algorithm 2] BatchNorm variance below eps set to 0 (the function changes slightly there): \(clamped.prefix(10).joined(separator: ", "))\(clamped.count > 10 ? " … (\(clamped.count) in all)" : "")")
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
            rateMeasure: balanced.rawValue, homogeneous: scales.isHomogeneous,
            nonHomogeneousLayers: scales.nonHomogeneousLayers, passes: passes, modelSteps: steps,
            converged: converged, rateSpreadBefore: spreadBefore, rateSpreadAfter: Initializer.spread(rates),
            spreadByMeasure: spreads, verification: verification, seconds: (clock.now - start) / .seconds(1),
            tolerance: options.tolerance, spreadPerPass: spreadPerPass, backtracks: backtracks)
    }

    /// Whether every `|C_k / C̄ − 1| ≤ tolerance`.
    func isBalanced(_ rates: [Double]) -> Bool {
        let mean = ChangeRateModel.geometricMean(rates)
        return rates.allSatisfy { abs($0 / mean - 1) <= options.tolerance }
    }

    /// Multiplies every affine layer's output by `factors` (tied) on every replica: the
    /// rows scaled, the consumers' columns undone, BatchNorm statistics and Scale biases
    /// following (``ChannelScales/normalizationDirectives(factors:parameters:)``).
    func rescale(_ source: some StatisticsSource, model: ChangeRateModel, by factors: [Double], clamped: inout [String]) async throws {
        var directives = model.directives(factors: factors)
        if !model.scales.normalizations.isEmpty {
            let (more, low) = try model.scales.normalizationDirectives(factors: factors, parameters: try await source.parameters())
            directives += more
            clamped += low
        }
        try await source.apply(directives)
    }
}
