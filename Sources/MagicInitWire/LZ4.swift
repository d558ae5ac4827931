import CLZ4

/// LZ4 block compression (liblz4, Collet: "LZ4 Block Format Description"). Blocks, not frames:
/// the caller stores the original size beside the block (the wire protocol carries it), and
/// ``decompress(_:originalSize:limit:)`` needs it to allocate exactly once.
///
/// Typical ratios here (docs/DESIGN.md §6): random Float64 moments barely compress (block ≈ input +
/// 0.4 %), ReLU activations about 1.5×.
public enum LZ4 {
    /// Largest input liblz4 accepts, in bytes (`LZ4_MAX_INPUT_SIZE`, 2 113 929 216).
    public static let maxInputBytes = Int(LZ4_MAX_INPUT_SIZE)

    /// The most a block can expand, in output bytes per block byte: a match-length byte adds at
    /// most 255 output bytes, literals 1 each. Used to refuse a forged `originalSize` before
    /// allocating for it.
    public static let maxExpansionRatio = 255

    /// Compresses `bytes` into one LZ4 block (`LZ4_compress_default`, acceleration 1).
    ///
    /// - Returns: the block, at most `LZ4_compressBound(n) = n + n/255 + 16` bytes.
    /// - Precondition: `bytes.count <= LZ4.maxInputBytes`.
    /// - Complexity: O(n); about 0.5–1 GB/s per core.
    public static func compress(_ bytes: [UInt8]) -> [UInt8] {
        precondition(bytes.count <= maxInputBytes,
                     "LZ4.compress: \(bytes.count) bytes exceed LZ4_MAX_INPUT_SIZE (\(maxInputBytes)); split the payload")
        let bound = Int(LZ4_compressBound(Int32(bytes.count)))
        return [UInt8](unsafeUninitializedCapacity: bound) { output, count in
            let written = bytes.withUnsafeBytes { input in
                withNonNullBase(input) { source in
                    LZ4_compress_default(source, UnsafeMutableRawPointer(output.baseAddress!).assumingMemoryBound(to: CChar.self),
                                         Int32(bytes.count), Int32(bound))
                }
            }
            precondition(written > 0, "LZ4_compress_default failed with a full bound (\(bound) bytes for \(bytes.count))")
            count = Int(written)
        }
    }

    /// Decompresses a block whose original size is `originalSize` bytes.
    ///
    /// Checks, in order, before allocating anything: `0 ≤ originalSize ≤ limit` (else
    /// ``LZ4Error/tooLarge(originalSize:limit:)``) and `originalSize ≤ 255 · block.count` (the
    /// most a block of that size can expand to; else ``LZ4Error/corrupt(reason:)``). Then it
    /// allocates `originalSize` bytes and runs `LZ4_decompress_safe` with exactly that bound, so a
    /// malformed block can neither read past `block` nor write past the output.
    ///
    /// - Parameter limit: the largest `originalSize` the caller accepts, in bytes (e.g. the
    ///   message limit, or what the declared shape needs).
    /// - Throws: ``LZ4Error/tooLarge(originalSize:limit:)``; ``LZ4Error/corrupt(reason:)`` when the
    ///   block is malformed or decompresses to more than `originalSize` bytes;
    ///   ``LZ4Error/sizeMismatch(expected:actual:)`` when it decompresses to fewer.
    /// - Complexity: O(originalSize); several GB/s per core.
    public static func decompress(_ block: [UInt8], originalSize: Int, limit: Int) throws -> [UInt8] {
        guard originalSize >= 0 else { throw LZ4Error.corrupt(reason: "negative original size \(originalSize)") }
        guard originalSize <= limit else { throw LZ4Error.tooLarge(originalSize: originalSize, limit: limit) }
        guard originalSize <= maxInputBytes else { throw LZ4Error.tooLarge(originalSize: originalSize, limit: maxInputBytes) }
        guard !block.isEmpty else { throw LZ4Error.corrupt(reason: "empty block (even an empty input compresses to 1 byte)") }
        guard block.count <= Int(Int32.max) else {
            throw LZ4Error.corrupt(reason: "block of \(block.count) bytes is larger than any LZ4 block")
        }
        guard originalSize <= maxExpansionRatio * block.count else {
            throw LZ4Error.corrupt(reason: "a block of \(block.count) bytes cannot expand to \(originalSize) bytes "
                                       + "(LZ4 expands at most \(maxExpansionRatio)×)")
        }
        return try [UInt8](unsafeUninitializedCapacity: originalSize) { output, count in
            count = 0
            var scratch: UInt8 = 0
            let produced = block.withUnsafeBytes { input in
                withUnsafeMutablePointer(to: &scratch) { scratchPointer in
                    let destination = UnsafeMutableRawPointer(output.baseAddress ?? scratchPointer)
                    return LZ4_decompress_safe(input.baseAddress!.assumingMemoryBound(to: CChar.self),
                                               destination.assumingMemoryBound(to: CChar.self),
                                               Int32(block.count), Int32(originalSize))
                }
            }
            guard produced >= 0 else {
                throw LZ4Error.corrupt(reason: "LZ4_decompress_safe returned \(produced) for a \(block.count)-byte block: "
                                           + "malformed, or it decompresses to more than \(originalSize) bytes")
            }
            guard Int(produced) == originalSize else {
                throw LZ4Error.sizeMismatch(expected: originalSize, actual: Int(produced))
            }
            count = originalSize
        }
    }

    /// `body` with the buffer's base address, or a valid dummy address for an empty buffer
    /// (liblz4 reads nothing from it then).
    private static func withNonNullBase<T>(_ buffer: UnsafeRawBufferPointer, _ body: (UnsafePointer<CChar>) -> T) -> T {
        if let base = buffer.baseAddress { return body(base.assumingMemoryBound(to: CChar.self)) }
        var dummy: CChar = 0
        return withUnsafePointer(to: &dummy) { body($0) }
    }
}

/// Failures of ``LZ4/decompress(_:originalSize:limit:)``.
public enum LZ4Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// The declared original size exceeds what the caller (or liblz4) accepts; nothing was allocated.
    case tooLarge(originalSize: Int, limit: Int)
    /// The block is malformed, or inconsistent with the declared original size.
    case corrupt(reason: String)
    /// The block is well formed but decompresses to `actual` bytes instead of `expected`.
    case sizeMismatch(expected: Int, actual: Int)

    public var description: String {
        switch self {
        case let .tooLarge(originalSize, limit):
            return "LZ4 block declares \(originalSize) bytes, more than the limit of \(limit) bytes"
        case let .corrupt(reason):
            return "corrupt LZ4 block: \(reason)"
        case let .sizeMismatch(expected, actual):
            return "LZ4 block decompresses to \(actual) bytes, expected \(expected)"
        }
    }
}
