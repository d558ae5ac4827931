#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading image files and decoding their bytes to ``RGB8Image``.
///
/// JPEG (recognised by its `FF D8 FF` signature, not by the file name) goes to libjpeg-turbo;
/// if libjpeg-turbo fails outright, stb_image gets a second try. Everything else — PNG, and
/// whatever else stb_image reads (BMP, GIF's first frame, TGA, PSD, PNM) — goes to stb_image.
public enum ImageDecoding {
    /// Images larger than this are refused before any pixel buffer is allocated (a corrupt
    /// header can claim 65535 × 65535).
    public static let maxPixelCount = 1 << 28

    /// The most memory one image may take to decode, in bytes (1 GiB), estimated from its
    /// header before any pixel buffer is allocated (see ``decodeMemoryBytes(pixels:decoder:)``).
    /// Without it a 261 KB PNG of 16384 × 16384 grey pixels, within ``maxPixelCount``, took
    /// 1.6 GB: stb_image's 3-channel output and its copy into ``RGB8Image`` are 805 MB each.
    public static let maxDecodeBytes = 1 << 30

    /// What a decoder holds at once while decoding an image, per pixel.
    public enum DecoderFootprint: Sendable, Equatable {
        /// stb_image on a file of `channels` channels of `bytesPerChannel` (1, or 2 for
        /// 16-bit PNG): its inflated data and image at the file's format (`2·n·d`), the
        /// 16 → 8-bit reduction (`n·d + n`), the conversion to RGB (`n + 3`), and the RGB
        /// result with its copy into ``RGB8Image`` (`6`).
        case stb(channels: Int, bytesPerChannel: Int)
        /// libjpeg-turbo: the RGB output (`3`), or CMYK and its conversion to RGB (`4 + 3`).
        case turboJPEG(cmyk: Bool)

        var bytesPerPixel: Int {
            switch self {
            case let .stb(n, d): max(2 * n * d, d > 1 ? n * d + n : 0, n != 3 ? n + 3 : 0, 6)
            case let .turboJPEG(cmyk): cmyk ? 7 : 3
            }
        }
    }

    /// The peak memory, in bytes, of decoding `pixels` pixels with `decoder` (the pixel
    /// buffers; the decoder's own row buffers are small beside them).
    public static func decodeMemoryBytes(pixels: Int, decoder: DecoderFootprint) -> Int {
        let (bytes, overflow) = pixels.multipliedReportingOverflow(by: decoder.bytesPerPixel)
        return overflow ? .max : bytes
    }

    /// Reads the whole file at `path`.
    /// - Throws: ``ImageError/unreadable(path:reason:)`` naming `path`, with the system's reason.
    public static func readFile(path: String) throws -> [UInt8] {
        guard let file = fopen(path, "rb") else {
            throw ImageError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count {
                if ferror(file) != 0 {
                    // fopen succeeds on a directory; the read then fails with EISDIR.
                    throw ImageError.unreadable(path: path, reason: String(cString: strerror(errno)))
                }
                break
            }
        }
        if bytes.isEmpty { throw ImageError.unreadable(path: path, reason: "the file is empty") }
        return bytes
    }

    /// Whether `bytes` start with the JPEG signature `FF D8 FF`.
    public static func isJPEG(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF
    }

    /// Decodes `bytes` (a whole image file) to 8-bit RGB.
    /// - Parameters:
    ///   - path: only used to name the file in errors and warnings.
    ///   - warn: receives one line per non-fatal problem, e.g. libjpeg-turbo's
    ///     "Premature end of JPEG file" for a truncated file, whose missing rows decode grey.
    /// - Throws: ``ImageError/undecodable(path:reason:)`` with every decoder's reason, each
    ///   prefixed by the decoder's name (`libjpeg-turbo: …; stb_image: …`).
    public static func decode(
        _ bytes: [UInt8], path: String, warn: (String) -> Void = { _ in }
    ) throws -> RGB8Image {
        guard isJPEG(bytes) else {
            return try decodeWithSTB(bytes, path: path)
        }
        let turboReason: String
        do {
            let (image, warning) = try decodeJPEGWithTurbo(bytes, path: path)
            if let warning { warn("[images] \(path): decoded with a warning: \(warning)") }
            return image
        } catch ImageError.undecodable(_, let reason) {
            turboReason = reason
        }
        do {
            let image = try decodeWithSTB(bytes, path: path)
            warn("[images] \(path): \(turboReason); decoded with stb_image instead")
            return image
        } catch ImageError.undecodable(_, let stbReason) {
            throw ImageError.undecodable(path: path, reason: "\(turboReason); \(stbReason)")
        }
    }

    /// Reads and decodes the file at `path`.
    /// - Throws: ``ImageError/unreadable(path:reason:)`` or ``ImageError/undecodable(path:reason:)``.
    public static func decodeFile(path: String, warn: (String) -> Void = { _ in }) throws -> RGB8Image {
        try decode(readFile(path: path), path: path, warn: warn)
    }

    /// Refuses empty or oversized images, and images that would take more than
    /// ``maxDecodeBytes`` to decode with `footprint`; `decoder` prefixes the reason.
    static func checkSize(width: Int, height: Int, path: String, decoder: String, footprint: DecoderFootprint) throws {
        guard width > 0, height > 0 else {
            throw ImageError.undecodable(path: path, reason: "\(decoder): image size \(width)×\(height)")
        }
        guard width * height <= maxPixelCount else {
            throw ImageError.undecodable(
                path: path, reason: "\(decoder): \(width)×\(height) exceeds \(maxPixelCount) pixels")
        }
        let bytes = decodeMemoryBytes(pixels: width * height, decoder: footprint)
        guard bytes <= maxDecodeBytes else {
            throw ImageError.undecodable(
                path: path, reason: "\(decoder): \(width)×\(height) would take about \(bytes / 1_000_000) MB to decode, "
                    + "more than the \(maxDecodeBytes / (1 << 20)) MiB allowed per image")
        }
    }
}
