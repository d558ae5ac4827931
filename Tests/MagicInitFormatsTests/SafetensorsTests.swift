import Foundation
import Testing
import MagicInitCore
@testable import MagicInitFormats

@Suite struct SafetensorsTests {
    static let tensors: [String: Tensor] = [
        "features.0.weight": ramp([2, 3, 1, 1], -0.5),
        "features.0.bias": ramp([2], 0.25),
        "a.scalar": Tensor(shape: [], data: [3.5]),
        "quote\"key": Tensor(shape: [1], data: [-0.0]),
    ]

    @Test func test_writeThenRead_isLossless() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.cleanup() }
        let path = scratch.file("w.safetensors")
        try Safetensors.write(Self.tensors, metadata: ["format": "pt", "producer": "MagicInit"], to: path)
        let file = try Safetensors.read(path: path)
        #expect(file.tensors == Self.tensors)
        #expect(file.metadata == ["format": "pt", "producer": "MagicInit"])
        #expect(file.tensors["quote\"key"]!.data[0].sign == .minus)
    }

    /// The streaming writer and the in-memory serializer give the same bytes; a failed
    /// write leaves neither the file nor its temporary behind.
    @Test func test_streamedWrite_equalsSerialize_failedWriteLeavesNothing() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.cleanup() }
        let path = scratch.file("s.safetensors")
        try Safetensors.write(Self.tensors, metadata: ["format": "pt"], to: path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Safetensors.serialize(Self.tensors, metadata: ["format": "pt"]))
        // Larger than the 4 MiB write buffer and not a whole number of 4 KiB blocks.
        var large = Self.tensors
        large["big"] = Tensor(shape: [1_500_001], data: (0..<1_500_001).map { Float($0 % 977) - 0.5 })
        let bigPath = scratch.file("big.safetensors")
        try Safetensors.write(large, to: bigPath)
        #expect(try Data(contentsOf: URL(fileURLWithPath: bigPath)) == Safetensors.serialize(large))
        try FileManager.default.removeItem(atPath: bigPath)
        let missing = scratch.file("no-such-folder/w.safetensors")
        let error = thrownError(FormatError.self) { try Safetensors.write(Self.tensors, to: missing) }
        guard case .unwritable(path: missing, _)? = error else { Issue.record("got \(String(describing: error))"); return }
        struct Stop: Error {}
        let aborted = scratch.file("aborted.safetensors")
        #expect(throws: Stop.self) { try FileIO.writeAtomically(to: aborted) { write in try [UInt8](repeating: 1, count: 64).withUnsafeBytes { try write($0) }; throw Stop() } }
        let left = try FileManager.default.contentsOfDirectory(atPath: (path as NSString).deletingLastPathComponent)
        #expect(left == ["s.safetensors"], "files left: \(left)")
    }

    @Test func test_layout_isLengthPrefixedAlignedSortedJSON() throws {
        let bytes = [UInt8](Safetensors.serialize(["b": Tensor(shape: [1], data: [1]), "a": Tensor(shape: [2], data: [2, 3])]))
        let n = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(n % 8 == 0)
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self).trimmingCharacters(in: .whitespaces)
        #expect(header == #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#)
        #expect(bytes.count == 8 + n + 12)
        // 2.0 in little-endian float32 is 00 00 00 40.
        #expect(Array(bytes[(8 + n)..<(8 + n + 4)]) == [0, 0, 0, 0x40])
    }

    @Test func test_otherDType_isNamedError() throws {
        let header = Array(#"{"w":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}"#.utf8)
        var bytes: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) }
        bytes += header + [0, 0x3C]
        let error = thrownError(SafetensorsError.self) { _ = try Safetensors.parse(Data(bytes), file: "h.safetensors") }
        #expect(error == .unsupportedDType(file: "h.safetensors", tensor: "w", dtype: "F16"))
    }

    @Test func test_truncatedFile_isMalformed() {
        let data = Safetensors.serialize(Self.tensors).dropLast(4)
        let error = thrownError(SafetensorsError.self) { _ = try Safetensors.parse(Data(data), file: "t.safetensors") }
        guard case .malformed("t.safetensors", _)? = error else { Issue.record("got \(String(describing: error))"); return }
    }

    @Test func test_onnxStateDict_roundTripsThroughSafetensors() throws {
        let model = try ONNXModel(path: Fixture.path("tiny-conv-gemm.onnx"))
        let dict = try model.stateDict(model.parameters)
        let back = try Safetensors.parse(Safetensors.serialize(dict)).tensors
        #expect(back == dict)
        #expect(back["classifier.3.weight"]?.shape == [7, 5])  // the ONNX (and PyTorch-export) layout
    }
}

@Suite struct ModelFormatTests {
    @Test func test_formatFollowsExtension() throws {
        #expect(try ModelFormat(path: "out/vgg.caffemodel") == .caffemodel)
        #expect(try ModelFormat(path: "model.ONNX") == .onnx)
        #expect(try ModelFormat(path: "/tmp/a.b/weights.safetensors") == .safetensors)
        #expect(ModelFormat.safetensors.fileExtension == ".safetensors")
    }

    @Test func test_unknownExtension_listsSupported() {
        let error = thrownError(FormatError.self) { _ = try ModelFormat(path: "/tmp/a.b/weights") }
        #expect(error == .unknownExtension(path: "/tmp/a.b/weights", supported: [".caffemodel", ".onnx", ".safetensors"]))
        #expect(error?.description.contains(".safetensors") == true)
    }
}
