import Foundation
import MagicInitCore
import MagicInitStatistics

/// The change rates of every affine layer as a closed-form function of per-layer output
/// factors `R_k` applied on top of a measured state, with the undo in the consumers
/// (Krähenbühl et al. 2016, §3.2; docs/DESIGN.md §2). With bottom channel scales `s(c)` from
/// ``ChannelScales`` and the global output scale set to 1 (it cancels in `C_k / C̄`):
///
///     E[x(j)²] → s(c_j)² E[x(j)²]      E[‖y‖²] → E[‖y‖²] / R_k²      W[:, j] → W[:, j] · R_k / s(c_j)
///
/// Exact for networks of homogeneous layers; an approximation (re-measured) otherwise.
public struct ChangeRateModel: Sendable {
    public let scales: ChannelScales
    public let measurement: NetworkMeasurement
    public let measure: InitOptions.RateMeasure

    public init(graph: Graph, measurement: NetworkMeasurement, measure: InitOptions.RateMeasure) {
        scales = ChannelScales(graph: graph)
        self.measurement = measurement
        self.measure = measure
    }

    /// Per affine layer `C_k = mean_j C_{k,j}` (eq. 4) or the weight-gradient ratio, for
    /// factors `factors` (all 1 = as measured).
    /// - Complexity: O(Σ_k fan-in_k) plus one pass over the graph.
    public func rates(factors: [Double]) -> [Double] {
        let bottomScales = scales.bottomScales(factors: factors)
        return measurement.layers.indices.map { k in
            let layer = measurement.layers[k]
            let r = factors[k]
            let s = bottomScales[k]
            let columns = layer.weightSquares.count
            var weightNorm = 0.0
            for j in 0..<columns {
                let f = r / s[j / layer.columnsPerChannel]
                weightNorm += layer.weightSquares[j] * f * f
            }
            guard weightNorm > 0 else { return 0 }
            switch measure {
            case .equation4:
                let yNorm = layer.outputGradientNorm.meanSquaredNorm / (r * r)
                let count = Double(max(layer.inputSquares.count, 1))
                var total = 0.0
                for j in 0..<columns {
                    let sj = s[j / layer.columnsPerChannel]
                    let x2 = layer.inputSquares.sumOfSquares[j] / count * sj * sj
                    total += (x2 * yNorm / (Double(layer.rows) * weightNorm)).squareRoot()
                }
                return total / Double(columns)
            case .weightGradient:
                var gradient = 0.0
                let chunks = Double(max(layer.weightGradientSquares.count, 1))
                for j in 0..<columns {
                    let f = s[j / layer.columnsPerChannel] / r
                    gradient += layer.weightGradientSquares.sumOfSquares[j] / chunks * f * f
                }
                return (gradient / weightNorm).squareRoot()
            }
        }
    }

    /// Whether `measurement` holds what `measure` needs (weight-gradient squares come only
    /// from passes that computed weight gradients).
    public static func canMeasure(_ measure: InitOptions.RateMeasure, from measurement: NetworkMeasurement) -> Bool {
        measure == .equation4 || measurement.layers.allSatisfy { $0.weightGradientSquares.count > 0 }
    }

    /// Per measure that `measurement` supports, the layer rates for `factors` (`nil`: as
    /// measured).
    public static func ratesByMeasure(graph: Graph, measurement: NetworkMeasurement,
                                      factors: [Double]? = nil) -> [InitOptions.RateMeasure: [Double]] {
        let ones = factors ?? [Double](repeating: 1, count: measurement.layers.count)
        var out: [InitOptions.RateMeasure: [Double]] = [:]
        for measure in InitOptions.RateMeasure.allCases where canMeasure(measure, from: measurement) {
            out[measure] = ChangeRateModel(graph: graph, measurement: measurement, measure: measure).rates(factors: ones)
        }
        return out
    }

    /// Geometric mean `C̄ = (∏ C_k)^(1/K)`.
    public static func geometricMean(_ rates: [Double]) -> Double {
        exp(rates.map { log($0) }.reduce(0, +) / Double(rates.count))
    }

