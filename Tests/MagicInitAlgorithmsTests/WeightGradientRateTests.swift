import Foundation
import Testing
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitImages
import MagicInitReference
import MagicInitSamples
import MagicInitStatistics

/// The weight-gradient change rate (Krähenbühl et al. 2016, §3.2; the reference code's
/// measure, ``InitOptions/RateMeasure/weightGradient``) on the 32 embedded sample photos.
@Suite struct WeightGradientRateTests {
    /// The 32 embedded sample photos at `size`², Caffe preprocessing, `(32, 3, size, size)`.
    static func embeddedPhotos(size: Int) throws -> Tensor {
        let loader = try ImageLoader(inputShape: [3, size, size], preprocessing: .caffe)
        let paths = try ImageCollection.listImages(in: MagicInitSamples.SamplePhotos.folder)
        return try loader.loadBatch(paths: paths) { _ in }.tensor
    }

    /// Per chunk and affine layer `k`: `S_{k,c} = Σ (∂ℓ_c/∂W_k)²` (the squares of chunk c's
    /// weight gradient summed over the weights), for `steps` independent draws of η.
    static func chunkSquares(network: Network, images: Tensor, chunkSize: Int, parameters: ParameterSet,
                             steps: Int) throws -> [[Double]] {
        let collector = try ChunkCollector(network: network, chunkSize: chunkSize, threads: 2)
        try collector.add(LocalStatisticsSource.chunks(of: images, size: chunkSize))
        try collector.apply(parameters.sorted { $0.key < $1.key }.map { .set(key: $0.key, value: $0.value) })
        var rows: [[Double]] = []
        for step in 0..<steps {
            for part in try collector.measure(step: step, seed: 17, weightGradients: true) {
                rows.append(part.measurement.layers.map { $0.weightGradientSquares.sumOfSquares.reduce(0, +) })
            }
        }
        return rows
    }

