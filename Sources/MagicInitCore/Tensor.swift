/// A dense float32 array in row-major order (`NCHW` for 4-D blobs, `(N, C)` for 2-D blobs,
/// `(O, I/groups, kH, kW)` for convolution weights).
///
/// Layout letters used throughout MagicInit: N = images in the batch, C = channels,
/// H = height, W = width (all in elements), O = output channels, I = input channels.
public struct Tensor: Sendable, Equatable {
    /// Extent of each axis, outermost first.
    public var shape: [Int]
    /// `shape.reduce(1, *)` elements, row-major.
    public var data: [Float]

    /// A tensor filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative extent in \(shape)")
        self.shape = shape
        self.data = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// Wraps `data`; `data.count` must equal the product of `shape`.
    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count,
                     "tensor of shape \(shape) needs \(shape.reduce(1, *)) elements, got \(data.count)")
        self.shape = shape
        self.data = data
    }

    /// Number of elements.
    public var count: Int { data.count }

    /// Row-major strides in elements.
    public var strides: [Int] { Tensor.strides(of: shape) }

    /// The number of elements of `shape`, or `nil` when an extent is negative or the
    /// product overflows `Int` (for shapes read from files or the wire, before allocating).
    public static func checkedCount(of shape: [Int]) -> Int? {
        var count = 1
        for extent in shape {
            guard extent >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow else { return nil }
            count = product
        }
        return count
    }

    /// The bytes of `shape`'s elements at `bytesPerElement` each (4: float32), or `nil` as
    /// ``checkedCount(of:)``, or when that size overflows `Int`.
    public static func checkedByteCount(of shape: [Int], bytesPerElement: Int = 4) -> Int? {
        guard let count = checkedCount(of: shape) else { return nil }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: bytesPerElement)
        return overflow ? nil : bytes
    }

    /// Row-major strides in elements of `shape`.
    public static func strides(of shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = step
            step *= shape[axis]
        }
        return strides
    }
}

/// Formats a shape the way errors print it: `(16, 3, 224, 224)`.
public func describeShape(_ shape: [Int]) -> String {
    "(" + shape.map(String.init).joined(separator: ", ") + ")"
}
