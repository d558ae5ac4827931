/// A decoded image: 8-bit RGB, interleaved, rows top to bottom.
///
/// Layout `(H, W, 3)` (HWC): the red value of the pixel in column `x`, row `y` is
/// `pixels[(y * width + x) * 3]`, green `+ 1`, blue `+ 2`. Values are the file's 0–255 codes
/// (sRGB as stored; no gamma conversion anywhere in this module).
public struct RGB8Image: Sendable, Equatable {
    /// Width W in pixels.
    public var width: Int
    /// Height H in pixels.
    public var height: Int
    /// `height * width * 3` bytes, `(H, W, 3)` row-major.
    public var pixels: [UInt8]

    /// Wraps `pixels`; `pixels.count` must equal `height * width * 3`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0, "image size \(width)×\(height) must be positive")
        precondition(pixels.count == width * height * 3,
                     "a \(width)×\(height) RGB image needs \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The `(r, g, b)` codes of the pixel in column `x`, row `y`.
    public subscript(x: Int, y: Int) -> (r: UInt8, g: UInt8, b: UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
}
