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
