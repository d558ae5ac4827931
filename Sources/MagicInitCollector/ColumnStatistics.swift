import Dispatch
import MagicInitCore

/// Per-column sums over the weight matrix of an affine layer reshaped to
/// `(rows, fan-in)`, with columns indexed `(c, kh, kw)` (convolution; `c` over all input
/// channels, groups included) or by flattened input feature (inner product). See
/// ``MagicInitAlgorithms/LayerMeasurement``.
enum ColumnStatistics {
    /// Columns per channel of the affine layer's bottom blob.
    static func columnsPerChannel(_ node: Graph.Node, bottom: [Int]) -> Int {
        switch node.kind {
        case .convolution(let p): p.kernel.h * p.kernel.w
        case .innerProduct: bottom.dropFirst(2).reduce(1, *)
        default: 1
        }
    }

    /// `Σ_rows v²` per column of a weight-shaped tensor (the weights or their gradient).
    /// - Parameter weight: `(O, C/g, kH, kW)`, `(O, F)`, or deconvolution `(C, O/g, kH, kW)`.
    /// - Returns: one sum per column (`C·kH·kW`, `F`, or `C` for deconvolution).
    static func rowSquares(_ node: Graph.Node, weight: Tensor, bottomChannels: Int) -> [Double] {
        weight.data.withUnsafeBufferPointer { rowSquares(node, weight: $0, shape: weight.shape, bottomChannels: bottomChannels) }
    }

    /// ``rowSquares(_:weight:bottomChannels:)`` of `weight`, a parameter of `shape` in the Caffe layout.
    static func rowSquares(_ node: Graph.Node, weight w: UnsafeBufferPointer<Float>, shape: [Int], bottomChannels: Int) -> [Double] {
        switch node.kind {
        case .convolution(let p):
            let o = shape[0], perGroupIn = shape[1], k = p.kernel.h * p.kernel.w
            let outPerGroup = o / p.groups
            var sums = [Double](repeating: 0, count: bottomChannels * k)
            for row in 0..<o {
                let base = (row / outPerGroup) * perGroupIn * k
                let rowStart = row * perGroupIn * k
                for j in 0..<(perGroupIn * k) {
                    let v = Double(w[rowStart + j])
                    sums[base + j] += v * v
                }
            }
            return sums
        case .innerProduct:
            let o = shape[0], f = shape[1]
            var sums = [Double](repeating: 0, count: f)
            for row in 0..<o {
                for j in 0..<f {
                    let v = Double(w[row * f + j])
                    sums[j] += v * v
                }
            }
            return sums
        default:
            // Deconvolution (C, O/g, kH, kW): one column per input channel.
            let c = shape[0], per = w.count / max(c, 1)
            return (0..<c).map { i in (0..<per).reduce(0.0) { $0 + Double(w[i * per + $1]) * Double(w[i * per + $1]) } }
        }
    }

