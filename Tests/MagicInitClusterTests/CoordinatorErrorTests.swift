import Foundation
import Testing

/// Errors of the real `mi-coordinator` on bad input: they name what was wrong, exit
/// non-zero and write nothing.
@Suite struct CoordinatorErrorTests {
    @Test func test_noDecodableImage_namesTheFolderAndWritesNothing() throws {
        let coordinator = try coordinatorExecutable()
        let folder = try makeScratchFolder("undecodable")
        defer { try? FileManager.default.removeItem(at: folder) }
        let images = folder.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try Data("not a photo".utf8).write(to: images.appendingPathComponent("a.jpg"))
        try Data([0xFF, 0xD8, 0xFF]).write(to: images.appendingPathComponent("b.jpg"))
        let output = folder.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let (status, message) = try runToEnd(coordinator, ["--network", "small", "--images", images.path,
                                                      "--output", output.appendingPathComponent("w.safetensors").path])
        #expect(status == 1)
        #expect(message.contains("Error: --images \(images.path): none of its 2 image file(s) could be decoded"), "\(message)")
        #expect(message.contains("skipped \(images.path)/a.jpg") && message.contains("skipped \(images.path)/b.jpg"), "\(message)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: output.path).isEmpty)
        // An output folder that does not exist yet is made only when the weights are written.
        let fresh = folder.appendingPathComponent("fresh")
        let second = try runToEnd(coordinator, ["--network", "small", "--images", images.path,
                                           "--output", fresh.appendingPathComponent("sub/w.safetensors").path])
        #expect(second.status == 1)
        #expect(!FileManager.default.fileExists(atPath: fresh.path), "a failed run left \(fresh.path) behind")
    }

    /// A `--model` .prototxt that is not text (a binary file given by mistake) and an
    /// `--output` under a regular file: each error names the file and the reason, before
    /// any image is read.
    @Test func test_binaryPrototxtAndOutputUnderAFile_nameTheFile() throws {
        let coordinator = try coordinatorExecutable()
        let folder = try makeScratchFolder("badpaths")
        defer { try? FileManager.default.removeItem(at: folder) }
        let prototxt = folder.appendingPathComponent("net.prototxt")
        try Data([0x08, 0x96, 0x01, 0xFF, 0xFE, 0x00, 0xC3, 0x28]).write(to: prototxt)
        let binary = try runToEnd(coordinator, ["--model", prototxt.path, "--output", folder.appendingPathComponent("w.safetensors").path])
        #expect(binary.status == 1)
        #expect(binary.stderr.contains("Error: \(prototxt.path): cannot read: not UTF-8 text"), "\(binary.stderr)")
        let file = folder.appendingPathComponent("plain-file")
        try Data("x".utf8).write(to: file)
        let output = file.appendingPathComponent("sub/w.safetensors").path
        let underFile = try runToEnd(coordinator, ["--network", "small", "--output", output])
        #expect(underFile.status != 0)
        #expect(underFile.stderr.contains("--output \(output): \(file.path) is a file"), "\(underFile.stderr)")
    }

    /// A prototxt that parses but wires a layer to a blob nothing produces: the error names
    /// the file as well as the layer.
    @Test func test_miswiredPrototxt_namesTheFileAndTheLayer() throws {
        let coordinator = try coordinatorExecutable()
        let folder = try makeScratchFolder("miswired")
        defer { try? FileManager.default.removeItem(at: folder) }
        let prototxt = folder.appendingPathComponent("net.prototxt")
        try Data("""
            name: "miswired"
            input: "data"
            input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
            layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 4 kernel_size: 3 } }
            layer { name: "relu1" type: "ReLU" bottom: "conv_one" top: "relu1" }
            """.utf8).write(to: prototxt)
        let (status, message) = try runToEnd(coordinator, ["--model", prototxt.path, "--output", folder.appendingPathComponent("out/w.safetensors").path])
        #expect(status == 1)
        #expect(message.contains("Error: \(prototxt.path): layer 'relu1': bottom blob 'conv_one'"), "\(message)")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("out/w.safetensors").path))
    }
}
