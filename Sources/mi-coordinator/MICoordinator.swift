import ArgumentParser
import Foundation
import MagicInitAlgorithms
import MagicInitCluster
import MagicInitCollector
import MagicInitCore
import MagicInitEngine
import MagicInitFormats
import MagicInitImages
import MagicInitSamples
import MagicInitTransport
import MagicInitWire
import MagicInitZeroMQ

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
              mi-coordinator --mode between-layer --weights pretrained.safetensors

            Exit status: 0 done; 1 an error (nothing written; Algorithm 2 diverging is one); \
            3 Algorithm 2 did not reach --tolerance (nothing written, unless --allow-unconverged); \
            4 --verify found a tolerance broken (the files are written); 64 bad arguments; \
            128 + N stopped by signal N.
            """)

    @Option(help: "Built-in network: \(BuiltinNetworks.names.joined(separator: ", ")).")
    var network = "caffenet"

    @Option(help: "A network file instead of a built-in one: a Caffe deploy .prototxt or an .onnx model.")
    var model: String?

    @Option(help: "Sample images: a folder, a glob pattern, or a list file (.txt/.lst, one path per line). Default: the embedded sample photos.")
    var images: String?

    @Option(help: "Already preprocessed inputs instead of --images: one float32 tensor (N, C, H, W) — a .safetensors file holding only it, or an .npy file — used as it is (no decoding, resizing or mean subtraction); (C, H, W) must be the network's input shape.")
    var inputs: String?

    @Option(help: "Use at most this many images (in listing order).")
    var maxImages: Int?

    @Option(help: "Input preprocessing: caffe (BGR minus mean 104/117/123) or imagenet (RGB, ImageNet mean/std). Default: a Caffe data layer's mean values, imagenet for ONNX, caffe otherwise.")
    var preprocessing: PreprocessingPreset?

    @Option(help: "Geometry: crop (resize the shorter side, centre crop; the default) or stretch (the reference code's plain resize).")
    var resize: ResizeChoice?

    @Option(help: "Starting weights for --mode between-layer or pretrained-both: .safetensors keyed like the output, or a .caffemodel. An .onnx --model brings its own.")
    var weights: String?

    @Option(help: "Where to write the weights; the extension picks the format: .safetensors (PyTorch state-dict keys), .caffemodel, or .onnx (with an .onnx --model). Default: out/<network>.safetensors.")
    var output: String?

    @Option(help: "Where to write the JSON report. Default: the output path with .report.json.")
    var report: String?

    @Option(help: "Images per chunk (the engine's batch size); statistics are merged chunk by chunk.")
    var chunkSize = 4

    @Option(help: "Threads to compute on (default: all cores; with --local, split between the workers). With two or more per process, that process splits them between two oneDNN engines working on different chunks side by side (8 threads: two engines of 4).")
    var threads: Int?

    @Option(help: "Start this many mi-worker processes on this machine (the mi-worker executable next to this one; `swift build -c release --product mi-worker` builds it) and shard the images across them.")
    var local: Int?

    @Option(help: "Wait for this many mi-worker processes (started by you, e.g. on other machines) to connect to --bind.")
    var workers: Int?

    @Option(help: "Endpoint to bind for --workers (tcp:// or ipc://). Loopback only unless --allow-remote.")
    var bind = "tcp://127.0.0.1:5555"

    @Flag(help: "Allow --bind on a non-loopback address (workers on other machines). The traffic is not encrypted.")
    var allowRemote = false

    @Option(help: "Seconds between heartbeats; a worker silent for 10 heartbeats loses its chunks to the others.")
    var heartbeat = 1.0

    @Option(help: "Also write the preprocessed input images (N, C, H, W), for checks outside MagicInit: a .safetensors file (tensor `images`) or an .npy file.")
    var dumpInputs: String?

    @Flag(help: "After writing, reload the weights from the file and measure every channel of every affine layer on the images with a fresh forward pass: mean β and std 1 after Algorithm 1; mean/std = β and equal stds within each layer after both (exact for ReLU/pooling networks, approximate across LRN, sigmoid or tanh).")
    var verify = false

    @Flag(help: "When Algorithm 2 ends with change rates further apart than --tolerance, still write its best measured iterate (the exit status stays 3). Without it nothing is written.")
    var allowUnconverged = false

    @Option(help: "After the run, measure the weights on these other images (a folder, a glob, or a list file, like --images): per layer the channel mean/std, the spread of channel stds and the change rate by both measures, printed beside the same figures on the initialisation images and stored in the report (\"heldOut\").")
    var verifyImages: String?

    @OptionGroup(title: "Algorithm options")
    var algorithm: AlgorithmOptions

    /// The signal handlers of the whole process (see ``Interrupts``).
    static let interrupts = Interrupts()

    /// ArgumentParser's entry point, with two additions: the signal handlers are installed
    /// before anything else; and a run the signal handler cancelled
    /// (``Interrupts``) ends in `CancellationError` from wherever it was computing; that is
    /// exit status 128 + the signal, already announced, not an error to print.
    static func main() async {
        _ = interrupts
        do {
            var command = try parseAsRoot()
            if var command = command as? AsyncParsableCommand { try await command.run() } else { try command.run() }
        } catch is CancellationError {
            exit(withError: Interrupts.exitCode(for: CancellationError()))
        } catch {
            exit(withError: error)
        }
    }

    func validate() throws {
        if model == nil {
            guard BuiltinNetworks.network(named: network) != nil else {
                throw ValidationError("unknown network '\(network)'; built-in networks: \(BuiltinNetworks.names.joined(separator: ", "))")
            }
        }
        guard chunkSize >= 1 else { throw ValidationError("--chunk-size must be at least 1") }
        if local != nil && workers != nil { throw ValidationError("use either --local N (workers started here) or --workers N (workers you start), not both") }
        if let n = local, n < 1 { throw ValidationError("--local must be at least 1, got \(n)") }
        if let n = workers, n < 1 { throw ValidationError("--workers must be at least 1, got \(n)") }
        guard heartbeat > 0 else { throw ValidationError("--heartbeat must be positive") }
        if let maxImages, maxImages < 1 { throw ValidationError("--max-images must be at least 1") }
        if inputs != nil {
            if images != nil { throw ValidationError("use either --images (image files) or --inputs (a preprocessed tensor), not both") }
            if verifyImages != nil {
                throw ValidationError("--verify-images takes image files, preprocessed as --images are; it cannot check a run on --inputs tensors")
            }
            if preprocessing != nil || resize != nil {
                throw ValidationError("--inputs holds preprocessed tensors, used as they are: --preprocessing and --resize apply to --images only")
            }
        }
        let needsWeights = algorithm.mode == .betweenLayer || algorithm.mode == .pretrainedBoth
        let isONNX = model.map { $0.lowercased().hasSuffix(".onnx") } ?? false
        if needsWeights && weights == nil && !isONNX { throw ValidationError("--mode \(algorithm.mode.rawValue) starts from given weights: pass --weights FILE") }
        if !needsWeights && weights != nil { throw ValidationError("--weights is only used with --mode between-layer or pretrained-both") }
        if let output {
            do { _ = try ModelFormat(path: output) } catch { throw ValidationError("--output \(output): use .safetensors, .caffemodel or .onnx") }
            if (try? ModelFormat(path: output)) == .onnx && !isONNX {
                throw ValidationError("--output \(output): an .onnx output needs an .onnx --model")
            }
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if local != nil && bind != "tcp://127.0.0.1:5555" { throw ValidationError("--bind is for --workers; --local uses a private ipc:// socket") }
    }

    func run() async throws {
        ProcessTuning.keepFreedMemory()
        // Installed first thing in `main()` and never released: a signal at the very end,
        // or while the arguments are parsed, is handled too.
        let interrupts = MICoordinator.interrupts
        let clock = ContinuousClock()
        let started = clock.now
        let input = try ModelInput.load(builtin: network, model: model)
        let net = input.network
        let outputPath = output ?? "out/\(input.name).safetensors"
        // Relative stays relative, so the paths printed at the end read alike.
        let reportPath = report ?? (outputPath as NSString).deletingPathExtension + ".report.json"
        let graph: Graph
        do {
            graph = try Graph(net)
        } catch {
            // Name the file the layer comes from.
            if let model { throw ModelInputError.invalidNetwork(model, "\(error)") }
            throw error
        }
        let inputShape = Array(graph.blobs[graph.inputs[0]].shape.dropFirst())
        guard URL(fileURLWithPath: outputPath).standardized.path != URL(fileURLWithPath: reportPath).standardized.path else {
            throw ValidationError("--report and --output are the same file (\(outputPath)); give the report its own path")
        }
        // Fail now, not after the computation, when an output cannot be written.
        for (flag, path) in [("--output", outputPath), ("--report", reportPath)] {
            try MICoordinator.checkWritable(path, flag: flag)
        }

        // Images: files decoded and preprocessed here, or a preprocessed tensor.
        let chosenPreprocessing = input.preprocessing(preprocessing)
        let resizeChoice = resize ?? .crop
        let loadStart = clock.now
        let options = algorithm.initOptions
        let plan: ImageChunks.Plan
        if let inputs {
            var tensor = try InputTensors.read(path: inputs)
            try InputTensors.check(tensor, fits: inputShape, file: inputs)
            let available = tensor.shape[0]
            if let maxImages, maxImages < available {
                tensor = Tensor(shape: [maxImages] + tensor.shape.dropFirst(), data: Array(tensor.data.prefix(maxImages * (tensor.count / available))))
            }
            plan = ImageChunks.plan(inputs: tensor, chunkSize: chunkSize)
            log("[coordinator] \(net.name): \(plan.imageCount) of the \(available) preprocessed input(s) of \(inputs), input \(describeShape(inputShape))")
        } else {
            let source = images ?? SamplePhotos.folder
            var paths = try ImageCollection.listImages(in: source)
            if let maxImages { paths = Array(paths.prefix(maxImages)) }
            log("[coordinator] \(net.name): \(paths.count) image(s) from \(images ?? "the embedded sample photos"), input \(describeShape(inputShape))")
            let loader = try ImageLoader(inputShape: inputShape, preprocessing: chosenPreprocessing, resize: resizeChoice.mode)
            do {
                plan = try ImageChunks.plan(paths: paths, chunkSize: chunkSize, loader: loader) { log($0) }
            } catch ImageError.noUsableImages(let tried) {
                throw CoordinatorError.noUsableImages(source: images ?? "the embedded sample photos", tried: tried)
            }
            if !plan.skipped.isEmpty {
                log("[coordinator] using \(plan.loaded.count) of the \(paths.count) image(s): \(plan.skipped.count) could not be decoded")
            }
        }
        let effectiveChunk = min(chunkSize, plan.imageCount)
        if let dumpInputs {
            try MICoordinator.checkWritable(dumpInputs, flag: "--dump-inputs")
            try interrupts.whileWriting {
                try MICoordinator.createFolder(of: dumpInputs, flag: "--dump-inputs")
                if dumpInputs.lowercased().hasSuffix(".npy") {
                    try NPY.write(plan.tensor, to: dumpInputs)
                } else {
                    try Safetensors.write(["images": plan.tensor], metadata: ["files": plan.loaded.joined(separator: "\n")], to: dumpInputs)
                }
            }
        }
        // --verify-images: read now, so a bad folder fails before the run.
        var heldOutPlan: ImageChunks.Plan?
        if let verifyImages {
            let heldOutPaths = try ImageCollection.listImages(in: verifyImages)
            log("[coordinator] --verify-images: \(heldOutPaths.count) image(s) from \(verifyImages)")
            let loader = try ImageLoader(inputShape: inputShape, preprocessing: chosenPreprocessing, resize: resizeChoice.mode)
            do {
                heldOutPlan = try ImageChunks.plan(paths: heldOutPaths, chunkSize: chunkSize, loader: loader) { log($0) }
            } catch ImageError.noUsableImages(let tried) {
                throw ValidationError("--verify-images \(verifyImages): none of its \(tried) image file(s) could be decoded (each is named above)")
            }
        }
        let loadSeconds = (clock.now - loadStart) / .seconds(1)

        // Statistics source: this process, or workers over ZeroMQ.
        let statistics: any StatisticsSource
        var cluster: ClusterStatisticsSource?
        var localWorkers: LocalWorkers?
        var socketDirectory: URL?
        if local != nil || workers != nil {
            let count = local ?? workers!
            let endpoint: String
            if local != nil {
                try LocalWorkers.requireWorkerExecutable()
                let directory = try LocalWorkers.makeSocketDirectory()
                socketDirectory = directory
                endpoint = "ipc://" + directory.appendingPathComponent("coordinator.sock").path
            } else {
                endpoint = bind
            }
            let router: ZMQRouter
            do {
                router = try ZMQRouter(bind: endpoint, allowNonLoopback: allowRemote)
            } catch {
                if let socketDirectory { try? FileManager.default.removeItem(at: socketDirectory) }
                switch error {
                case TransportError.nonLoopbackBind:
                    throw ValidationError("--bind \(endpoint) is not a loopback address: pass --allow-remote to accept workers from other machines (the traffic is not encrypted)")
                case TransportError.invalidEndpoint(let reason):
                    throw ValidationError("--bind \(endpoint): \(reason)")
                default:
                    throw error
                }
            }
            log("[coordinator] listening on \(router.endpoint); waiting for \(count) worker(s)")
            var settings = ClusterStatisticsSource.Settings()
            settings.heartbeatInterval = .milliseconds(Int(heartbeat * 1000))
            let p = chosenPreprocessing
            let configuration = RunConfiguration(
                model: input.wire, chunkSize: effectiveChunk, seed: options.seed, inputShape: inputShape,
                bgr: p.channelOrder == .bgr, mean: [Double(p.mean.x), Double(p.mean.y), Double(p.mean.z)],
                std: [Double(p.std.x), Double(p.std.y), Double(p.std.z)], centerCrop: resizeChoice == .crop,
                keepAffineInputs: options.keepsAffineInputs)
            let source = try ClusterStatisticsSource(transport: router, network: net, configuration: configuration, chunks: plan.assignments,
                                                     runID: UInt64.random(in: 1...UInt64.max), settings: settings, log: log,
                                                     progress: { progressLine.update($0) })
            interrupts.route(to: source.interruption)
            if let local {
                let cores = threads ?? ProcessInfo.processInfo.activeProcessorCount
                localWorkers = try LocalWorkers(count: local, endpoint: router.endpoint, threads: max(1, cores / local),
                                                socketDirectory: socketDirectory)
                // Stopping the local workers also removes their socket folder: also when a
                // signal ends the process at once, which skips the `defer` below.
                let started = localWorkers
                interrupts.atExit { started?.stop(grace: .milliseconds(200)) }
            }
            do {
                try await source.start(expectedWorkers: count)
            } catch {
                await source.shutdown(reason: "the run failed: \(error)", wait: .milliseconds(500))
                localWorkers?.stop(grace: .milliseconds(200))
                throw Interrupts.exitCode(for: error)
            }
            statistics = source
            cluster = source
        } else {
            statistics = try LocalStatisticsSource(network: net, images: plan.tensor, chunkSize: effectiveChunk,
                                                   seed: options.seed, threads: threads, keepAffineInputs: options.keepsAffineInputs,
                                                   progress: { progressLine.update($0) })
        }
        defer { localWorkers?.stop(grace: .seconds(3)) }
        var startingWeights: ParameterSet?
        if options.mode == .betweenLayer || options.mode == .pretrainedBoth, let start = try input.startingWeights(weights) {
            startingWeights = start
            let source = weights ?? model ?? "the model"
            let expected = Dictionary(uniqueKeysWithValues: statistics.graph.parameters.map { ($0.key, $0.shape) })
            let missing = expected.keys.filter { start[$0] == nil }.sorted()
            guard missing.isEmpty else {
                throw ValidationError("\(source): no tensor for \(missing.joined(separator: ", ")) of \(net.name); starting weights must be complete")
            }
            var directives: [WeightDirective] = []
            for (key, tensor) in start.sorted(by: { $0.key < $1.key }) {
                guard let shape = expected[key] else { throw ValidationError("\(source): tensor '\(key)' is not a parameter of \(net.name)") }
                guard shape == tensor.shape else {
                    throw ValidationError("\(source): tensor '\(key)' has shape \(describeShape(tensor.shape)), \(net.name) needs \(describeShape(shape))")
                }
                guard tensor.data.allSatisfy(\.isFinite) else { throw ValidationError("\(source): tensor '\(key)' contains inf or NaN") }
                directives.append(.set(key: key, value: tensor))
            }
            try await statistics.apply(directives)
        }

        let outcome: (ParameterSet, InitReport)
        do {
            outcome = try await Initializer(options: options, log: log).run(statistics, images: plan.imageCount)
            // Interrupted after the last request: still nothing is written.
            try cluster?.interruption.check()
        } catch {
            await cluster?.shutdown(reason: "the run failed: \(error)", wait: .milliseconds(500))
            if case ClusterError.interrupted = error { localWorkers?.stop(grace: .milliseconds(500)) }
            throw Interrupts.exitCode(for: error)
        }
        progressLine.finish()
        var (parameters, result) = outcome
        // Honest results: a run that did not reach its tolerance says so and exits 3.
        let unconverged = result.algorithm2.flatMap { a in
            a.converged ? nil : "Algorithm 2 did not converge: change rates span ×\(String(format: "%.4g", a.rateSpreadAfter)) after \(a.passes) pass(es) "
                + "(from ×\(String(format: "%.4g", a.rateSpreadBefore))), not every layer within \(options.tolerance) of the geometric mean"
        }
        if let unconverged, !allowUnconverged {
            print(result.table())
            _ = await cluster?.shutdown(reason: "Algorithm 2 did not converge")
            log("Error: \(unconverged); nothing was written (--allow-unconverged writes the best iterate; more --iterations or a larger --tolerance may help)")
            throw ExitCode(3)
        }
        result.phaseSeconds["load images"] = loadSeconds
        var summary: [String] = []
        if let cluster {
            let peaks = await cluster.shutdown(reason: "run complete")
            interrupts.route(to: nil)
            let traffic = await cluster.traffic
            summary.append(String(format: "wire: sent %.1f MB, received %.1f MB; statistics %.1f MB before LZ4, %.1f MB after", Double(traffic.bytesSent) / 1e6,
                                  Double(traffic.bytesReceived) / 1e6, Double(traffic.payloadUncompressed) / 1e6, Double(traffic.payloadCompressed) / 1e6))
            if !traffic.lostWorkers.isEmpty { summary.append("lost workers (their chunks were recomputed): \(traffic.lostWorkers.joined(separator: ", "))") }
            for (worker, bytes) in peaks { summary.append(String(format: "peak memory of worker %@: %.2f GB", worker, Double(bytes) / 1e9)) }
        }
        if let heldOutPlan, let verifyImages {
            let start = clock.now
            result.heldOut = try await Verification.heldOut(network: net, parameters: parameters, images: heldOutPlan.tensor,
                                                            source: verifyImages, chunkSize: chunkSize, seed: options.seed,
                                                            threads: threads, balanced: options.rateMeasure)
            result.phaseSeconds["verify images"] = (clock.now - start) / .seconds(1)
        }
        summary.append(String(format: "peak memory of the coordinator: %.2f GB", Double(peakResidentBytes()) / 1e9))

        // Output: nothing non-finite is ever written; files appear whole or not at all.
        for (key, tensor) in parameters where tensor.data.contains(where: { !$0.isFinite }) {
            throw ValidationError("parameter '\(key)' came out inf or NaN; nothing was written")
        }
        // Both files or neither: each is written beside its destination, then both renamed.
        try interrupts.whileWriting {
            let files = OutputFiles()
            do {
                try files.prepareFolders(for: outputPath)
                try files.prepareFolders(for: reportPath)
                try files.stage(outputPath) { try input.write(parameters, to: $0) }
                result.phaseSeconds["total"] = (clock.now - started) / .seconds(1)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try files.stage(encoder.encode(result), as: reportPath)
                try files.commit()
            } catch {
                files.discard()
                throw CoordinatorError.outputFailed("\(error)")
            }
        }
        print(result.table())
        Verification.printHeldOut(result)
        summary.forEach { print($0) }
        print("wrote \(outputPath) (\(parameters.count) tensors) and \(reportPath)")
        // Shown now, not after a `--verify` pass, when the output is a pipe or a file.
        fflush(nil)
        if verify {
            let passed = try await Verification.run(network: net, parameters: input.readBack(outputPath), startingWeights: startingWeights,
                                                    images: plan.tensor, settings: .init(chunkSize: chunkSize, options: options, threads: threads))
            if !passed {
                log("Error: --verify: a tolerance is broken (see above); the files are written")
                throw ExitCode(4)
            }
        }
        if let unconverged {
            log("Error: \(unconverged); the best measured iterate was written (--allow-unconverged)")
            throw ExitCode(3)
        }
    }
}

extension MICoordinator {
    /// Checks, before the run, that a file can be written at `path` by creating one there
    /// (and any missing folders) and removing it again (``OutputFiles/checkWritable(_:)``):
    /// a path under `/proc`, in a read-only folder or under a regular file fails now, not
    /// after the computation. Leaves nothing behind (a run that fails leaves no empty folder).
    /// - Throws: a `ValidationError` naming `flag` and the reason.
    static func checkWritable(_ path: String, flag: String) throws {
        do {
            try OutputFiles.checkWritable(path)
        } catch FormatError.unwritable(_, let reason) {
            throw ValidationError("\(flag) \(path): \(reason)")
        }
    }

    /// Creates the folder of `path` (and its parents) if needed, just before writing there.
    /// - Throws: a `ValidationError` naming `flag` and the reason.
    static func createFolder(of path: String, flag: String) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("\(flag) \(path): cannot create the folder \(directory.path): \((error as NSError).localizedDescription)")
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

/// The live progress line (on a terminal) and the log above it.
let progressLine = ProgressLine()

/// One line per event on standard error.
@Sendable func log(_ line: String) {
    progressLine.log(line)
}