    /// ``inputSquares(_:x:shape:images:outputShape:)`` for a stride-1 convolution whose input
    /// is held channel-blocked (block a multiple of 8), read in place, one SIMD lane per
    /// channel. Tap `(a, b)` reads a rectangle of the input plane; its sum is the plane's
    /// total minus the rows and columns outside the rectangle plus the values outside both
    /// (all from per-row and per-column sums of x², so one read of the plane answers every
    /// tap). Per channel, images are added in order, so the bits do not depend on threads.
    /// - Returns: `nil` unless `node` is such a convolution and `layout` such a layout.
    static func inputSquares(_ node: Graph.Node, blocked base: UnsafePointer<Float>, layout: ChannelBlockedLayout, shape: [Int],
                             images: Int, outputShape: [Int]) -> (sums: [Double], count: Int64)? {
        guard case .convolution(let p) = node.kind, p.stride.h == 1, p.stride.w == 1, shape.count == 4,
              layout.block % 8 == 0, layout.block > 1 else { return nil }
        let c = shape[1], h = shape[2], w = shape[3], oh = outputShape[2], ow = outputShape[3]
        let kh = p.kernel.h, kw = p.kernel.w, block = layout.block
        // Per tap: the rectangle of input rows [top, bottom) and columns [left, right) it reads.
        let rows = (0..<kh).map { a in (max(a * p.dilation.h - p.pad.h, 0), min(a * p.dilation.h - p.pad.h + oh, h)) }
        let columns = (0..<kw).map { b in (max(b * p.dilation.w - p.pad.w, 0), min(b * p.dilation.w - p.pad.w + ow, w)) }
        let groupsPerBlock = block / 8
        var sums = [Double](repeating: 0, count: layout.channelBlocks * block * kh * kw)
        nonisolated(unsafe) let base = base
        sums.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            DispatchQueue.concurrentPerform(iterations: layout.channelBlocks * groupsPerBlock) { g in
                let cb = g / groupsPerBlock, lane = (g % groupsPerBlock) * 8
                let first = cb * block + lane
                var rowSums = [SIMD8<Double>](repeating: .zero, count: h)
                var columnSums = [SIMD8<Double>](repeating: .zero, count: w)
                @inline(__always) func square(_ plane: UnsafePointer<Float>, _ y: Int, _ x: Int) -> SIMD8<Double> {
                    let v = SIMD8<Double>(UnsafeRawPointer(plane + (y * w + x) * block).loadUnaligned(as: SIMD8<Float>.self))
                    return v * v
                }
                for n in 0..<images {
                    let plane = base + n * layout.imageStride + cb * layout.blockStride + lane
                    for x in 0..<w { columnSums[x] = .zero }
                    var total = SIMD8<Double>()
                    for y in 0..<h {
                        var row = SIMD8<Double>()
                        for x in 0..<w {
                            let q = square(plane, y, x)
                            row += q
                            columnSums[x] += q
                        }
                        rowSums[y] = row
                        total += row
                    }
                    for a in 0..<kh {
                        let (top, bottom) = rows[a]
                        guard top < bottom else { continue }
                        let rowsOutside = Array(0..<top) + Array(bottom..<h)
                        var outsideRows = SIMD8<Double>()
                        for y in rowsOutside { outsideRows += rowSums[y] }
                        for b in 0..<kw {
                            let (left, right) = columns[b]
                            guard left < right else { continue }
                            var outsideColumns = SIMD8<Double>(), corners = SIMD8<Double>()
                            for x in 0..<left { outsideColumns += columnSums[x] }
                            for x in right..<w { outsideColumns += columnSums[x] }
                            for y in rowsOutside {
                                for x in 0..<left { corners += square(plane, y, x) }
                                for x in right..<w { corners += square(plane, y, x) }
                            }
                            let tap = total - outsideRows - outsideColumns + corners
                            for j in 0..<8 {
                                // A difference of sums can round to a tiny negative.
                                out[((first + j) * kh + a) * kw + b] += max(0, tap[j])
                            }
                        }
                    }
                }
            }
        }
        return (Array(sums.prefix(c * kh * kw)), Int64(images * oh * ow))
    }

    /// `Σ x(j)²` per column over the first `images` images and every output position:
    /// for a convolution the input value each kernel tap `(c, kh, kw)` reads (zero in the
    /// padding); for an inner product each input feature; for a deconvolution each input
    /// channel. Returns the sums and the number of samples per column.
    /// - Complexity: `images · C · kH · kW · H' · W'` for a convolution.
    static func inputSquares(_ node: Graph.Node, x: UnsafeBufferPointer<Float>, shape: [Int], images: Int, outputShape: [Int]) -> (sums: [Double], count: Int64) {
        let d = x
        switch node.kind {
        case .convolution(let p):
            let c = shape[1], h = shape[2], w = shape[3]
            let oh = outputShape[2], ow = outputShape[3]
            let kh = p.kernel.h, kw = p.kernel.w
            var sums = [Double](repeating: 0, count: c * kh * kw)
            if p.stride.h == 1 && p.stride.w == 1 {
                // Stride 1: tap (a, b) reads the rectangle rows a·d−p … a·d−p+H'−1 (clipped),
                // likewise columns; one 2-D prefix sum of x² per plane answers every tap.
                // Channels in parallel (images in order within each), so every column's
                // sum is taken in the same order whatever the split.
                nonisolated(unsafe) let d = d
                sums.withUnsafeMutableBufferPointer { out in
                    nonisolated(unsafe) let out = out
                    DispatchQueue.concurrentPerform(iterations: c) { ch in
                        var prefix = [Double](repeating: 0, count: (h + 1) * (w + 1))
                        for n in 0..<images {
                            let plane = (n * c + ch) * h * w
                            for y in 0..<h {
                                var row = 0.0
                                for xo in 0..<w {
                                    let v = Double(d[plane + y * w + xo])
                                    row += v * v
                                    prefix[(y + 1) * (w + 1) + xo + 1] = prefix[y * (w + 1) + xo + 1] + row
                                }
                            }
                            for a in 0..<kh {
                                let top = max(a * p.dilation.h - p.pad.h, 0), bottom = min(a * p.dilation.h - p.pad.h + oh, h)
                                guard top < bottom else { continue }
                                for b in 0..<kw {
                                    let left = max(b * p.dilation.w - p.pad.w, 0), right = min(b * p.dilation.w - p.pad.w + ow, w)
                                    guard left < right else { continue }
                                    // A difference of prefix sums can round to a tiny negative.
                                    out[(ch * kh + a) * kw + b] += max(0, prefix[bottom * (w + 1) + right] - prefix[top * (w + 1) + right]
                                        - prefix[bottom * (w + 1) + left] + prefix[top * (w + 1) + left])
                                }
                            }
                        }
                    }
                }
                return (sums, Int64(images * oh * ow))
            }
            var squares = [Double](repeating: 0, count: h * w)
            for n in 0..<images {
                for ch in 0..<c {
                    let plane = (n * c + ch) * h * w
                    for i in 0..<(h * w) { let v = Double(d[plane + i]); squares[i] = v * v }
                    for a in 0..<kh {
                        for b in 0..<kw {
                            var total = 0.0
                            for y in 0..<oh {
                                let iy = y * p.stride.h - p.pad.h + a * p.dilation.h
                                guard iy >= 0 && iy < h else { continue }
                                let row = iy * w
                                for xo in 0..<ow {
                                    let ix = xo * p.stride.w - p.pad.w + b * p.dilation.w
                                    if ix >= 0 && ix < w { total += squares[row + ix] }
                                }
                            }
                            sums[(ch * kh + a) * kw + b] += total
                        }
                    }
                }
            }
            return (sums, Int64(images * oh * ow))
        case .innerProduct:
            let f = shape.dropFirst().reduce(1, *)
            var sums = [Double](repeating: 0, count: f)
            for n in 0..<images {
                for j in 0..<f { let v = Double(d[n * f + j]); sums[j] += v * v }
            }
            return (sums, Int64(images))
        default:
            let c = shape[1], plane = shape.dropFirst(2).reduce(1, *)
            var sums = [Double](repeating: 0, count: c)
            for n in 0..<images {
                for ch in 0..<c {
                    let base = (n * c + ch) * plane
                    for i in 0..<plane { let v = Double(d[base + i]); sums[ch] += v * v }
                }
            }
            return (sums, Int64(images * plane))
        }
    }
}
