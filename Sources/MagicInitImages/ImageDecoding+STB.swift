import CStb

extension ImageDecoding {
    /// Decodes any format stb_image reads (PNG, JPEG, BMP, GIF's first frame, TGA, PSD, PNM)
    /// with `stbi_load_from_memory`, forced to 3 channels: grey is replicated, alpha dropped
    /// (not composited), 16-bit PNG reduced to 8 bits.
    /// - Throws: ``ImageError/undecodable(path:reason:)`` with `stbi_failure_reason()`.
    public static func decodeWithSTB(_ bytes: [UInt8], path: String) throws -> RGB8Image {
        guard bytes.count <= Int(Int32.max) else {
            throw ImageError.undecodable(path: path, reason: "stb_image: file larger than 2 GiB")
        }
        // Check the size from the header before stb allocates the pixels.
        var width: Int32 = 0, height: Int32 = 0, fileChannels: Int32 = 0
        let known = bytes.withUnsafeBufferPointer {
            stbi_info_from_memory($0.baseAddress, Int32($0.count), &width, &height, &fileChannels)
        }
        guard known != 0 else {
            throw ImageError.undecodable(path: path, reason: "stb_image: \(failureReason())")
        }
        let is16Bit = bytes.withUnsafeBufferPointer { stbi_is_16_bit_from_memory($0.baseAddress, Int32($0.count)) } != 0
        try checkSize(width: Int(width), height: Int(height), path: path, decoder: "stb_image",
                      footprint: .stb(channels: Int(fileChannels), bytesPerChannel: is16Bit ? 2 : 1))

        let pixels = bytes.withUnsafeBufferPointer {
            stbi_load_from_memory($0.baseAddress, Int32($0.count), &width, &height, &fileChannels, 3)
        }
        guard let pixels else {
            throw ImageError.undecodable(path: path, reason: "stb_image: \(failureReason())")
        }
        defer { stbi_image_free(pixels) }
        let w = Int(width), h = Int(height)
        let copy = [UInt8](UnsafeBufferPointer(start: pixels, count: w * h * 3))
        return RGB8Image(width: w, height: h, pixels: copy)
    }

    private static func failureReason() -> String {
        stbi_failure_reason().map { String(cString: $0) } ?? "unknown error"
    }
}
