import Foundation
import MagicInitCore

/// NumPy's `.npy` format (what `numpy.save` writes), for float32 arrays.
///
/// Layout (NumPy Enhancement Proposal 1, format versions 1.0–3.0): the magic `\x93NUMPY`,
/// the major and minor version bytes, the header length (UInt16 little-endian in 1.0,
/// UInt32 in 2.0 and 3.0), the header — a Python dict literal
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (N, C, H, W), }` padded with spaces
/// and ended by a newline (ASCII; UTF-8 in 3.0) — then the values, nothing after them.
/// MagicInit reads `'<f4'` and `'>f4'` (byte-swapped), in C or Fortran order (transposed to
/// row-major), and writes `'<f4'` in C order, version 1.0.
public enum NPY {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    /// Reads a `.npy` file of float32 values.
    /// - Returns: the array, row-major, with the file's shape.
    /// - Throws: ``FormatError/unreadable(path:reason:)``, or ``NPYError`` naming the file.
    public static func read(path: String) throws -> Tensor {
        try parse(FileIO.read(path), file: path)
    }

    /// Parses the bytes of a `.npy` file (`file` names it in errors). Every size is checked
    /// against the bytes present before anything is allocated.
    public static func parse(_ data: Data, file: String = "<npy>") throws(NPYError) -> Tensor {
        func malformed(_ reason: String) -> NPYError { .malformed(file: file, reason: reason) }
        let bytes = data.startIndex == 0 ? data : Data(data)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw malformed("it does not start with the .npy magic \\x93NUMPY")
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw malformed("\(bytes.count) bytes is too short for a version \(major) header") }
            headerLength = (8..<12).reduce(0) { $0 | Int(bytes[$1]) << (8 * ($1 - 8)) }
            headerStart = 12
        default:
            throw malformed("format version \(major).\(bytes[7]); MagicInit reads versions 1.0 to 3.0")
        }
        guard headerLength <= bytes.count - headerStart else {
            throw malformed("header length \(headerLength) exceeds the file (\(bytes.count) bytes)")
        }
        let dataStart = headerStart + headerLength
        guard let text = String(bytes: bytes[headerStart..<dataStart], encoding: major == 3 ? .utf8 : .ascii) else {
            throw malformed("the header is not \(major == 3 ? "UTF-8" : "ASCII") text")
        }
        let header: Header
        do { header = try Header(parsing: text) } catch { throw malformed("header \(text.trimmingCharacters(in: .whitespacesAndNewlines)): \(error.reason)") }

        let swapped: Bool
        switch header.descr {
        case "<f4": swapped = false
        case ">f4": swapped = true
        default: throw .unsupportedDType(file: file, descr: header.descr)
        }
        guard let count = Tensor.checkedCount(of: header.shape), count <= Int.max / 4 else {
            throw malformed("shape \(describeShape(header.shape)) is too large")
        }
        let available = bytes.count - dataStart
        guard available == 4 * count else {
            throw .sizeMismatch(file: file, shape: header.shape, bytes: available)
        }
        var values = bytes.withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count {
                    let bits = raw.loadUnaligned(fromByteOffset: dataStart + 4 * i, as: UInt32.self)
                    buffer[i] = Float(bitPattern: swapped ? UInt32(bigEndian: bits) : UInt32(littleEndian: bits))
                }
                initialized = count
            }
        }
        if header.fortranOrder && header.shape.count > 1 { values = rowMajor(fromColumnMajor: values, shape: header.shape) }
        return Tensor(shape: header.shape, data: values)
    }

    /// The `.npy` bytes of `tensor`: version 1.0, `'<f4'`, C order. Used for `--dump-inputs`
    /// with an `.npy` path.
    public static func serialize(_ tensor: Tensor) -> Data {
        let shape = tensor.shape.count == 1 ? "(\(tensor.shape[0]),)" : "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        var header = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }".utf8)
        // Magic + version + length + header + newline, padded to a multiple of 64 bytes.
        while (10 + header.count + 1) % 64 != 0 { header.append(0x20) }
        header.append(0x0A)
        var data = Data(magic + [1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)] + header)
        #if _endian(little)
        tensor.data.withUnsafeBytes { data.append(contentsOf: $0) }
        #else
        tensor.data.map { $0.bitPattern.littleEndian }.withUnsafeBytes { data.append(contentsOf: $0) }
        #endif
        return data
    }

    /// Writes `tensor` to `path` atomically (see ``serialize(_:)``).
    /// - Throws: ``FormatError/unwritable(path:reason:)``.
    public static func write(_ tensor: Tensor, to path: String) throws {
        try FileIO.writeAtomically(serialize(tensor), to: path)
    }

    /// Column-major (Fortran-order) values of `shape` reordered row-major.
    static func rowMajor(fromColumnMajor values: [Float], shape: [Int]) -> [Float] {
        // Column-major strides: the first axis varies fastest.
        var columnStrides = [Int](repeating: 1, count: shape.count)
        for axis in 1..<shape.count { columnStrides[axis] = columnStrides[axis - 1] * shape[axis - 1] }
        var out = [Float](repeating: 0, count: values.count)
        var index = [Int](repeating: 0, count: shape.count)
        for i in 0..<values.count {
            var source = 0
            for axis in 0..<shape.count { source += index[axis] * columnStrides[axis] }
            out[i] = values[source]
            // Advance the row-major multi-index (last axis fastest).
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return out
    }

    /// The header dict: `descr`, `fortran_order` and `shape`, all three required.
    struct Header {
        var descr: String
        var fortranOrder: Bool
        var shape: [Int]

        struct ParseError: Error { var reason: String }

        /// Parses the Python dict literal NumPy writes (strings in single or double quotes,
        /// `True`/`False`, tuples of non-negative integers).
        init(parsing text: String) throws(ParseError) {
            var p = LiteralParser(Array(text.unicodeScalars))
            let dict = try p.dictionary()
            p.skipSpace()
            guard p.atEnd else { throw ParseError(reason: "unexpected text after the dict") }
            guard case .string(let descr)? = dict["descr"] else { throw ParseError(reason: "no 'descr' string (a structured dtype is not supported)") }
            guard case .bool(let fortran)? = dict["fortran_order"] else { throw ParseError(reason: "no 'fortran_order' True/False") }
            guard case .tuple(let shape)? = dict["shape"] else { throw ParseError(reason: "no 'shape' tuple") }
            let unknown = dict.keys.filter { !["descr", "fortran_order", "shape"].contains($0) }
            guard unknown.isEmpty else { throw ParseError(reason: "unknown key(s) \(unknown.sorted().joined(separator: ", "))") }
            self.descr = descr
            self.fortranOrder = fortran
            self.shape = shape
        }
    }

    /// A recursive-descent reader of the small Python literal subset NumPy headers use.
    struct LiteralParser {
        enum Value { case string(String), bool(Bool), tuple([Int]) }
        let scalars: [Unicode.Scalar]
        var position = 0
        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

        var atEnd: Bool { position == scalars.count }

        mutating func skipSpace() {
            while position < scalars.count, scalars[position].properties.isWhitespace { position += 1 }
        }

        mutating func expect(_ c: Unicode.Scalar) throws(Header.ParseError) {
            skipSpace()
            guard position < scalars.count, scalars[position] == c else {
                throw Header.ParseError(reason: "expected '\(c)' at character \(position)")
            }
            position += 1
        }

        /// Whether the next non-space character is `c` (consumed if so).
        mutating func take(_ c: Unicode.Scalar) -> Bool {
            skipSpace()
            guard position < scalars.count, scalars[position] == c else { return false }
            position += 1
            return true
        }

        mutating func dictionary() throws(Header.ParseError) -> [String: Value] {
            try expect("{")
            var result: [String: Value] = [:]
            while !take("}") {
                let key = try string()
                try expect(":")
                guard result[key] == nil else { throw Header.ParseError(reason: "key '\(key)' appears twice") }
                result[key] = try value()
                if !take(",") { try expect("}"); break }
            }
            return result
        }

        mutating func value() throws(Header.ParseError) -> Value {
            skipSpace()
            guard position < scalars.count else { throw Header.ParseError(reason: "the header ends early") }
            switch scalars[position] {
            case "'", "\"": return .string(try string())
            case "(": return .tuple(try tuple())
            default:
                for (word, flag) in [("True", true), ("False", false)] where word.unicodeScalars.elementsEqual(scalars[position...].prefix(word.unicodeScalars.count)) {
                    position += word.unicodeScalars.count
                    return .bool(flag)
                }
                throw Header.ParseError(reason: "unexpected value at character \(position)")
            }
        }

        mutating func string() throws(Header.ParseError) -> String {
            skipSpace()
            guard position < scalars.count, scalars[position] == "'" || scalars[position] == "\"" else {
                throw Header.ParseError(reason: "expected a quoted string at character \(position)")
            }
            let quote = scalars[position]
            position += 1
            var out = String.UnicodeScalarView()
            while position < scalars.count, scalars[position] != quote {
                guard scalars[position] != "\\" else { throw Header.ParseError(reason: "escapes in strings are not supported") }
                out.append(scalars[position])
                position += 1
            }
            guard position < scalars.count else { throw Header.ParseError(reason: "unterminated string") }
            position += 1
            return String(out)
        }

        /// `()`, `(n,)` or `(n, m, ...)`: non-negative integers that fit in `Int`.
        mutating func tuple() throws(Header.ParseError) -> [Int] {
            try expect("(")
            var values: [Int] = []
            while !take(")") {
                skipSpace()
                let start = position
                while position < scalars.count, ("0"..."9").contains(scalars[position]) { position += 1 }
                let digits = String(String.UnicodeScalarView(scalars[start..<position]))
                guard let n = Int(digits) else {
                    throw Header.ParseError(reason: digits.isEmpty ? "expected an integer at character \(start)" : "extent \(digits) is too large")
                }
                _ = take("L")  // Python 2's long suffix, written by old NumPy versions
                values.append(n)
                if !take(",") { try expect(")"); break }
            }
            return values
        }
    }
}

/// Errors in the contents of a `.npy` file; each names the file.
public enum NPYError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(file: String, reason: String)
    case unsupportedDType(file: String, descr: String)
    /// The header's shape needs `4 · count` bytes after the header; the file holds `bytes`.
    case sizeMismatch(file: String, shape: [Int], bytes: Int)

    public var description: String {
        switch self {
        case .malformed(let file, let reason): "\(file): not a valid .npy file: \(reason)"
        case .unsupportedDType(let file, let descr):
            "\(file): dtype '\(descr)'; MagicInit reads float32 ('<f4') only (numpy: array.astype(numpy.float32))"
        case .sizeMismatch(let file, let shape, let bytes):
            "\(file): shape \(describeShape(shape)) needs \(Tensor.checkedByteCount(of: shape).map(String.init) ?? "too many") bytes of float32 after the header, the file holds \(bytes)"
        }
    }
}
