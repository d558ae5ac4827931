import Foundation

extension InitReport {
    /// A readable table: one row per affine layer with Algorithm 1's output statistics,
    /// dead channels, Algorithm 2's factor, and the Figure-1 quantities before and after.
    public func table() -> String {
        var lines: [String] = []
        func f(_ x: Double?, _ width: Int = 9) -> String {
            guard let x else { return String(repeating: " ", count: width - 1) + "–" }
            let text = abs(x) >= 1e4 || (abs(x) < 1e-3 && x != 0) ? String(format: "%.2e", x) : String(format: "%.4f", x)
            return String(repeating: " ", count: max(0, width - text.count)) + text
        }
        func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
        // Names are never cut: each column is as wide as its widest entry, plus two spaces.
        let nameColumn = TextColumn(header: "layer", entries: layers.map(\.name))
        let typeColumn = TextColumn(header: "type", entries: layers.map(\.type))
        func name(_ s: String) -> String { nameColumn.pad(s) + "  " }
        func type(_ s: String) -> String { typeColumn.pad(s) + "  " }
        lines.append("\(network): \(images) images in chunks of \(chunkSize), mode \(options.mode.rawValue), β = \(options.bias)")
        // The change rate by both measures (§3.2): eq. (4) and the weight gradient SGD sees;
        // the one Algorithm 2 balanced is marked *.
        let balanced = algorithm2.flatMap { InitOptions.RateMeasure(rawValue: $0.rateMeasure) } ?? options.rateMeasure
        func mark(_ measure: InitOptions.RateMeasure) -> String { measure == balanced ? "*" : " " }
        lines.append(name("layer") + type("type") + "   ch  " + " σ before(min…max)    dead" + "   factor R"
                     + "   eq4 before" + "  eq4 after" + mark(.equation4) + "  wgrad before" + " wgrad after" + mark(.weightGradient)
                     + "  CV(C) after" + " CV(σ) after")
        let before = Dictionary(uniqueKeysWithValues: (figure1Before ?? []).map { ($0.layer, $0) })
        let after = Dictionary(uniqueKeysWithValues: (figure1After ?? []).map { ($0.layer, $0) })
        for layer in layers {
            let sigma = layer.before.map { f($0.stdMin, 9) + "…" + f($0.stdMax, 9).trimmingCharacters(in: .whitespaces) } ?? "        –"
            lines.append(name(layer.name) + type(layer.type) + String(format: "%5d  ", layer.channels)
                         + pad(sigma, 20) + String(format: "%6d ", layer.deadChannels.count)
                         + f(layer.betweenLayerFactor, 11)
                         + f(before[layer.name]?.equation4Rate, 13) + f(after[layer.name]?.equation4Rate, 11) + " "
                         + f(before[layer.name]?.weightGradientRate, 14) + f(after[layer.name]?.weightGradientRate, 12) + " "
                         + f(after[layer.name]?.changeRateCV, 13) + f(after[layer.name]?.outputStdCV, 12))
        }
        if let a = algorithm2 {
            lines.append("Algorithm 2 balanced the \(a.rateMeasure == InitOptions.RateMeasure.weightGradient.rawValue ? "weight-gradient change rates (what SGD sees)" : "eq. (4) change rates (the fast approximation)"); "
                         + "rates span by measure: " + InitOptions.RateMeasure.allCases.map { measure -> String in
                             let spread = a.spreadByMeasure[measure.rawValue]
                             func x(_ v: Double?) -> String { v.map { "×" + String(format: "%.4g", $0) } ?? "–" }
                             let on = spread.map { $0.afterImages > 0 && $0.afterImages < images ? " (on \($0.afterImages) verification images)" : "" } ?? ""
                             return "\(measure.rawValue) \(x(spread?.before)) → \(x(spread?.after))" + on
                         }.joined(separator: ", "))
            lines.append("Algorithm 2 (\(a.rateMeasure)): \(a.passes) measurement pass(es), \(a.modelSteps) model steps, "
                         + "rates span ×\(String(format: "%.3g", a.rateSpreadBefore)) → ×\(String(format: "%.4f", a.rateSpreadAfter))"
                         + (a.converged ? " (converged" : " (NOT converged") + (a.tolerance.map { ": every layer within \($0) of the geometric mean" + (a.converged ? "" : " is not met") } ?? "") + ")"
                         + (a.homogeneous ? "" : "; not homogeneous: \(a.nonHomogeneousLayers.joined(separator: ", ")) (re-measured each pass)"))
            if let spreads = a.spreadPerPass, spreads.count > 1 {
                lines.append("Algorithm 2 spread after each pass: " + spreads.map { "×" + String(format: "%.4g", $0) }.joined(separator: ", ")
                             + ((a.backtracks ?? 0) > 0 ? "; \(a.backtracks!) step(s) taken back (the spread did not go down), the best measured iterate kept" : ""))
            }
            if let v = a.verification {
                lines.append("Algorithm 2 verification pass (\(v.images) image(s), real forward + backward): measured change rates within "
                             + String(format: "%.2g", v.maxRateDeviation) + " of the closed form"
                             + (v.passed ? "" : " — above the tolerance " + String(format: "%.2g", v.tolerance) + ", so every image was measured again"))
            }
        }
        for (phase, seconds) in phaseSeconds.sorted(by: { $0.key < $1.key }) {
            lines.append(String(format: "%@: %.1f s", phase, seconds))
        }
        return lines.joined(separator: "\n")
    }
}
