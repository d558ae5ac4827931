import ArgumentParser
import Foundation
import MagicInitCore
import MagicInitEngine
import MagicInitImages

/// Benchmarks the oneDNN engine on real photographs: forward, and forward + backward to
/// the data, for VGG-16 and CaffeNet; prints images/s, achieved GFLOP/s (2 FLOP per
/// multiply–add), peak resident memory and where the time goes per layer.
@main
struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mi-bench-engine",
        abstract: "Measure the CNN engine's forward and forward+backward-data speed on real photos.")

    @Option(name: .long, help: "Built-in networks to measure, comma-separated (caffenet, vgg16, small).")
    var networks = "vgg16,caffenet"

    @Option(name: .long, help: "A folder, glob or list file of JPEG/PNG photos.")
    var photos: String

    @Option(name: .long, help: "Images per batch.")
    var batch = 16

    @Option(name: .long, help: "Timed repetitions of each pass (the median is reported).")
    var repeats = 3

    @Option(name: .long, help: "oneDNN threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "Convolution algorithm: direct or auto (oneDNN may pick Winograd).")
    var algorithm: ConvolutionAlgorithm = .direct

    @Option(name: .long, help: "How many of the slowest layers to list.")
    var topLayers = 8

    mutating func run() throws {
        let threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        setEngineThreadCount(threads)
        print("engine benchmark: batch \(batch), \(threads) threads, convolution \(algorithm.rawValue), \(repeats) timed repeats (median)")
        for name in networks.split(separator: ",").map(String.init) {
            guard let network = BuiltinNetworks.network(named: name) else {
                throw ValidationError("unknown network '\(name)'; built-in: \(BuiltinNetworks.names.joined(separator: ", "))")
            }
            try measure(network)
        }
        print(String(format: "peak resident memory of this process: %.2f GB", Double(peakResidentBytes()) / 1e9))
    }

    func measure(_ network: Network) throws {
        let graph = try Graph(network, batchSize: batch)
        let input = graph.blobs[graph.inputs[0]].shape
        let loader = try ImageLoader(inputShape: Array(input.dropFirst()), preprocessing: .caffe)
        let paths = Array(try ImageCollection.listImages(in: photos).prefix(batch))
        let images = try loader.loadBatch(paths: paths) { print("warning: \($0)") }
        guard images.loaded.count == batch else {
            throw ValidationError("need \(batch) decodable photos in \(photos), found \(images.loaded.count)")
        }

        let setupStart = ContinuousClock.now
        let engine = try Engine(graph: graph, options: .init(convolutionAlgorithm: algorithm))
        try engine.setParameters(heInitialisation(graph))
        try engine.setInput(images.tensor)
        let setup = seconds(since: setupStart)

        let output = graph.outputs[0]
        let topGradient = Tensor(shape: graph.blobs[output].shape,
                                 data: Philox(seed: 1, stream: Philox.stream("bench top gradient")).gaussians(count: graph.blobs[output].shape.reduce(1, *)))
        try engine.forward()                       // warm-up: first-touch of every buffer
        try engine.setGradient(topGradient, of: output)
        try engine.backward(weights: false)

        var forwardTimes: [Double] = [], backwardTimes: [Double] = []
        engine.profiling = true
        engine.resetTimings()
        for _ in 0..<repeats {
            let start = ContinuousClock.now
            try engine.forward()
            let forwardDone = ContinuousClock.now
            try engine.backward(weights: false)
            forwardTimes.append((forwardDone - start) / .seconds(1))
            backwardTimes.append(seconds(since: forwardDone))
        }
        let forward = median(forwardTimes)
        let both = median(zip(forwardTimes, backwardTimes).map(+))

        // Backward to the data costs one forward's multiply-adds per affine layer, except
        // layers reading a network input (no gradient is taken there).
        let inputs = Set(graph.inputs)
        let backwardMACs = graph.nodes.filter { $0.kind.isAffine && !inputs.contains($0.bottoms[0]) }
            .reduce(0) { $0 + macs(of: $1, in: graph) }
        let forwardFLOP = 2 * Double(graph.forwardMultiplyAdds)
        let bothFLOP = forwardFLOP + 2 * Double(backwardMACs)

        print("")
        print("\(network.name) at \(input[2])×\(input[3]), batch \(batch) (\(String(format: "%.1f", forwardFLOP / Double(batch) / 1e9)) GFLOP/image forward); setup \(String(format: "%.1f", setup)) s")
        print(String(format: "  forward:                  %7.3f s/batch  %7.1f images/s  %6.1f GFLOP/s", forward, Double(batch) / forward, forwardFLOP / forward / 1e9))
        print(String(format: "  forward + backward-data:  %7.3f s/batch  %7.1f images/s  %6.1f GFLOP/s", both, Double(batch) / both, bothFLOP / both / 1e9))
        let total = engine.timings.reduce(0) { $0 + $1.forward + $1.backward }
        print("  slowest layers (share of forward + backward-data time, \(repeats) passes):")
        for t in engine.timings.sorted(by: { $0.forward + $0.backward > $1.forward + $1.backward }).prefix(topLayers) {
            print(String(format: "    %-10@ %-13@ fwd %6.3f s  bwd %6.3f s  %5.1f %%", t.layer as NSString, t.type as NSString,
                         t.forward / Double(repeats), t.backward / Double(repeats), 100 * (t.forward + t.backward) / total))
        }
    }

    /// Multiply–adds of one affine node for the whole batch.
    func macs(of node: Graph.Node, in graph: Graph) -> Int {
        let weights = node.parameters[0].count
        switch node.kind {
        case .convolution: let y = graph.blobs[node.tops[0]].shape; return y[0] * y[2] * y[3] * weights
        case .deconvolution: let x = graph.blobs[node.bottoms[0]].shape; return x[0] * x[2] * x[3] * weights
        default: return graph.batchSize * weights
        }
    }

    /// He et al. 2015 Gaussian weights (`std = √(2 / fan-in)`), zero biases: keeps the
    /// activations of a ReLU network in range so the timing is representative.
    func heInitialisation(_ graph: Graph) -> ParameterSet {
        var parameters: ParameterSet = [:]
        for (i, spec) in graph.parameters.enumerated() {
            if spec.role == .weight && spec.shape.count >= 2 {
                let fanIn = spec.shape.dropFirst().reduce(1, *)
                parameters[spec.key] = Tensor(shape: spec.shape, data: Philox(seed: 1, stream: UInt64(i)).gaussians(count: spec.count, std: (2.0 / Double(fanIn)).squareRoot()))
            }
        }
        return parameters
    }
}

extension ConvolutionAlgorithm: ExpressibleByArgument {}

func seconds(since start: ContinuousClock.Instant) -> Double { (ContinuousClock.now - start) / .seconds(1) }

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
