/// Binary encoding of mergeable statistics, for shipping partial moments from workers to the
/// coordinator (docs/DESIGN.md §3; compression is the transport's business).
///
/// Layout, all little-endian:
///
///     offset  size  field
///          0     4  tag        4 ASCII bytes naming the type ("MIcm", "MIss", "MInn", "MIcv")
///          4     4  version    UInt32, currently 1
///          8     8  dimension  UInt64: channels C, row dimension D, or 1 for a scalar
///         16     8  count      Int64 ≥ 0: values per channel, images, or rows
///         24     …  payload    Float64 arrays, in the order documented by each type
///
/// Decoding checks, in order: header present, tag, version, dimension within the type's limit,
/// exact total byte count (computed from the dimension, never trusting it beyond the buffer),
/// count ≥ 0, every Float64 finite, and the type's own invariants (sums of squares and centred
/// moments ≥ 0, a symmetric scatter). A decoded value re-encodes to the same bytes.
public protocol StatisticsCodec: Sendable {
    /// The 4-byte type tag at offset 0.
    static var tag: [UInt8] { get }
    /// Largest dimension accepted when decoding.
    static var maximumDimension: Int { get }
    /// The dimension written at offset 8: channels C, row dimension D, or 1 for a scalar.
    var dimension: Int { get }
    /// The encoded bytes; see the protocol's doc for the layout.
    func encode() -> [UInt8]
    /// Decodes and validates `bytes`.
    /// - Throws: ``StatisticsCodingError`` naming the first problem found.
    init(decoding bytes: [UInt8]) throws(StatisticsCodingError)
}

extension StatisticsCodec {
    /// Decodes `bytes` and checks that its dimension is `expectedDimension` (e.g. the channel
    /// count of the layer the coordinator asked about), so that a later merge cannot fail.
    /// - Throws: ``StatisticsCodingError/shapeMismatch(expected:actual:)`` on a different
    ///   dimension, or any error of ``init(decoding:)``.
    public init(decoding bytes: [UInt8], expectedDimension: Int) throws(StatisticsCodingError) {
        let decoded = try Self(decoding: bytes)
        guard decoded.dimension == expectedDimension else {
            throw .shapeMismatch(expected: expectedDimension, actual: decoded.dimension)
        }
        self = decoded
    }
}

/// The current format version.
let statisticsFormatVersion: UInt32 = 1
/// Bytes before the payload.
let statisticsHeaderBytes = 24

/// Appends little-endian fields to a byte array.
struct ByteWriter {
    private(set) var bytes: [UInt8]

    /// Starts a buffer with the header, reserving room for `payloadValues` Float64 values.
    init<Codec: StatisticsCodec>(_: Codec.Type, dimension: Int, count: Int64, payloadValues: Int) {
        bytes = []
        bytes.reserveCapacity(statisticsHeaderBytes + 8 * payloadValues)
        bytes.append(contentsOf: Codec.tag)
        append(UInt32(statisticsFormatVersion))
        append(UInt64(dimension))
        append(UInt64(bitPattern: count))
    }

    mutating func append(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ values: [Double]) {
        for value in values { append(value.bitPattern) }
    }
}

/// Reads and validates a header, then little-endian Float64 arrays.
struct ByteReader {
    let bytes: [UInt8]
    private var offset: Int
    /// The decoded dimension and count.
    let dimension: Int
    let count: Int64

    /// Validates the header of `bytes` for `Codec` and that the buffer holds exactly
    /// `statisticsHeaderBytes + 8 · payloadValues(dimension)` bytes.
    init<Codec: StatisticsCodec>(_ bytes: [UInt8], as _: Codec.Type,
                                 payloadValues: (Int) -> Int) throws(StatisticsCodingError) {
        guard bytes.count >= statisticsHeaderBytes else {
            throw .truncated(expected: statisticsHeaderBytes, actual: bytes.count)
        }
        self.bytes = bytes
        let tag = Array(bytes[0..<4])
        guard tag == Codec.tag else {
            throw .wrongTag(expected: ByteReader.printable(Codec.tag), got: ByteReader.printable(tag))
        }
        let version = UInt32(truncatingIfNeeded: ByteReader.uint64(bytes, at: 4, width: 4))
        guard version == statisticsFormatVersion else {
            throw .unsupportedVersion(got: version, expected: statisticsFormatVersion)
        }
        let rawDimension = ByteReader.uint64(bytes, at: 8, width: 8)
        guard rawDimension <= UInt64(Codec.maximumDimension) else {
            throw .dimensionTooLarge(got: rawDimension, limit: Codec.maximumDimension)
        }
        dimension = Int(rawDimension)
        // The limit keeps this product far below Int.max (see each type's maximumDimension).
        let expected = statisticsHeaderBytes + 8 * payloadValues(dimension)
        guard bytes.count >= expected else { throw .truncated(expected: expected, actual: bytes.count) }
        guard bytes.count == expected else { throw .trailingBytes(expected: expected, actual: bytes.count) }
        count = Int64(bitPattern: ByteReader.uint64(bytes, at: 16, width: 8))
        guard count >= 0 else { throw .negativeCount(count) }
        offset = statisticsHeaderBytes
    }

    /// The next `n` Float64 values, each required to be finite.
    mutating func doubles(_ n: Int, field: String) throws(StatisticsCodingError) -> [Double] {
        var values = [Double](repeating: 0, count: n)
        for i in 0..<n {
            let value = Double(bitPattern: ByteReader.uint64(bytes, at: offset, width: 8))
            guard value.isFinite else { throw .nonFinite(field: field, index: i) }
            values[i] = value
            offset += 8
        }
        return values
    }

    /// Checks that every value of `field` is ≥ 0.
    static func requireNonNegative(_ values: [Double], field: String) throws(StatisticsCodingError) {
        if let i = values.firstIndex(where: { $0 < 0 }) {
            throw .negative(field: field, index: i, value: values[i])
        }
    }

    private static func uint64(_ bytes: [UInt8], at offset: Int, width: Int) -> UInt64 {
        var value: UInt64 = 0
        for k in 0..<width { value |= UInt64(bytes[offset + k]) << (8 * k) }
        return value
    }

    private static func printable(_ tag: [UInt8]) -> String {
        tag.map { (0x20..<0x7f).contains($0) ? String(UnicodeScalar($0)) : "\\x" + hex($0) }.joined()
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}
