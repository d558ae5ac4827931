import CStb

/// How an image of any size is brought to the network's input size `H × W`.
public enum ResizeMode: String, Sendable, Hashable, CaseIterable {
    /// Scale, keeping the aspect ratio, by `s = max(H / h, W / w)` so the image covers
    /// `H × W` (for a square input: the shorter side becomes the input side), then cut the
    /// centred `H × W` window. Offsets round down, as in Caffe's test-phase crop:
    /// `x0 = (w' − W) / 2`, `y0 = (h' − H) / 2`. The default.
    case shorterSideThenCenterCrop
    /// Scale the whole image to `H × W`, ignoring its aspect ratio: the plain resize of the
    /// authors' reference code (Krähenbühl et al. 2016, `magic_init` data loading).
    case stretch
}

/// Resizing and cropping of ``RGB8Image``s. Resampling is stb_image_resize's
/// `stbir_resize_uint8`: Mitchell filter when shrinking, Catmull-Rom when enlarging, edges
/// clamped, on the stored 0–255 codes (no sRGB linearisation, like PIL and OpenCV).
public enum ImageGeometry {
    /// The size `(width, height)` the image is scaled to before cropping; for `.stretch`
    /// this is the target itself.
    /// - Returns: `(w', h')` with `w' ≥ width`, `h' ≥ height`; `w' = round(w·s)`, `h' = round(h·s)`.
    public static func scaledSize(
        ofWidth w: Int, height h: Int, toWidth width: Int, height: Int, mode: ResizeMode
    ) -> (width: Int, height: Int) {
        switch mode {
        case .stretch:
            return (width, height)
        case .shorterSideThenCenterCrop:
            let scale = max(Double(height) / Double(h), Double(width) / Double(w))
            return (max(width, Int((Double(w) * scale).rounded())),
                    max(height, Int((Double(h) * scale).rounded())))
        }
    }

    /// Brings `image` to exactly `width × height` pixels according to `mode`.
    /// - Returns: an image of `(height, width, 3)`; `image` itself when it already has that size.
    /// - Complexity: O(w·h + w'·h') per channel, times the filter support.
    public static func fit(_ image: RGB8Image, width: Int, height: Int, mode: ResizeMode) -> RGB8Image {
        precondition(width > 0 && height > 0, "target size \(width)×\(height) must be positive")
        let scaled = scaledSize(ofWidth: image.width, height: image.height,
                                toWidth: width, height: height, mode: mode)
        let resized = resize(image, width: scaled.width, height: scaled.height)
        return crop(resized, x: (scaled.width - width) / 2, y: (scaled.height - height) / 2,
                    width: width, height: height)
    }

    /// Resamples `image` to `width × height` with `stbir_resize_uint8`.
    /// An image that already has that size is returned unchanged: stb's filter at scale 1
    /// is the Mitchell kernel, which would blur it.
    public static func resize(_ image: RGB8Image, width: Int, height: Int) -> RGB8Image {
        precondition(width > 0 && height > 0, "target size \(width)×\(height) must be positive")
        if image.width == width && image.height == height { return image }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let ok = image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                stbir_resize_uint8(src.baseAddress, Int32(image.width), Int32(image.height), 0,
                                   dst.baseAddress, Int32(width), Int32(height), 0, 3)
            }
        }
        precondition(ok == 1, "stbir_resize_uint8 failed (\(image.width)×\(image.height) → \(width)×\(height))")
        return RGB8Image(width: width, height: height, pixels: out)
    }

    /// The `width × height` window whose top-left pixel is `(x, y)`; it must lie inside `image`.
    public static func crop(_ image: RGB8Image, x: Int, y: Int, width: Int, height: Int) -> RGB8Image {
        precondition(x >= 0 && y >= 0 && x + width <= image.width && y + height <= image.height,
                     "crop \(width)×\(height) at (\(x), \(y)) outside a \(image.width)×\(image.height) image")
        if x == 0 && y == 0 && width == image.width && height == image.height { return image }
        var out = [UInt8]()
        out.reserveCapacity(width * height * 3)
        for row in y..<(y + height) {
            let start = (row * image.width + x) * 3
            out.append(contentsOf: image.pixels[start..<(start + width * 3)])
        }
        return RGB8Image(width: width, height: height, pixels: out)
    }
}
