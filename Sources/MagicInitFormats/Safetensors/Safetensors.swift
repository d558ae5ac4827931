import Foundation
import MagicInitCore

/// The safetensors format (Hugging Face): an 8-byte little-endian header length `n`, an
/// `n`-byte JSON header `{"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin,
/// end]}, ..., "__metadata__": {"key": "value"}}`, then the tensors' little-endian bytes,
/// offsets relative to the end of the header. MagicInit writes float32 only, tensors in
/// sorted key order, the header padded with spaces to a multiple of 8 bytes (as the reference
/// serializer does), so `safetensors.torch.load_file` reads it.
public enum Safetensors {
    /// The contents of a safetensors file.
    public struct File: Sendable, Equatable {
        public var tensors: [String: Tensor]
        public var metadata: [String: String]
        public init(tensors: [String: Tensor], metadata: [String: String] = [:]) {
            self.tensors = tensors
            self.metadata = metadata
        }
    }

    /// The file's bytes for `tensors` (float32) and optional string `metadata`.
    public static func serialize(_ tensors: [String: Tensor], metadata: [String: String] = [:]) -> Data {
        let (header, keys) = Self.header(tensors, metadata: metadata)
        var data = Data(capacity: header.count + keys.reduce(0) { $0 + 4 * tensors[$1]!.count })
        data.append(contentsOf: header)
        for key in keys { withLittleEndianBytes(of: tensors[key]!) { data.append($0.assumingMemoryBound(to: UInt8.self)) } }
        return data
    }

    /// Writes `tensors` to `path` atomically, tensor by tensor (no copy of the whole file in
    /// memory).
    /// - Throws: ``FormatError/unwritable(path:reason:)``.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        let (header, keys) = Self.header(tensors, metadata: metadata)
        try FileIO.writeAtomically(to: path) { write in
            try header.withUnsafeBytes { try write($0) }
            for key in keys { try withLittleEndianBytes(of: tensors[key]!) { try write($0) } }
        }
    }

    /// The 8-byte length and the JSON header (padded with spaces to a multiple of 8 bytes),
    /// and the tensor keys in the order their bytes follow.
    private static func header(_ tensors: [String: Tensor], metadata: [String: String]) -> (bytes: [UInt8], keys: [String]) {
        var entries: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            entries.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        let keys = tensors.keys.sorted()
        var offset = 0
        for key in keys {
            let t = tensors[key]!
            let end = offset + 4 * t.count
            entries.append("\(jsonString(key)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var headerBytes = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var bytes: [UInt8] = []
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { bytes.append(contentsOf: $0) }
        return (bytes + headerBytes, keys)
    }

    /// Calls `body` with the little-endian float32 bytes of `tensor` (its own storage on a
    /// little-endian machine).
    private static func withLittleEndianBytes<R>(of tensor: Tensor, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        #if _endian(little)
        return try tensor.data.withUnsafeBytes(body)
        #else
        return try tensor.data.map { $0.bitPattern.littleEndian }.withUnsafeBytes(body)
        #endif
    }

    /// Reads a safetensors file of float32 tensors.
    /// - Throws: ``FormatError`` if unreadable, ``SafetensorsError`` naming the file and tensor.
    public static func read(path: String) throws -> File {
        try parse(FileIO.read(path), file: path)
    }

    /// Parses the bytes of a safetensors file (`file` names it in errors).
    public static func parse(_ data: Data, file: String = "<safetensors>") throws -> File {
        let bytes = data.startIndex == 0 ? data : Data(data)  // offsets below are from 0
        func malformed(_ reason: String) -> SafetensorsError { .malformed(file: file, reason: reason) }
        guard bytes.count >= 8 else { throw malformed("\(bytes.count) bytes is shorter than the 8-byte header length") }
        let headerLength = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw malformed("header length \(headerLength) exceeds the file (\(bytes.count) bytes)")
        }
        let dataStart = 8 + Int(headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]))
        } catch {
            throw malformed("header is not JSON: \(error.localizedDescription)")
        }
        guard let header = json as? [String: Any] else { throw malformed("header is not a JSON object") }
        var result = File(tensors: [:])
        for (key, value) in header {
            if key == "__metadata__" {
                guard let meta = value as? [String: Any] else { throw malformed("__metadata__ is not an object") }
                for (k, v) in meta {
                    guard let s = v as? String else { throw malformed("__metadata__ value '\(k)' is not a string") }
                    result.metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shapeValues = entry["shape"] as? [Any], let offsetValues = entry["data_offsets"] as? [Any] else {
                throw malformed("tensor '\(key)' lacks dtype, shape or data_offsets")
            }
            guard dtype == "F32" else { throw SafetensorsError.unsupportedDType(file: file, tensor: key, dtype: dtype) }
            let shape = try shapeValues.map { v -> Int in
                guard let n = exactInteger(v), n >= 0 else { throw malformed("tensor '\(key)' has a bad shape \(shapeValues)") }
                return n
            }
            let offsets = try offsetValues.map { v -> Int in
                guard let n = exactInteger(v), n >= 0 else { throw malformed("tensor '\(key)' has bad data_offsets \(offsetValues)") }
                return n
            }
            guard offsets.count == 2, offsets[0] <= offsets[1], offsets[1] <= bytes.count - dataStart else {
                throw malformed("tensor '\(key)' data_offsets \(offsets) lie outside the \(bytes.count - dataStart) data bytes")
            }
            guard let count = Tensor.checkedCount(of: shape), count <= Int.max / 4 else {
                throw malformed("tensor '\(key)' has a shape too large to hold: \(describeShape(shape))")
            }
            guard offsets[1] - offsets[0] == 4 * count else {
                throw SafetensorsError.sizeMismatch(file: file, tensor: key, shape: shape, bytes: offsets[1] - offsets[0])
            }
            let start = dataStart + offsets[0]
            let values = bytes.withUnsafeBytes { raw in
                (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: start + 4 * $0, as: UInt32.self))) }
            }
            result.tensors[key] = Tensor(shape: shape, data: values)
        }
        return result
    }

    /// A JSON number that is exactly an `Int` (`NSNumber.intValue` wraps 2⁶⁴ + 1 to 1 and
    /// truncates 2.5), else `nil`.
    private static func exactInteger(_ value: Any) -> Int? {
        guard let number = value as? NSNumber else { return nil }
        return Int(number.stringValue)
    }

    /// `s` as a JSON string literal.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Errors in the contents of a safetensors file; each names the file and, where there is
/// one, the tensor.
public enum SafetensorsError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(file: String, reason: String)
    case unsupportedDType(file: String, tensor: String, dtype: String)
    case sizeMismatch(file: String, tensor: String, shape: [Int], bytes: Int)

    public var description: String {
        switch self {
        case .malformed(let file, let reason): "\(file): not a valid safetensors file: \(reason)"
        case .unsupportedDType(let file, let tensor, let dtype):
            "\(file): tensor '\(tensor)' has dtype \(dtype); MagicInit reads F32 only"
        case .sizeMismatch(let file, let tensor, let shape, let bytes):
            "\(file): tensor '\(tensor)' of shape \(describeShape(shape)) needs \(Tensor.checkedByteCount(of: shape).map(String.init) ?? "too many") bytes, has \(bytes)"
        }
    }
}
