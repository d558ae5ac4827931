import Testing
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitTestKit
import MagicInitStatistics

/// Algorithm 2 (Krähenbühl et al. 2016, §3.2) on real photographs.
@Suite struct Algorithm2Tests {
    func rateSpread(_ report: InitReport) -> (before: Double, after: Double) {
        (report.algorithm2!.rateSpreadBefore, report.algorithm2!.rateSpreadAfter)
    }

    @Test(arguments: InitOptions.RateMeasure.allCases)
    func test_reluNetwork_fromPlainGaussian_ratesWithin5Percent_functionPreservedUpToScale(_ measure: InitOptions.RateMeasure) async throws {
        let network = reluNetwork()
        let images = try FixturePhotos.load(size: 32)
        let start = try gaussianParameters(network, std: 0.01)
        var options = InitOptions()
        options.mode = .betweenLayer
        options.rateMeasure = measure
        let source = try LocalStatisticsSource(network: network, images: images, chunkSize: 3, seed: 5)
        try await source.apply(start.map { WeightDirective.set(key: $0.key, value: $0.value) })
        let (parameters, report) = try await Initializer(options: options).run(source, images: images.shape[0])
        let (before, after) = rateSpread(report)
        // Seven layers from N(0, 0.01) span ×67 (eq. 4) and ×8 (weight gradient) here.
        #expect(before > 5, "a plain N(0, 0.01) start should leave the rates far apart, got ×\(before)")
        #expect(after <= 1.05, "largest/smallest change rate after Algorithm 2: ×\(after)")
        #expect(report.algorithm2!.homogeneous)

        // The network function changes only by one global factor.
        let original = try scores(network, parameters: start, images: images)
        let rescaled = try scores(network, parameters: parameters, images: images)
        let scale = zip(rescaled.data, original.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            / original.data.reduce(0.0) { $0 + Double($1) * Double($1) }
        let largest = original.data.map { abs(Double($0)) }.max()!
        let error = zip(rescaled.data, original.data).map { abs(Double($0) / scale - Double($1)) }.max()! / largest
        #expect(error <= 1e-4, "output differs beyond a global scale \(scale): relative error \(error)")
    }

    /// Verification on every image (16 covers both chunks of 4), on the first
    /// chunk only, and with a zero tolerance that no real pass meets: then every image is
    /// measured again and iteration goes on by measurement.
    @Test(arguments: [(16, 1e-3), (4, 1e-3), (4, 0)])
    func test_bothAlgorithms_smallNetwork_meanOverStdIsBeta_ratesBalanced(verificationImages: Int, tolerance: Double) async throws {
        let network = reluNetwork()
        let images = try FixturePhotos.load(size: 32)
        var options = InitOptions()
        options.seed = 21
        options.verificationImages = verificationImages
        options.verificationTolerance = tolerance
        let source = try LocalStatisticsSource(network: network, images: images, chunkSize: 4, seed: options.seed)
        let (parameters, report) = try await Initializer(options: options).run(source, images: images.shape[0])
        #expect(rateSpread(report).after <= 1.05, "rates span ×\(rateSpread(report).after)")
        let a = try #require(report.algorithm2)
        let v = try #require(a.verification, "a homogeneous network gets a verification pass")
        #expect(v.images == min(verificationImages, 8) && v.chunks == (verificationImages == 4 ? 1 : 2))
        // The closed form is exact up to float32 rounding (and Algorithm 1's cached pass).
        #expect(v.maxRateDeviation < 1e-4, "verification: rates \(v.maxRateDeviation) off the closed form")
        #expect(v.passed == (tolerance > 0))
        #expect(a.passes == (tolerance > 0 ? 2 : 3), "passes: \(a.passes)")
        let after = try #require(report.figure1After)
        #expect(after.allSatisfy { $0.changeRate > 0 && $0.outputStdCV < 1e-3 })
        // After both algorithms each layer's output is scaled by its own factor s_k:
        // per channel mean/std = β and equal stds within a layer (docs/DESIGN.md §2).
        for (layer, moments) in try affineOutputMoments(network, parameters: parameters, images: images) {
            let std = moments.standardDeviation
            for c in 0..<moments.channelCount {
                #expect(abs(moments.mean[c] / std[c] - 0.1) < 1e-3, "\(layer) channel \(c): mean/std = \(moments.mean[c] / std[c])")
                #expect(abs(std[c] / std[0] - 1) < 1e-3, "\(layer) channel \(c): std \(std[c]) vs \(std[0])")
            }
        }
    }
}
