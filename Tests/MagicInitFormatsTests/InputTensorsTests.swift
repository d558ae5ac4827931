import Foundation
import Testing
import MagicInitCore
@testable import MagicInitFormats

/// `.npy` files as numpy.save writes them (fixtures from scripts/make-format-fixtures) and
/// the `--inputs` reader: values exact, every damaged or unsuitable file refused with a
/// message naming it.
@Suite struct InputTensorsTests {
    static let expected = ramp([2, 3, 4, 5], -0.5)

    @Test(arguments: ["ramp-c.npy", "ramp-fortran.npy", "ramp-big-endian.npy", "ramp-v2.npy"])
    func test_numpyWrittenFile_readsExactValuesRowMajor(_ name: String) throws {
        let tensor = try NPY.read(path: Fixture.path(name))
        #expect(tensor.shape == [2, 3, 4, 5])
        let worst = maxDifference(tensor, Self.expected)
        #expect(tensor == Self.expected, "\(name): largest difference \(worst)")
    }

    @Test func test_serialize_thenParse_isLossless_andMatchesNumpyBytes() throws {
        let tensor = Tensor(shape: [1, 2, 1, 3], data: [0, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -1.5, 3])
        let back = try NPY.parse(NPY.serialize(tensor))
        #expect(back.shape == tensor.shape)
        #expect(back.data.map(\.bitPattern) == tensor.data.map(\.bitPattern))
        // numpy.save's own bytes for the C-order fixture, header padding included.
        let numpyBytes = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("ramp-c.npy")))
        #expect(NPY.serialize(Self.expected) == numpyBytes)
    }

    @Test func test_float64File_refusedNamingDType() throws {
        let path = Fixture.path("ramp-f64.npy")
        #expect(throws: NPYError.unsupportedDType(file: path, descr: "<f8")) { try NPY.read(path: path) }
    }

    /// A truncated file, trailing bytes, a header that lies about its length or shape, and
    /// extents whose product overflows: errors, never a crash or a huge allocation.
    @Test func test_damagedFiles_refusedWithReason() throws {
        let good = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("ramp-c.npy")))
        let file = "x.npy"
        #expect(throws: NPYError.sizeMismatch(file: file, shape: [2, 3, 4, 5], bytes: 476)) { try NPY.parse(good.prefix(good.count - 4), file: file) }
        #expect(throws: NPYError.sizeMismatch(file: file, shape: [2, 3, 4, 5], bytes: 484)) { try NPY.parse(good + [0, 0, 0, 0], file: file) }
        for length in [0, 5, 9, 11, 60, 127] {
            #expect(throws: NPYError.self) { try NPY.parse(good.prefix(length), file: file) }
        }
        var longHeader = good
        longHeader[8] = 0xFF; longHeader[9] = 0xFF
        #expect(throws: NPYError.malformed(file: file, reason: "header length 65535 exceeds the file (608 bytes)")) { try NPY.parse(longHeader, file: file) }
        func withHeader(_ header: String) -> Data {
            var bytes = Array(header.utf8)
            while (10 + bytes.count + 1) % 64 != 0 { bytes.append(0x20) }
            bytes.append(0x0A)
            return Data(NPY.magic + [1, 0, UInt8(bytes.count & 0xFF), UInt8(bytes.count >> 8)] + bytes + [UInt8](repeating: 0, count: 16))
        }
        let huge = withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2), }")
        #expect(throws: NPYError.malformed(file: file, reason: "shape (4294967296, 4294967296, 2) is too large")) { try NPY.parse(huge, file: file) }
        let tooBig = withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }")
        #expect(throws: NPYError.self) { try NPY.parse(tooBig, file: file) }
        for header in ["{'descr': '<f4', 'shape': (4,), }", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }",
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", "not a dict", "{'descr': '<f4'"] {
            #expect(throws: NPYError.self, "header \(header)") { try NPY.parse(withHeader(header), file: file) }
        }
        // The 16 zero bytes are four float32 values.
        #expect(try NPY.parse(withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2, 2), }")).shape == [1, 1, 2, 2])
    }

    @Test func test_inputFiles_safetensorsAndNpy_giveTheSameTensor() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.cleanup() }
        let tensor = ramp([3, 1, 4, 5], 0.25)
        try Safetensors.write(["pixels": tensor], to: scratch.file("a.safetensors"))
        try NPY.write(tensor, to: scratch.file("a.npy"))
        #expect(try InputTensors.read(path: scratch.file("a.safetensors")) == tensor)
        #expect(try InputTensors.read(path: scratch.file("a.npy")) == tensor)
        #expect(try InputTensors.read(path: Fixture.path("ramp-fortran.npy")) == Self.expected)
    }

    /// Each unsuitable input file gets an error naming the file and what is wrong.
    @Test func test_unsuitableInputFiles_refusedNamingTheFile() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.cleanup() }
        let two = scratch.file("two.safetensors")
        try Safetensors.write(["a": ramp([1, 1, 2, 2], 0), "b": ramp([1, 1, 2, 2], 0)], to: two)
        #expect(throws: InputTensorsError.tensorCount(file: two, names: ["a", "b"])) { try InputTensors.read(path: two) }
        let rank3 = scratch.file("rank3.npy")
        try NPY.write(ramp([3, 4, 5], 0), to: rank3)
        #expect(throws: InputTensorsError.rank(file: rank3, shape: [3, 4, 5])) { try InputTensors.read(path: rank3) }
        let empty = scratch.file("empty.npy")
        try NPY.write(Tensor(shape: [0, 3, 4, 4]), to: empty)
        #expect(throws: InputTensorsError.emptyAxis(file: empty, shape: [0, 3, 4, 4])) { try InputTensors.read(path: empty) }
        let nan = scratch.file("nan.npy")
        var values = ramp([2, 1, 2, 2], 0)
        values.data[5] = .nan
        try NPY.write(values, to: nan)
        do { _ = try InputTensors.read(path: nan); Issue.record("NaN accepted") } catch {
            #expect("\(error)" == "\(nan): image 1 holds nan; inputs must be finite")
        }
        let png = scratch.file("photo.png")
        try Data([0x89, 0x50]).write(to: URL(fileURLWithPath: png))
        #expect(throws: InputTensorsError.unknownExtension(file: png)) { try InputTensors.read(path: png) }
        let f64 = scratch.file("f64.safetensors")
        var header = Array(#"{"x":{"dtype":"F64","shape":[1,1,1,1],"data_offsets":[0,8]}}"#.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        try Data(withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header + [UInt8](repeating: 0, count: 8))
            .write(to: URL(fileURLWithPath: f64))
        #expect(throws: SafetensorsError.unsupportedDType(file: f64, tensor: "x", dtype: "F64")) { try InputTensors.read(path: f64) }
        let lying = scratch.file("lying.safetensors")
        header = Array(#"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        try Data(withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header + [UInt8](repeating: 0, count: 8))
            .write(to: URL(fileURLWithPath: lying))
        #expect(throws: SafetensorsError.self) { try InputTensors.read(path: lying) }

        let tensor = ramp([2, 1, 28, 28], 0)
        #expect(throws: InputTensorsError.shapeMismatch(file: "in.npy", shape: [2, 1, 28, 28], networkInput: [3, 28, 28])) {
            try InputTensors.check(tensor, fits: [3, 28, 28], file: "in.npy")
        }
        try InputTensors.check(tensor, fits: [1, 28, 28], file: "in.npy")
    }
}
