import ArgumentParser
import Foundation
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitEngine
import MagicInitFormats
import MagicInitImages
import MagicInitSamples

/// `mi-coordinator`: initialises a CNN from data (Krähenbühl et al. 2016) and writes the
/// weights and a report.
@main
struct MICoordinator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mi-coordinator",
        abstract: "Initialise a CNN from sample images: every channel centred at β with unit variance (Algorithm 1), every layer learning at the same rate (Algorithm 2).",
        discussion: """
            With no arguments it initialises the built-in CaffeNet on the 32 sample photos shipped \
            with MagicInit and writes out/caffenet.safetensors and out/caffenet.report.json.

            Examples:
              mi-coordinator --network vgg16 --images ~/photos --output vgg16.safetensors
              mi-coordinator --network caffenet --mode between-layer --weights pretrained.safetensors
            """)

    @Option(help: "Built-in network: \(BuiltinNetworks.names.joined(separator: ", ")).")
    var network = "caffenet"

    @Option(help: "Sample images: a folder, a glob pattern, or a list file (.txt/.lst, one path per line). Default: the embedded sample photos.")
    var images: String?

    @Option(help: "Use at most this many images (in listing order).")
    var maxImages: Int?

    @Option(help: "Input preprocessing: caffe (BGR minus mean 104/117/123) or imagenet (RGB, ImageNet mean/std).")
    var preprocessing: PreprocessingPreset = .caffe

    @Option(help: "Geometry: crop (resize the shorter side, centre crop) or stretch (the reference code's plain resize).")
    var resize: ResizeChoice = .crop

    @Option(help: "Starting weights for --mode between-layer or pretrained-both (.safetensors keyed like the output).")
    var weights: String?

    @Option(help: "Where to write the weights (.safetensors). Default: out/<network>.safetensors.")
    var output: String?

    @Option(help: "Where to write the JSON report. Default: the output path with .report.json.")
    var report: String?

    @Option(help: "Images per chunk (the engine's batch size); statistics are merged chunk by chunk.")
    var chunkSize = 16

    @Option(help: "oneDNN threads (default: all cores).")
    var threads: Int?

    @Flag(help: "After writing, reload the weights from the file and check every channel of every affine layer on the images with a fresh forward pass (mean β and std 1 after Algorithm 1; mean/std = β and equal stds within each layer after both).")
    var verify = false

    @OptionGroup(title: "Algorithm options")
    var algorithm: AlgorithmOptions

    func validate() throws {
        guard BuiltinNetworks.network(named: network) != nil else {
            throw ValidationError("unknown network '\(network)'; built-in networks: \(BuiltinNetworks.names.joined(separator: ", "))")
        }
        guard chunkSize >= 1 else { throw ValidationError("--chunk-size must be at least 1") }
        if let maxImages, maxImages < 1 { throw ValidationError("--max-images must be at least 1") }
        let needsWeights = algorithm.mode == .betweenLayer || algorithm.mode == .pretrainedBoth
        if needsWeights && weights == nil { throw ValidationError("--mode \(algorithm.mode.rawValue) starts from given weights: pass --weights FILE") }
        if !needsWeights && weights != nil { throw ValidationError("--weights is only used with --mode between-layer or pretrained-both") }
        if let output, (try? ModelFormat(path: output)) != .safetensors {
            throw ValidationError("--output \(output): only .safetensors is written for built-in networks")
        }
    }

    func run() async throws {
        ProcessTuning.keepFreedMemory()
        let clock = ContinuousClock()
        let started = clock.now
        let net = BuiltinNetworks.network(named: network)!
        let outputPath = output ?? "out/\(network.lowercased()).safetensors"
        let reportPath = report ?? (outputPath.hasSuffix(".safetensors") ? String(outputPath.dropLast(".safetensors".count)) : outputPath) + ".report.json"
        let graph = try Graph(net)
        let inputShape = Array(graph.blobs[graph.inputs[0]].shape.dropFirst())

        // Images.
        let source = images ?? SamplePhotos.folder
        var paths = try ImageCollection.listImages(in: source)
        if let maxImages { paths = Array(paths.prefix(maxImages)) }
        log("[coordinator] \(net.name): \(paths.count) image(s) from \(images ?? "the embedded sample photos"), input \(describeShape(inputShape))")
        let loader = try ImageLoader(inputShape: inputShape, preprocessing: preprocessing.preset, resize: resize.mode)
        let loadStart = clock.now
        let batch = try loader.loadBatch(paths: paths) { log("[images] \($0)") }
        let loadSeconds = (clock.now - loadStart) / .seconds(1)

        // Statistics source and starting weights.
        let options = algorithm.initOptions
        let statistics = try LocalStatisticsSource(network: net, images: batch.tensor, chunkSize: min(chunkSize, batch.loaded.count),
                                                   seed: options.seed, threads: threads)
        if let weights {
            let file = try Safetensors.read(path: weights)
            let expected = Dictionary(uniqueKeysWithValues: statistics.graph.parameters.map { ($0.key, $0.shape) })
            var directives: [WeightDirective] = []
            for (key, tensor) in file.tensors {
                guard let shape = expected[key] else { throw ValidationError("\(weights): tensor '\(key)' is not a parameter of \(net.name)") }
                guard shape == tensor.shape else {
                    throw ValidationError("\(weights): tensor '\(key)' has shape \(describeShape(tensor.shape)), \(net.name) needs \(describeShape(shape))")
                }
                directives.append(.set(key: key, value: tensor))
            }
            try await statistics.apply(directives)
        }

        var (parameters, result) = try await Initializer(options: options, log: log).run(statistics, images: batch.loaded.count)
        result.phaseSeconds["load images"] = loadSeconds

        // Output: nothing non-finite is ever written; files appear whole or not at all.
        for (key, tensor) in parameters where tensor.data.contains(where: { !$0.isFinite }) {
            throw ValidationError("parameter '\(key)' came out inf or NaN; nothing was written")
        }
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: outputPath).deletingLastPathComponent(), withIntermediateDirectories: true)
        try Safetensors.write(parameters, metadata: ["format": "pt", "network": net.name, "generator": "MagicInit"], to: outputPath)
        result.phaseSeconds["total"] = (clock.now - started) / .seconds(1)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(result).write(to: URL(fileURLWithPath: reportPath), options: .atomic)
        print(result.table())
        print("wrote \(outputPath) (\(parameters.count) tensors) and \(reportPath)")
        if verify {
            try Verification.run(network: net, weightsPath: outputPath, images: batch.tensor, chunkSize: chunkSize,
                                 beta: options.bias, mode: options.mode)
        }
    }
}

enum PreprocessingPreset: String, ExpressibleByArgument, CaseIterable {
    case caffe, imagenet
    var preset: Preprocessing { self == .caffe ? .caffe : .imagenet }
}

enum ResizeChoice: String, ExpressibleByArgument, CaseIterable {
    case crop, stretch
    var mode: ResizeMode { self == .crop ? .shorterSideThenCenterCrop : .stretch }
}

/// One line per event on standard error.
@Sendable func log(_ line: String) {
    FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
}