    /// Result of ``solve(from:damping:tolerance:maxSteps:)``.
    public struct Solution: Sendable {
        /// The factors of the smallest spread the model reached (tied).
        public var factors: [Double]
        /// Damped steps taken on the model.
        public var steps: Int
        public var converged: Bool
        /// The model's rates for ``factors``.
        public var rates: [Double]
    }

    /// Iterates Algorithm 2's damped correction `R_k *= (C_k / C̄)^(α/2)` on the model until
    /// every `|C_k / C̄ − 1| ≤ tolerance` or `maxSteps` steps. Returns the factors of the
    /// smallest spread seen (the start included), so a model that oscillates or runs off
    /// never returns worse factors than it was given. Where residual sums tie factors
    /// (``ChannelScales/hasTies``) the per-layer step has no balanced fixed point in general
    /// (a tied class gets opposite corrections from its members), so the model is solved by
    /// least squares instead (``solveTied(from:tolerance:maxSteps:)``).
    /// - Throws: ``AlgorithmError/vanishingChangeRate(layer:)`` when a layer's rate at the
    ///   start is 0 or not finite.
    public func solve(from start: [Double], damping: Double, tolerance: Double, maxSteps: Int) throws -> Solution {
        if scales.hasTies { return try solveTied(from: start, tolerance: tolerance, maxSteps: maxSteps) }
        var factors = start
        var steps = 0
        var best: Solution?
        var bestSpread = Double.infinity
        while true {
            let c = rates(factors: factors)
            if let bad = c.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
                // The model ran off (factors so far apart that a rate under- or overflows):
                // the best factors so far stand.
                if let best { return best }
                throw AlgorithmError.vanishingChangeRate(layer: measurement.layers[bad].layer)
            }
            let mean = ChangeRateModel.geometricMean(c)
            let converged = c.allSatisfy { abs($0 / mean - 1) <= tolerance }
            let spread = (c.max() ?? 1) / (c.min() ?? 1)
            if spread < bestSpread || converged {
                bestSpread = spread
                best = Solution(factors: factors, steps: steps, converged: converged, rates: c)
            }
            if converged || steps >= maxSteps {
                best!.steps = steps
                return best!
            }
            for k in factors.indices { factors[k] *= pow(c[k] / mean, damping / 2) }
            steps += 1
        }
    }

    /// The directives that move the measured weights to `factors`: `W_k *= R_k` (rows),
    /// bias `*= R_k`, columns divided by the bottom channel scale (the undo).
    public func directives(factors: [Double]) -> [WeightDirective] {
        let bottomScales = scales.bottomScales(factors: factors)
        return measurement.layers.indices.map { k in
            let rows = measurement.layers[k].rows
            return .affine(layer: measurement.layers[k].layer, rowScale: [Double](repeating: factors[k], count: rows),
                           columnScale: bottomScales[k].map { 1 / $0 }, shift: [Double](repeating: 0, count: rows))
        }
    }
}

/// Errors of the initialisation algorithms; each names the layer.
public enum AlgorithmError: Error, Sendable, Equatable, CustomStringConvertible {
    case vanishingChangeRate(layer: String)
    case nonFinite(layer: String, what: String)
    case noAffineLayers
    case unknownLayer(String)
    case badDirective(layer: String, reason: String)
    case missingStatistics(chunks: Range<Int>)
    case tooFewImages(layer: String, images: Int)
    case diverged(reason: String)

    public var description: String {
        switch self {
        case .vanishingChangeRate(let layer):
            "layer '\(layer)': its change rate is zero or not finite (no gradient reaches it, or its weights are all zero); Algorithm 2 cannot balance it"
        case .nonFinite(let layer, let what): "layer '\(layer)': \(what) is not finite"
        case .noAffineLayers: "the network has no convolution, deconvolution or inner product layer to initialise"
        case .unknownLayer(let layer): "no layer '\(layer)' in this network"
        case .badDirective(let layer, let reason): "layer '\(layer)': \(reason)"
        case .tooFewImages(let layer, let images):
            "layer '\(layer)' has one value per image and channel, so its channel statistics need at least 2 images (got \(images)); give more images"
        case .diverged(let reason): "Algorithm 2 diverged: \(reason)"
        case .missingStatistics(let chunks): "the statistics source returned nothing for chunks \(chunks.lowerBound)…\(chunks.upperBound - 1)"
        }
    }
}
