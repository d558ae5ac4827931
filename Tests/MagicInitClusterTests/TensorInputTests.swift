import Foundation
import Testing
import MagicInitCore
import MagicInitFormats
import MagicInitSamples

/// `mi-coordinator --inputs`: preprocessed tensors in `.npy` or `.safetensors` give the same
/// weights, bit for bit, as the image files they were preprocessed from, in one process and
/// over 1 or 2 local worker processes (the chunks carry tensor slices instead of files).
@Suite(.serialized) struct TensorInputTests {
    /// Runs the real `mi-coordinator`; its exit status and standard error.
    func coordinator(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
        try runToEnd(coordinatorExecutable(), arguments)
    }

    func bytes(_ url: URL) throws -> Data { try Data(contentsOf: url) }

    @Test func test_inputsAsNpyAndSafetensors_weightsBitwiseEqualToImageFiles_1and2Workers() throws {
        let folder = try makeScratchFolder("inputs")
        defer { try? FileManager.default.removeItem(at: folder) }
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        let common = ["--network", "small", "--chunk-size", "3", "--seed", "5"]
        // The image files, preprocessed by the coordinator, and what it used, dumped.
        let fromFiles = try coordinator(common + ["--images", SamplePhotos.folder, "--max-images", "10",
                                                  "--dump-inputs", path("inputs.safetensors"), "--output", path("files.safetensors")])
        try #require(fromFiles.status == 0, "\(fromFiles.stderr)")
        let dumped = try #require(Safetensors.read(path: path("inputs.safetensors")).tensors["images"])
        #expect(dumped.shape == [10, 3, 32, 32])
        try NPY.write(dumped, to: path("inputs.npy"))

        let runs: [(name: String, arguments: [String])] = [
            ("safetensors", ["--inputs", path("inputs.safetensors")]),
            ("npy", ["--inputs", path("inputs.npy")]),
            ("npy-local1", ["--inputs", path("inputs.npy"), "--local", "1"]),
            ("npy-local2", ["--inputs", path("inputs.npy"), "--local", "2"]),
        ]
        let reference = try bytes(folder.appendingPathComponent("files.safetensors"))
        for run in runs {
            let result = try coordinator(common + run.arguments + ["--output", path("\(run.name).safetensors")])
            try #require(result.status == 0, "\(run.name): \(result.stderr)")
            #expect(try bytes(folder.appendingPathComponent("\(run.name).safetensors")) == reference,
                    "\(run.name): weights differ from the run on the image files")
        }
    }

    /// Greyscale inputs (C = 1) into a network declared for them, and inputs whose shape
    /// does not fit: the error names the file and both shapes, and nothing is written.
    @Test func test_greyscaleInputs_1and2Workers_identical_wrongShapeRefused() throws {
        let folder = try makeScratchFolder("grey")
        defer { try? FileManager.default.removeItem(at: folder) }
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        let prototxt = """
            name: "grey"
            input: "data"
            input_shape { dim: 1 dim: 1 dim: 12 dim: 12 }
            layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 6 kernel_size: 3 } }
            layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
            layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
            layer { name: "fc2" type: "InnerProduct" bottom: "pool1" top: "fc2" inner_product_param { num_output: 4 } }
            """
        try prototxt.write(toFile: path("grey.prototxt"), atomically: true, encoding: .utf8)
        // Deterministic, image-like values: smooth ramps with a per-image phase.
        var values: [Float] = []
        for n in 0..<9 { for i in 0..<144 { values.append(sin(Float(i) * 0.37 + Float(n)) + Float(i % 12) / 12) } }
        try NPY.write(Tensor(shape: [9, 1, 12, 12], data: values), to: path("grey.npy"))
        let common = ["--model", path("grey.prototxt"), "--inputs", path("grey.npy"), "--chunk-size", "2"]
        for (name, extra) in [("one", [String]()), ("two", ["--local", "2"])] {
            let result = try coordinator(common + extra + ["--output", path("\(name).safetensors")])
            try #require(result.status == 0, "\(name): \(result.stderr)")
        }
        #expect(try bytes(folder.appendingPathComponent("one.safetensors")) == bytes(folder.appendingPathComponent("two.safetensors")))
        let weights = try Safetensors.read(path: path("one.safetensors")).tensors
        #expect(weights["conv1.weight"]?.shape == [6, 1, 3, 3])

        try NPY.write(Tensor(shape: [2, 3, 12, 12]), to: path("rgb.npy"))
        let wrong = try coordinator(["--model", path("grey.prototxt"), "--inputs", path("rgb.npy"), "--output", path("out/w.safetensors")])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("\(path("rgb.npy")): inputs of shape (2, 3, 12, 12) do not fit the network's input (1, 12, 12)"), "\(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path("out")), "a failed run wrote \(path("out"))")
        let both = try coordinator(["--network", "small", "--inputs", path("rgb.npy"), "--images", SamplePhotos.folder])
        #expect(both.status != 0 && both.stderr.contains("not both"), "\(both.stderr)")
    }
}
