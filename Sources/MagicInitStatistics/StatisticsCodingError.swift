/// Why a buffer of encoded statistics was rejected by ``StatisticsCodec/init(decoding:)``.
/// Every case carries the numbers needed to say what was wrong.
public enum StatisticsCodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The buffer is shorter than its header says it must be (or than a header).
    case truncated(expected: Int, actual: Int)
    /// The buffer is longer than its header says it must be.
    case trailingBytes(expected: Int, actual: Int)
    /// The 4-byte type tag is not the one of the type being decoded (printable ASCII, other
    /// bytes as `\xNN`).
    case wrongTag(expected: String, got: String)
    /// The format version is not one this build reads.
    case unsupportedVersion(got: UInt32, expected: UInt32)
    /// The encoded dimension (channels or D) is beyond what this type accepts.
    case dimensionTooLarge(got: UInt64, limit: Int)
    /// The encoded dimension differs from the one the caller expects.
    case shapeMismatch(expected: Int, actual: Int)
    /// The encoded count is negative.
    case negativeCount(Int64)
    /// `field[index]` is NaN or infinite.
    case nonFinite(field: String, index: Int)
    /// `field[index]` is negative where only non-negative values make sense (a sum of squares).
    case negative(field: String, index: Int, value: Double)
    /// The scatter matrix is not symmetric at `(row, column)`.
    case asymmetric(row: Int, column: Int)

    public var description: String {
        switch self {
        case let .truncated(expected, actual):
            "statistics buffer truncated: \(actual) bytes, expected \(expected)"
        case let .trailingBytes(expected, actual):
            "statistics buffer has trailing bytes: \(actual) bytes, expected \(expected)"
        case let .wrongTag(expected, got):
            "statistics buffer has tag \"\(got)\", expected \"\(expected)\""
        case let .unsupportedVersion(got, expected):
            "statistics format version \(got) is not supported (this build reads version \(expected))"
        case let .dimensionTooLarge(got, limit):
            "statistics dimension \(got) exceeds the limit \(limit)"
        case let .shapeMismatch(expected, actual):
            "statistics of dimension \(actual), expected \(expected)"
        case let .negativeCount(count):
            "statistics count \(count) is negative"
        case let .nonFinite(field, index):
            "statistics field \(field)[\(index)] is not finite"
        case let .negative(field, index, value):
            "statistics field \(field)[\(index)] = \(value) is negative"
        case let .asymmetric(row, column):
            "scatter matrix is not symmetric at (\(row), \(column))"
        }
    }
}
