import MagicInitCore

// Layers that combine or re-view blobs: Concat, Eltwise, Flatten, Reshape.

extension Reference {
    /// Caffe `Concat` along `axis` (negative counts from the end): the bottoms' slices are
    /// laid side by side along `axis`, first bottom first.
    /// - Parameters:
    ///   - xs: the bottoms; bottom `b` has shape `(A…, D_b, B…)`, equal except along `axis`.
    ///   - shapes: their shapes.
    /// - Returns: `(A…, Σ_b D_b, B…)`.
    public static func concat(_ xs: [[Double]], shapes: [[Int]], axis: Int) -> [Double] {
        let rank = shapes[0].count
        let axis = axis < 0 ? axis + rank : axis
        let outer = elementCount(Array(shapes[0][..<axis]))
        for (x, shape) in zip(xs, shapes) { requireCount(x, shape, "concat input") }
        // Each bottom contributes one contiguous chunk of `D_b · Π B` values per outer index.
        let chunks = shapes.map { elementCount(Array($0[axis...])) }

        var y: [Double] = []
        y.reserveCapacity(xs.reduce(0) { $0 + $1.count })
        for o in 0..<outer {
            for (x, chunk) in zip(xs, chunks) {
                y.append(contentsOf: x[(o * chunk)..<((o + 1) * chunk)])
            }
        }
        return y
    }

    /// Caffe `Eltwise` over bottoms of identical shape:
    /// - `sum`: `y = Σ_b coefficient_b · x_b` (coefficients default to 1);
    /// - `product`: `y = Π_b x_b`;
    /// - `max`: `y = max_b x_b`.
    /// - Parameter xs: two or more bottoms of one shape (any).
    /// - Returns: that shape.
    public static func eltwise(_ xs: [[Double]], _ p: EltwiseParameters) -> [Double] {
        let count = xs[0].count
        precondition(xs.allSatisfy { $0.count == count }, "Reference: eltwise bottoms differ in size: \(xs.map(\.count))")
        var y = [Double](repeating: 0, count: count)
        for j in 0..<count {
            switch p.operation {
            case .sum:
                var sum = 0.0
                for (b, x) in xs.enumerated() {
                    sum += (p.coefficients.isEmpty ? 1 : Double(p.coefficients[b])) * x[j]
                }
                y[j] = sum
            case .product:
                var product = 1.0
                for x in xs { product *= x[j] }
                y[j] = product
            case .max:
                var largest = xs[0][j]
                for x in xs.dropFirst() { largest = max(largest, x[j]) }
                y[j] = largest
            }
        }
        return y
    }

    /// Caffe `Flatten`: the data is unchanged (row-major); only the shape merges axes
    /// (``ShapeInference`` computes it).
    public static func flatten(_ x: [Double]) -> [Double] { x }

    /// Caffe `Reshape`: the data is unchanged (row-major); only the shape changes
    /// (``ShapeInference`` resolves `0` and `-1`).
    public static func reshape(_ x: [Double]) -> [Double] { x }
}
