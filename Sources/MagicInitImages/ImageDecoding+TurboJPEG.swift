import CTurboJPEG

extension ImageDecoding {
    /// Decodes a JPEG with libjpeg-turbo's TurboJPEG API (`tjDecompress2`), default (accurate
    /// integer) DCT and fancy upsampling.
    ///
    /// Grayscale, YCbCr and RGB JPEGs are converted to RGB by libjpeg-turbo. CMYK and YCCK
    /// JPEGs can only be decompressed to CMYK, so they are converted here with the convention
    /// of Adobe's inverted CMYK that libjpeg and stb_image use: `R = C·K / 255` (likewise G
    /// from M, B from Y), rounded; there is no colour management.
    /// - Returns: the image, and libjpeg-turbo's warning if the data were damaged but decoded
    ///   (e.g. a truncated file: the missing rows are grey).
    /// - Throws: ``ImageError/undecodable(path:reason:)`` with libjpeg-turbo's message.
    public static func decodeJPEGWithTurbo(
        _ bytes: [UInt8], path: String
    ) throws -> (image: RGB8Image, warning: String?) {
        guard let handle = tjInitDecompress() else {
            throw ImageError.undecodable(path: path, reason: "libjpeg-turbo: tjInitDecompress failed")
        }
        defer { tjDestroy(handle) }
        func message() -> String { String(cString: tjGetErrorStr2(handle)) }

        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let headerStatus = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count),
                                &width, &height, &subsampling, &colorspace)
        }
        guard headerStatus == 0 else {
            throw ImageError.undecodable(path: path, reason: "libjpeg-turbo: \(message())")
        }
        let w = Int(width), h = Int(height)
        let isCMYK = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        try checkSize(width: w, height: h, path: path, decoder: "libjpeg-turbo", footprint: .turboJPEG(cmyk: isCMYK))

        let format = isCMYK ? TJPF_CMYK : TJPF_RGB
        let channels = isCMYK ? 4 : 3
        var decoded = [UInt8](repeating: 0, count: w * h * channels)
        let status = bytes.withUnsafeBufferPointer { src in
            decoded.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(src.count), dst.baseAddress,
                              width, 0, height, Int32(format.rawValue), 0)
            }
        }
        var warning: String?
        if status != 0 {
            guard tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue) else {
                throw ImageError.undecodable(path: path, reason: "libjpeg-turbo: \(message())")
            }
            warning = message()
        }
        let rgb = isCMYK ? rgbFromInvertedCMYK(decoded) : decoded
        return (RGB8Image(width: w, height: h, pixels: rgb), warning)
    }

    /// `(H, W, 4)` inverted CMYK → `(H, W, 3)` RGB, `R = round(C·K / 255)`.
    static func rgbFromInvertedCMYK(_ cmyk: [UInt8]) -> [UInt8] {
        let n = cmyk.count / 4
        var rgb = [UInt8](repeating: 0, count: n * 3)
        for i in 0..<n {
            let k = UInt32(cmyk[4 * i + 3])
            for c in 0..<3 {
                rgb[3 * i + c] = UInt8((UInt32(cmyk[4 * i + c]) * k + 127) / 255)
            }
        }
        return rgb
    }
}
