import Foundation
import Testing
import MagicInitCore
import MagicInitFormats
import MagicInitSamples

/// The real `mi-coordinator`'s exit status says what happened (issue 16 part 2): a run that
/// does not reach its tolerance exits 3 and writes nothing unless `--allow-unconverged`;
/// `--verify` exits 4 when a tolerance it checks is broken; in `between-layer` mode it checks
/// the rate balance and that the outputs changed by one global factor. Names are never cut.
@Suite(.serialized) struct HonestExitTests {
    /// Runs the coordinator to the end: exit status, standard output and standard error.
    func run(_ arguments: [String], in folder: URL) throws -> (status: Int32, stdout: String, stderr: String) {
        let outFile = folder.appendingPathComponent("stdout-\(UInt32.random(in: 0 ... .max)).txt")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outFile) }
        let process = Process()
        process.executableURL = try coordinatorExecutable()
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = try FileHandle(forWritingTo: outFile)
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOf: outFile, encoding: .utf8), message)
    }

    /// A residual block with BatchNorm + Scale after each convolution, Caffe's way, with
    /// layer names longer than any fixed column.
    static let residualPrototxt = """
        name: "residual-bn"
        input: "data"
        input_shape { dim: 1 dim: 3 dim: 32 dim: 32 }
        layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 stride: 2 pad: 1 } }
        layer { name: "bn_conv1" type: "BatchNorm" bottom: "conv1" top: "conv1" batch_norm_param { use_global_stats: true } }
        layer { name: "scale_conv1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
        layer { name: "conv1_relu" type: "ReLU" bottom: "conv1" top: "conv1" }
        layer { name: "res2a_branch2a_very_long_layer_name" type: "Convolution" bottom: "conv1" top: "res2a_branch2a" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
        layer { name: "bn2a_branch2a" type: "BatchNorm" bottom: "res2a_branch2a" top: "res2a_branch2a" batch_norm_param { use_global_stats: true } }
        layer { name: "scale2a_branch2a" type: "Scale" bottom: "res2a_branch2a" top: "res2a_branch2a" scale_param { bias_term: true } }
        layer { name: "res2a_branch2a_relu" type: "ReLU" bottom: "res2a_branch2a" top: "res2a_branch2a" }
        layer { name: "res2a_branch2b" type: "Convolution" bottom: "res2a_branch2a" top: "res2a_branch2b" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
        layer { name: "bn2a_branch2b" type: "BatchNorm" bottom: "res2a_branch2b" top: "res2a_branch2b" batch_norm_param { use_global_stats: true } }
        layer { name: "scale2a_branch2b" type: "Scale" bottom: "res2a_branch2b" top: "res2a_branch2b" scale_param { bias_term: true } }
        layer { name: "res2a" type: "Eltwise" bottom: "conv1" bottom: "res2a_branch2b" top: "res2a" }
        layer { name: "res2a_relu" type: "ReLU" bottom: "res2a" top: "res2a" }
        layer { name: "pool" type: "Pooling" bottom: "res2a" top: "pool" pooling_param { pool: AVE global_pooling: true } }
        layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 10 } }
        """

    /// Between-layer from weights with BatchNorm statistics and Scale parameters far from
    /// the identity: `--verify` finds the rates balanced and the outputs one global factor
    /// of the starting ones, exits 0, and prints every name in full.
    @Test func test_betweenLayerVerify_residualBatchNorm_balancedAndOneGlobalFactor_exit0() throws {
        let folder = try makeScratchFolder("honest-bn")
        defer { try? FileManager.default.removeItem(at: folder) }
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        try Data(HonestExitTests.residualPrototxt.utf8).write(to: folder.appendingPathComponent("net.prototxt"))
        let common = ["--model", path("net.prototxt"), "--images", SamplePhotos.folder, "--max-images", "12", "--chunk-size", "4"]
        let first = try run(common + ["--mode", "within-layer", "--output", path("within.safetensors")], in: folder)
        try #require(first.status == 0, "\(first.stderr)")
        var start = try Safetensors.read(path: path("within.safetensors")).tensors
        for (key, tensor) in start {
            let n = tensor.count
            let values = (0..<n).map { Float($0) / Float(max(n - 1, 1)) }   // 0 … 1 across the channels
            if key.hasSuffix(".running_mean") { start[key] = Tensor(shape: tensor.shape, data: values.map { ($0 - 0.5) * 3 }) }
            if key.hasSuffix(".running_var") { start[key] = Tensor(shape: tensor.shape, data: values.map { 0.5 + 2 * $0 }) }
            if key.hasSuffix(".moving_average_factor") { start[key] = Tensor(shape: tensor.shape, data: [2]) }
            if key.hasPrefix("scale"), key.hasSuffix(".weight") { start[key] = Tensor(shape: tensor.shape, data: values.map { 0.5 + $0 }) }
            if key.hasPrefix("scale"), key.hasSuffix(".bias") { start[key] = Tensor(shape: tensor.shape, data: values.map { $0 - 0.4 }) }
        }
        try Safetensors.write(start, to: path("start.safetensors"))
        let result = try run(common + ["--mode", "between-layer", "--weights", path("start.safetensors"), "--verify",
                                       "--output", path("balanced.safetensors")], in: folder)
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
        #expect(result.stdout.contains("verdict: rates balanced, outputs kept up to one global factor within 0.001"), "\(result.stdout)")
        #expect(result.stdout.contains("res2a_branch2a_very_long_layer_name "), "\(result.stdout)")
        // The verification table's number columns line up under any name length.
        var numberColumn: Set<Int> = []
        for name in ["res2a_branch2a_very_long_layer_name", "fc"] {
            let row = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("  \(name) ") }, "no row for \(name)")
            numberColumn.insert(2 + name.count + row.dropFirst(2 + name.count).prefix { $0 == " " }.count)
        }
        #expect(numberColumn.count == 1, "the rate column starts at \(numberColumn)")
    }

    /// A tanh network (the closed form is not exact) asked for a tolerance no run reaches in
    /// two passes: exit 3, a message, nothing written; with `--allow-unconverged` the best
    /// iterate is written and the status is still 3. `--verify` in between-layer mode on it
    /// finds the rates not balanced: exit 4.
    @Test func test_unconverged_exit3_writesOnlyWhenAllowed_verifyBroken_exit4() throws {
        let folder = try makeScratchFolder("honest-tanh")
        defer { try? FileManager.default.removeItem(at: folder) }
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        try Data("""
            name: "tanh-net"
            input: "data"
            input_shape { dim: 1 dim: 3 dim: 32 dim: 32 }
            layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 6 kernel_size: 5 stride: 2 pad: 2 } }
            layer { name: "tanh1" type: "TanH" bottom: "conv1" top: "conv1" }
            layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2" convolution_param { num_output: 8 kernel_size: 3 stride: 2 pad: 1 } }
            layer { name: "tanh2" type: "TanH" bottom: "conv2" top: "conv2" }
            layer { name: "fc3" type: "InnerProduct" bottom: "conv2" top: "fc3" inner_product_param { num_output: 10 } }
            """.utf8).write(to: folder.appendingPathComponent("tanh.prototxt"))
        let common = ["--model", path("tanh.prototxt"), "--images", SamplePhotos.folder, "--max-images", "12", "--chunk-size", "4",
                      "--tolerance", "1e-9", "--iterations", "2"]
        let refused = try run(common + ["--output", path("out/w.safetensors")], in: folder)
        #expect(refused.status == 3, "\(refused.stderr)")
        #expect(refused.stderr.contains("Algorithm 2 did not converge: change rates span ×"), "\(refused.stderr)")
        #expect(refused.stderr.contains("nothing was written (--allow-unconverged writes the best iterate"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path("out")), "an unconverged run wrote files")

        let allowed = try run(common + ["--allow-unconverged", "--output", path("best.safetensors")], in: folder)
        #expect(allowed.status == 3, "\(allowed.stderr)")
        #expect(allowed.stderr.contains("the best measured iterate was written (--allow-unconverged)"), "\(allowed.stderr)")
        #expect(FileManager.default.fileExists(atPath: path("best.safetensors")) && FileManager.default.fileExists(atPath: path("best.report.json")))

        let verified = try run(common + ["--mode", "between-layer", "--weights", path("best.safetensors"), "--allow-unconverged",
                                         "--verify", "--output", path("again.safetensors")], in: folder)
        #expect(verified.status == 4, "\(verified.stderr)")
        #expect(verified.stdout.contains("rates NOT balanced within 1e-09"), "\(verified.stdout)")
        #expect(verified.stderr.contains("--verify: a tolerance is broken"), "\(verified.stderr)")
    }
}