    /// The estimator's expectation per image, `E‖∂ℓ_c/∂W_k‖² / n`, is the same for every
    /// chunk size `n` (the cross terms `g_i · g_i'` of two images have mean 0, see
    /// ``InitOptions/RateMeasure/weightGradient``), so chunk sizes 2 and 8 must give the same
    /// per-layer level and the same ratios between layers, within the estimator's noise.
    ///
    /// The noise is derived, not guessed: for chunk size `n` with `M` chunks (all full), the
    /// estimate of layer `k` is `m_k = mean_c S_{k,c}`; by the delta method the log ratio
    /// `log(m_k/m_0)` has variance `var_c(S_{k,c}/m_k − S_{0,c}/m_0) / M` and `log m_k` has
    /// `var_c(S_{k,c}/m_k) / M`, both estimated from the chunks themselves. The two chunk
    /// sizes share every image and its η (the diagonal terms), so their errors correlate;
    /// `sd(a − b) ≤ sd(a) + sd(b)` holds whatever the correlation. Accepted: within 4 such
    /// standard deviations.
    @Test func test_weightGradientRate_chunkSize2And8_sameLayerRatiosWithinEstimatorNoise() throws {
        let network = reluNetwork()
        let images = try Self.embeddedPhotos(size: 32)
        #expect(images.shape[0] == 32)
        // Scaled Gaussian weights (He-like per layer would do as well: the claim is about
        // the estimator, not the weights).
        let parameters = try gaussianParameters(network, std: 0.08, seed: 4)
        // 16 independent draws of η per image: 256 chunks of 2, 64 chunks of 8.
        let steps = 16
        struct Estimate { var logLevel: [Double]; var levelSD: [Double]; var logRatio: [Double]; var ratioSD: [Double] }
        func estimate(chunkSize n: Int) throws -> Estimate {
            let rows = try Self.chunkSquares(network: network, images: images, chunkSize: n, parameters: parameters, steps: steps)
            let m = Double(rows.count), layers = rows[0].count
            let mean = (0..<layers).map { k in rows.reduce(0) { $0 + $1[k] } / m / Double(n) }
            func sd(_ u: (([Double]) -> Double)) -> Double {
                let values = rows.map(u)
                let centre = values.reduce(0, +) / m
                return (values.reduce(0) { $0 + ($1 - centre) * ($1 - centre) } / (m - 1) / m).squareRoot()
            }
            return Estimate(logLevel: mean.map(log),
                            levelSD: (0..<layers).map { k in sd { $0[k] / Double(n) / mean[k] } },
                            logRatio: (0..<layers).map { k in log(mean[k] / mean[0]) },
                            ratioSD: (0..<layers).map { k in sd { $0[k] / Double(n) / mean[k] - $0[0] / Double(n) / mean[0] } })
        }
        let small = try estimate(chunkSize: 2), large = try estimate(chunkSize: 8)
        var worst = 0.0, widest = 0.0
        for k in small.logLevel.indices {
            let levelTolerance = 4 * (small.levelSD[k] + large.levelSD[k])
            let levelDifference = abs(small.logLevel[k] - large.logLevel[k])
            #expect(levelDifference <= levelTolerance,
                    "layer \(k): per-image E‖∂ℓ/∂W‖² differs by \(levelDifference) in log between chunk sizes 2 and 8 (4 sd: \(levelTolerance))")
            worst = max(worst, levelDifference / (small.levelSD[k] + large.levelSD[k]))
            guard k > 0 else { continue }
            let ratioTolerance = 4 * (small.ratioSD[k] + large.ratioSD[k])
            let ratioDifference = abs(small.logRatio[k] - large.logRatio[k])
            widest = max(widest, ratioTolerance)
            #expect(ratioDifference <= ratioTolerance,
                    "layer \(k) / layer 0: log ratio \(small.logRatio[k]) at chunk size 2, \(large.logRatio[k]) at 8 (4 sd: \(ratioTolerance))")
            worst = max(worst, ratioDifference / (small.ratioSD[k] + large.ratioSD[k]))
            // The check resolves a rate ratio off by ×1.25 (1.25² in the squares), so it can fail.
            #expect(ratioTolerance < 2 * log(1.25), "layer \(k): the noise bound \(ratioTolerance) is too wide to tell anything")
        }
        print("[rates] chunk size 2 vs 8: largest difference \(worst) estimator sd (sum of both); widest ratio tolerance \(widest) in log; ratio sd at size 8: \(large.ratioSD.map { String(format: "%.3f", $0) })")
    }

    /// Independent check in Float64: after both algorithms (weight-gradient mode, the
    /// default) on the 32 sample photos, ``Reference/backward(_:values:parameters:topGradients:)``
    /// computes each chunk's actual weight gradient `∂ℓ_c/∂W_k` for the same η, and the
    /// resulting per-layer rates `sqrt(mean_c Σ(∂ℓ_c/∂W_k)² / Σ W_k²)` span at most ×1.05.
    @Test func test_afterAlgorithm2_referenceWeightGradientRates_spanAtMost5Percent() async throws {
        let network = reluNetwork()
        let images = try Self.embeddedPhotos(size: 32)
        var options = InitOptions()
        options.seed = 23
        #expect(options.rateMeasure == .weightGradient, "the weight-gradient measure is the default")
        let chunkSize = 4
        let source = try LocalStatisticsSource(network: network, images: images, chunkSize: chunkSize, seed: options.seed)
        let (parameters, report) = try await Initializer(options: options).run(source, images: images.shape[0])

        let graph = try Graph(ChunkCollector.droppingOutputSoftmax(network), batchSize: chunkSize)
        let weights = parameters.mapValues { $0.data.map(Double.init) }
        let affine = graph.nodes.filter { $0.kind.isAffine }
        var squares = [Double](repeating: 0, count: affine.count)
        let chunks = LocalStatisticsSource.chunks(of: images, size: chunkSize)
        for chunk in chunks {
            let values = Reference.forward(graph, inputs: [chunk.images.data.map(Double.init)], parameters: weights)
            var top: [Int: [Double]] = [:]
            for output in graph.outputs {
                let perImage = graph.blobs[output].shape.dropFirst().reduce(1, *)
                top[output] = (0..<chunk.imageCount).flatMap { i in
                    Philox(seed: options.seed, stream: Philox.stream("eta", 0, chunk.firstImage + i, output)).gaussians(count: perImage).map(Double.init)
                }
            }
            let gradients = Reference.backward(graph, values: values, parameters: weights, topGradients: top)
            for (k, node) in affine.enumerated() {
                squares[k] += gradients.parameters[node.parameters[0].key]!.reduce(0) { $0 + $1 * $1 }
            }
        }
        let rates = affine.enumerated().map { k, node in
            (squares[k] / Double(chunks.count) / weights[node.parameters[0].key]!.reduce(0) { $0 + $1 * $1 }).squareRoot()
        }
        let spread = rates.max()! / rates.min()!
        print("[rates] reference weight-gradient rates after Algorithm 2: \(rates.map { String(format: "%.4g", $0) }), span ×\(spread)")
        #expect(spread <= 1.05, "reference weight-gradient rates span ×\(spread) after Algorithm 2")
        let before = try #require(report.algorithm2?.spreadByMeasure[InitOptions.RateMeasure.weightGradient.rawValue]?.before)
        #expect(before > 1.5, "after Algorithm 1 alone the rates should be apart (×\(before)), else the check proves little")
        // The report's own figures agree with the reference's.
        let reported = try #require(report.figure1After).map { try #require($0.weightGradientRate) }
        for (k, (a, b)) in zip(reported, rates).enumerated() {
            #expect(abs(a / b - 1) < 1e-3, "\(affine[k].name): report \(a), reference \(b)")
        }
        // Eq. (4)'s rates are reported beside them.
        #expect(try #require(report.figure1After).allSatisfy { ($0.equation4Rate ?? 0) > 0 })
    }
}
