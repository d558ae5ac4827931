import MagicInitStatistics

/// The paper's Figure 1 quantities for one affine layer (Krähenbühl et al. 2016, §4.1).
public struct LayerFigure1: Sendable, Codable, Equatable {
    public var layer: String
    /// `C_k`, the layer's mean change rate, with the measure the run balanced.
    public var changeRate: Double
    /// `C_k` by each measure (``InitOptions/RateMeasure``), where the pass measured it: the
    /// balanced one equals ``changeRate``; the other is shown beside it (`nil` when the
    /// pass did not compute weight gradients).
    public var equation4Rate: Double?
    public var weightGradientRate: Double?
    /// Coefficient of variation (std/mean) of the per-weight rates `C_{k,i,j}` within the
    /// layer, under eq. (4)'s independence approximation:
    /// `C_{k,i,j} ∝ sqrt(E[x(j)²] · E[y(i)²])`.
    public var changeRateCV: Double
    /// Coefficient of variation of the per-channel standard deviations of `z_k`.
    public var outputStdCV: Double
    /// Mean over channels of the channel means and standard deviations of `z_k`.
    public var meanOfMeans: Double
    public var meanOfStds: Double

    public init(layer: String, changeRate: Double, changeRateCV: Double, outputStdCV: Double, meanOfMeans: Double,
                meanOfStds: Double, equation4Rate: Double? = nil, weightGradientRate: Double? = nil) {
        self.layer = layer
        self.changeRate = changeRate
        self.changeRateCV = changeRateCV
        self.outputStdCV = outputStdCV
        self.meanOfMeans = meanOfMeans
        self.meanOfStds = meanOfStds
        self.equation4Rate = equation4Rate
        self.weightGradientRate = weightGradientRate
    }
}

public enum Figure1 {
    /// Figure-1 rows for every layer of `measurement`, with the balanced layer rates `rates`
    /// and the rates by each measure (`byMeasure`, either may be missing).
    public static func rows(_ measurement: NetworkMeasurement, rates: [Double],
                            byMeasure: [InitOptions.RateMeasure: [Double]] = [:]) -> [LayerFigure1] {
        zip(measurement.layers, rates).enumerated().map { k, pair in
            let (layer, rate) = pair
            let a = layer.inputSquares.meanSquare
            let b = layer.outputGradientSquares.meanSquare
            let std = layer.outputMoments.standardDeviation
            let mean = layer.outputMoments.mean
            return LayerFigure1(layer: layer.layer, changeRate: rate,
                                changeRateCV: productCV(a, b),
                                outputStdCV: cv(std),
                                meanOfMeans: mean.reduce(0, +) / Double(max(mean.count, 1)),
                                meanOfStds: std.reduce(0, +) / Double(max(std.count, 1)),
                                equation4Rate: byMeasure[.equation4]?[k], weightGradientRate: byMeasure[.weightGradient]?[k])
        }
    }

    /// CV of `{sqrt(a_j · b_i)}` over all pairs, from the moments of `√a` and `√b`.
    static func productCV(_ a: [Double], _ b: [Double]) -> Double {
        guard !a.isEmpty, !b.isEmpty else { return 0 }
        let meanRootA = a.map { $0.squareRoot() }.reduce(0, +) / Double(a.count)
        let meanRootB = b.map { $0.squareRoot() }.reduce(0, +) / Double(b.count)
        let meanA = a.reduce(0, +) / Double(a.count), meanB = b.reduce(0, +) / Double(b.count)
        let mean = meanRootA * meanRootB
        guard mean > 0 else { return 0 }
        return max(meanA * meanB - mean * mean, 0).squareRoot() / mean
    }

    /// std/mean of `values` (population std).
    static func cv(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let mean = values.reduce(0, +) / Double(values.count)
        guard mean != 0 else { return 0 }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
        return variance.squareRoot() / abs(mean)
    }
}
