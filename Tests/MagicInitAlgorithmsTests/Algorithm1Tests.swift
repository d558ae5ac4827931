import Testing
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitTestKit
import MagicInitStatistics

/// Algorithm 1 (Krähenbühl et al. 2016, §3.1) on real photographs: every channel of every
/// affine layer ends with mean β and unit standard deviation, checked by an independent
/// forward pass of the written weights.
@Suite struct Algorithm1Tests {
    func runWithinLayer(_ network: Network, size: Int, chunkSize: Int) async throws -> (ParameterSet, InitReport, Tensor) {
        let images = try FixturePhotos.load(size: size)
        var options = InitOptions()
        options.mode = .withinLayer
        options.seed = 11
        let source = try LocalStatisticsSource(network: network, images: images, chunkSize: chunkSize, seed: options.seed)
        let (parameters, report) = try await Initializer(options: options).run(source, images: images.shape[0])
        return (parameters, report, images)
    }

    func expectNormalised(_ network: Network, _ parameters: ParameterSet, _ images: Tensor, beta: Double) throws {
        var worstMean = 0.0, worstStd = 0.0
        for (layer, moments) in try affineOutputMoments(network, parameters: parameters, images: images) {
            for c in 0..<moments.channelCount {
                worstMean = max(worstMean, abs(moments.mean[c] - beta))
                worstStd = max(worstStd, abs(moments.standardDeviation[c] - 1))
            }
            #expect(moments.count > 0, "\(layer) saw no data")
        }
        #expect(worstMean <= 1e-3, "largest |mean − β| = \(worstMean)")
        #expect(worstStd <= 1e-3, "largest |std − 1| = \(worstStd)")
    }

    @Test func test_smallNetwork_everyChannel_meanBetaUnitStd() async throws {
        let network = BuiltinNetworks.small()
        let (parameters, report, images) = try await runWithinLayer(network, size: 32, chunkSize: 3)
        try expectNormalised(network, parameters, images, beta: 0.1)
        #expect(report.layers.allSatisfy { $0.deadChannels.isEmpty })
        #expect(!parameters.values.contains { $0.data.contains { !$0.isFinite } })
    }

    /// Channel counts that are not a multiple of oneDNN's block (10, 12, 20): the cached
    /// activations carry padding lanes through the affine maps.
    @Test func test_paddedChannelBlocks_everyChannel_meanBetaUnitStd() async throws {
        var b = NetworkBuilder(name: "padded", shape: [3, 32, 32])
        b.conv("conv1", 10, kernel: 3, pad: 1); b.relu("relu1")
        b.maxPool("pool1", kernel: 2, stride: 2)
        b.conv("conv2", 12, kernel: 3, pad: 1); b.relu("relu2")
        b.conv("conv3", 20, kernel: 3, stride: 2, pad: 1); b.relu("relu3")
        b.innerProduct("fc4", 7)
        let network = b.network
        let (parameters, _, images) = try await runWithinLayer(network, size: 32, chunkSize: 3)
        try expectNormalised(network, parameters, images, beta: 0.1)
    }

    @Test func test_caffeNetReducedInput_everyChannel_meanBetaUnitStd() async throws {
        let network = BuiltinNetworks.caffeNet(inputSize: 67)
        let (parameters, _, images) = try await runWithinLayer(network, size: 67, chunkSize: 4)
        try expectNormalised(network, parameters, images, beta: 0.1)
    }

    /// One image gives an inner product a single value per channel: refused, naming it.
    @Test func test_oneImage_innerProductLayer_refusedWithClearError() async throws {
        let network = reluNetwork()
        let all = try FixturePhotos.load(size: 32)
        let one = Tensor(shape: [1] + all.shape.dropFirst(), data: Array(all.data[0..<(all.count / all.shape[0])]))
        let source = try LocalStatisticsSource(network: network, images: one, chunkSize: 1, seed: 1)
        await #expect(throws: AlgorithmError.tooFewImages(layer: "fc4", images: 1)) {
            _ = try await Initializer(options: InitOptions()).run(source, images: 1)
        }
    }

    @Test func test_constantChannel_noNaN_reportNamesChannel() async throws {
        // A depthwise convolution of images whose first colour channel is constant: its
        // output channel 0 is constant whatever the weights, so every redraw fails.
        var b = NetworkBuilder(name: "constant", shape: [3, 16, 16])
        b.conv("dw", 3, kernel: 3, groups: 3); b.relu("relu")
        b.innerProduct("fc", 4)
        let network = b.network
        var images = try FixturePhotos.load(size: 16)
        let plane = 16 * 16
        for n in 0..<images.shape[0] { for i in 0..<plane { images.data[n * 3 * plane + i] = 7 } }
        var options = InitOptions()
        options.mode = .withinLayer
        let source = try LocalStatisticsSource(network: network, images: images, chunkSize: 3, seed: 0)
        let (parameters, report) = try await Initializer(options: options).run(source, images: images.shape[0])
        #expect(report.layers[0].deadChannels == [0], "dead channels reported: \(report.layers[0].deadChannels)")
        #expect(report.layers[0].redraws == options.deadChannelRetries)
        #expect(!parameters.values.contains { $0.data.contains { !$0.isFinite } }, "a parameter is inf or NaN")
        let moments = try affineOutputMoments(network, parameters: parameters, images: images)
        #expect(abs(moments[0].1.mean[0] - 0.1) < 1e-4, "dead channel centred at β: \(moments[0].1.mean[0])")
        for c in 1..<3 { #expect(abs(moments[0].1.standardDeviation[c] - 1) < 1e-3) }
    }
}
