/// How decoded pixels become network input: channel order, then per-channel
/// `out = (code − mean) / std`, where `code` is the stored 0–255 value.
///
/// `mean` and `std` are in the 0–255 code scale and in **output** channel order. The
/// torchvision convention "divide by 255, then subtract 0.485, divide by 0.229" is the same
/// map with `mean = 255 · 0.485`, `std = 255 · 0.229` (equal up to Float32 rounding).
public struct Preprocessing: Sendable, Hashable {
    /// The order of the three planes of the output.
    public enum ChannelOrder: String, Sendable, Hashable, CaseIterable {
        /// Red, green, blue: PyTorch / torchvision models.
        case rgb
        /// Blue, green, red: Caffe models (OpenCV's order).
        case bgr
    }

    public var channelOrder: ChannelOrder
    /// Per output channel, in 0–255 codes.
    public var mean: SIMD3<Float>
    /// Per output channel, in 0–255 codes; every component must be positive.
    public var std: SIMD3<Float>

    public init(channelOrder: ChannelOrder, mean: SIMD3<Float>, std: SIMD3<Float> = .one) {
        precondition(std.min() > 0, "std must be positive, got \(std)")
        self.channelOrder = channelOrder
        self.mean = mean
        self.std = std
    }

    /// Caffe-family nets (CaffeNet, VGG, GoogLeNet deploy files): BGR planes, raw 0–255 codes
    /// minus the ImageNet mean pixel `(B, G, R) = (104, 117, 123)`, no scaling.
    public static let caffe = Preprocessing(channelOrder: .bgr, mean: SIMD3(104, 117, 123))

    /// PyTorch / torchvision nets: RGB planes, `(code / 255 − m) / s` with ImageNet's
    /// `m = (0.485, 0.456, 0.406)`, `s = (0.229, 0.224, 0.225)`; stored here as
    /// `mean = 255 m`, `std = 255 s`.
    public static let imagenet = Preprocessing(
        channelOrder: .rgb,
        mean: SIMD3(0.485, 0.456, 0.406) * 255,
        std: SIMD3(0.229, 0.224, 0.225) * 255)

    /// Raw RGB codes, 0–255: no mean, no scaling.
    public static let identity = Preprocessing(channelOrder: .rgb, mean: .zero)

    /// The planar network input for `image`.
    /// - Parameter image: `(H, W, 3)` RGB codes.
    /// - Returns: `(3, H, W)` row-major Float32: plane `c` holds channel `channelOrder[c]`,
    ///   normalised by `(code − mean[c]) / std[c]`.
    public func planarCHW(_ image: RGB8Image) -> [Float] {
        let plane = image.width * image.height
        var out = [Float](repeating: 0, count: 3 * plane)
        // Source channel (0 = R, 1 = G, 2 = B) of each output plane.
        let source: [Int] = channelOrder == .rgb ? [0, 1, 2] : [2, 1, 0]
        image.pixels.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { dst in
                for c in 0..<3 {
                    let s = source[c], m = mean[c], sd = std[c]
                    let base = c * plane
                    for i in 0..<plane {
                        dst[base + i] = (Float(px[3 * i + s]) - m) / sd
                    }
                }
            }
        }
        return out
    }
}
