/// Little-endian binary writer for wire messages (see cluster/PROTOCOL.md).
struct WireWriter {
    private(set) var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func int(_ v: Int) { u64(UInt64(bitPattern: Int64(v))) }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }
    mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }
    mutating func string(_ s: String) { blob(Array(s.utf8)) }
    mutating func blob(_ b: [UInt8]) { u64(UInt64(b.count)); bytes.append(contentsOf: b) }
    mutating func doubles(_ values: [Double]) { u64(UInt64(values.count)); for v in values { f64(v) } }
    mutating func floats(_ values: [Float]) {
        u64(UInt64(values.count))
        values.withUnsafeBytes { raw in
            // Float32 little-endian on every supported host (x86-64, arm64).
            bytes.append(contentsOf: raw)
        }
    }
    mutating func ints(_ values: [Int]) { u64(UInt64(values.count)); for v in values { int(v) } }
}

/// Bounds-checked little-endian reader: every length is checked against the bytes left
/// and against a limit before anything is allocated.
struct WireReader {
    let bytes: [UInt8]
    private(set) var offset = 0
    let context: String

    init(_ bytes: [UInt8], context: String) {
        self.bytes = bytes
        self.context = context
    }

    var remaining: Int { bytes.count - offset }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else {
            throw WireError.truncated(context: context, needed: n, available: remaining)
        }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    private mutating func fixed<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let slice = try take(MemoryLayout<T>.size)
        var value: T = 0
        for (i, b) in slice.enumerated() { value |= T(b) << (8 * i) }
        return value
    }

    mutating func u8() throws -> UInt8 { try fixed(UInt8.self) }
    mutating func u16() throws -> UInt16 { try fixed(UInt16.self) }
    mutating func u32() throws -> UInt32 { try fixed(UInt32.self) }
    mutating func u64() throws -> UInt64 { try fixed(UInt64.self) }
    mutating func int() throws -> Int { Int(Int64(bitPattern: try u64())) }
    mutating func f64() throws -> Double { Double(bitPattern: try u64()) }
    mutating func bool() throws -> Bool {
        let v = try u8()
        guard v <= 1 else { throw WireError.invalidValue(context: context, message: "boolean byte \(v)") }
        return v == 1
    }

    /// A count checked against `limit` and against the bytes left (`elementSize` each).
    private mutating func count(limit: Int, elementSize: Int, what: String) throws -> Int {
        let n = try u64()
        guard n <= UInt64(limit) else { throw WireError.tooLarge(context: context, what: what, count: n, limit: limit) }
        guard Int(n) * elementSize <= remaining else {
            throw WireError.truncated(context: context, needed: Int(n) * elementSize, available: remaining)
        }
        return Int(n)
    }

    mutating func blob(limit: Int = 1 << 31) throws -> [UInt8] {
        Array(try take(try count(limit: limit, elementSize: 1, what: "byte string")))
    }
    mutating func string(limit: Int = 1 << 16) throws -> String {
        let raw = try blob(limit: limit)
        guard let s = String(validating: raw, as: UTF8.self) else { throw WireError.invalidValue(context: context, message: "string is not UTF-8") }
        return s
    }
    mutating func doubles(limit: Int = 1 << 28) throws -> [Double] {
        let n = try count(limit: limit, elementSize: 8, what: "float64 array")
        return try (0..<n).map { _ in try f64() }
    }
    mutating func floats(limit: Int = 1 << 30) throws -> [Float] {
        let n = try count(limit: limit, elementSize: 4, what: "float32 array")
        let slice = try take(n * 4)
        return [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
            slice.withUnsafeBytes { raw in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
            }
            initialized = n
        }
    }
    mutating func ints(limit: Int = 1 << 20) throws -> [Int] {
        let n = try count(limit: limit, elementSize: 8, what: "integer array")
        return try (0..<n).map { _ in try int() }
    }

    /// Fails unless every byte was read.
    func finish() throws {
        guard remaining == 0 else { throw WireError.trailingBytes(context: context, count: remaining) }
    }
}

/// Errors decoding or validating a wire message. Each names the message and what is wrong.
public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    case truncated(context: String, needed: Int, available: Int)
    case trailingBytes(context: String, count: Int)
    case tooLarge(context: String, what: String, count: UInt64, limit: Int)
    case badMagic(got: [UInt8])
    case unsupportedVersion(got: UInt16, expected: UInt16)
    case unknownType(UInt8)
    case invalidValue(context: String, message: String)

    public var description: String {
        switch self {
        case .truncated(let c, let needed, let available): "\(c): truncated (needs \(needed) more bytes, \(available) left)"
        case .trailingBytes(let c, let n): "\(c): \(n) unexpected trailing bytes"
        case .tooLarge(let c, let what, let count, let limit): "\(c): \(what) of \(count) elements exceeds the limit \(limit)"
        case .badMagic(let got): "not a MagicInit message (magic \(got))"
        case .unsupportedVersion(let got, let expected): "protocol version \(got), this build speaks \(expected)"
        case .unknownType(let t): "unknown message type \(t)"
        case .invalidValue(let c, let m): "\(c): \(m)"
        }
    }

    /// The `reject` reason sent to a peer of another protocol version: both versions, from
    /// the coordinator's side (`got` is the peer's).
    public var rejectReason: String {
        guard case .unsupportedVersion(let got, let expected) = self else { return description }
        return "protocol version mismatch: this worker speaks version \(got), the coordinator version \(expected); run the same MagicInit build on both"
    }
}
