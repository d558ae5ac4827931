import Foundation
import Testing
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitTestKit
import MagicInitReference
import MagicInitStatistics

/// The weight-gradient change rate (Krähenbühl et al. 2016, §3.2; the reference code's
/// measure, ``InitOptions/RateMeasure/weightGradient``) on the 32 embedded sample photos.
@Suite struct WeightGradientRateTests {
    /// Independent check in Float64: after both algorithms (weight-gradient mode, the
    /// default) on the 32 sample photos, ``Reference/backward(_:values:parameters:topGradients:)``
    /// computes each chunk's actual weight gradient `∂ℓ_c/∂W_k` for the same η, and the
    /// resulting per-layer rates `sqrt(mean_c Σ(∂ℓ_c/∂W_k)² / Σ W_k²)` span at most ×1.05.
    @Test func test_afterAlgorithm2_referenceWeightGradientRates_spanAtMost5Percent() async throws {
        let network = reluNetwork()
        let images = try embeddedPhotos(size: 32)
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
