import Dispatch
import MagicInitCore

// Accumulators over blobs in oneDNN's channel-blocked layout (see ChannelBlockedLayout), read
// where the engine keeps them: no reorder to row-major first. The `block` channels of a
// block sit side by side, so the kernels run one SIMD lane per channel: each channel's
// values are taken in the same order as the row-major kernels take them (image by image,
// position by position), with two interleaved partial sums per lane reduced in a fixed
// order. Results depend on the values and the layout only, never on threads.
//
// A plain layout (`block == 1`) goes to the row-major accumulators unchanged.

/// Channel blocks are processed in groups of 8 lanes (a block of 16 is two groups).
private let laneGroup = 8

@inline(__always)
private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Double> {
    SIMD8<Double>(UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self))
}

/// Calls `body(group, base)` for every group of 8 lanes of every channel block, in parallel:
/// `base` points at position 0 of image 0 of that group.
private func forEachLaneGroup(_ base: UnsafePointer<Float>, _ layout: ChannelBlockedLayout,
                              _ body: @escaping (_ group: Int, _ base: UnsafePointer<Float>) -> Void) {
    precondition(layout.block % laneGroup == 0, "channel block \(layout.block) is not a multiple of \(laneGroup)")
    let groupsPerBlock = layout.block / laneGroup
    nonisolated(unsafe) let base = base
    nonisolated(unsafe) let body = body
    DispatchQueue.concurrentPerform(iterations: layout.channelBlocks * groupsPerBlock) { g in
        let cb = g / groupsPerBlock, lane = (g % groupsPerBlock) * laneGroup
        body(g, base + cb * layout.blockStride + lane)
    }
}

/// `Σ_s x(s)` and `Σ_s (x(s) − m)`, `Σ_s (x(s) − m)²` per lane over `spatial` positions at a
/// stride of `block` floats.
@inline(__always)
private func laneSum(_ p: UnsafePointer<Float>, spatial: Int, block: Int) -> SIMD8<Double> {
    var a = SIMD8<Double>(), b = SIMD8<Double>()
    var s = 0
    while s + 2 <= spatial {
        a += load8(p + s * block)
        b += load8(p + (s + 1) * block)
        s += 2
    }
    if s < spatial { a += load8(p + s * block) }
    return a + b
}

@inline(__always)
private func laneCentred(_ p: UnsafePointer<Float>, spatial: Int, block: Int, mean: SIMD8<Double>) -> (SIMD8<Double>, SIMD8<Double>) {
    var d0 = SIMD8<Double>(), d1 = SIMD8<Double>(), q0 = SIMD8<Double>(), q1 = SIMD8<Double>()
    var s = 0
    while s + 2 <= spatial {
        let x = load8(p + s * block) - mean, y = load8(p + (s + 1) * block) - mean
        d0 += x
        q0 += x * x
        d1 += y
        q1 += y * y
        s += 2
    }
    if s < spatial {
        let x = load8(p + s * block) - mean
        d0 += x
        q0 += x * x
    }
    return (d0 + d1, q0 + q1)
}

@inline(__always)
private func laneSquares(_ p: UnsafePointer<Float>, spatial: Int, block: Int) -> SIMD8<Double> {
    var a = SIMD8<Double>(), b = SIMD8<Double>()
    var s = 0
    while s + 2 <= spatial {
        let x = load8(p + s * block), y = load8(p + (s + 1) * block)
        a += x * x
        b += y * y
        s += 2
    }
    if s < spatial {
        let x = load8(p + s * block)
        a += x * x
    }
    return a + b
}

extension ChannelMoments {
    /// The moments of the first `images` images of a blob held in a channel-blocked layout:
    /// for channel c, every one of those images and every spatial position counts.
    ///
    /// Same scheme as ``init(accumulating:shape:)`` (segments of whole images, corrected
    /// two-pass each, merged in image order with Chan's update), one SIMD lane per channel.
    /// A plain layout is handed to ``init(accumulating:shape:)``.
    /// - Parameters:
    ///   - base: the blob's buffer, `layout.count` floats.
    ///   - images: how many leading images count (the rest, e.g. a chunk's padding, do not).
    /// - Complexity: two reads of every counted value.
    public init(accumulating base: UnsafePointer<Float>, layout: ChannelBlockedLayout, images: Int) {
        precondition(images >= 0 && images <= layout.images, "\(images) images of a blob of \(layout.images)")
        if layout.isPlain {
            self.init(accumulating: UnsafeBufferPointer(start: base, count: images * layout.imageStride),
                      shape: [images, layout.channels, layout.spatial])
            return
        }
        self.init(channelCount: layout.channels)
        guard images > 0, layout.spatial > 0 else { return }
        let padded = layout.channelBlocks * layout.block
        var mean = [Double](repeating: 0, count: padded), m2 = [Double](repeating: 0, count: padded)
        let imagesPerSegment = max(1, Kernels.segmentElements / layout.spatial)
        mean.withUnsafeMutableBufferPointer { meanOut in
            m2.withUnsafeMutableBufferPointer { m2Out in
                nonisolated(unsafe) let meanOut = meanOut, m2Out = m2Out
                forEachLaneGroup(base, layout) { group, start in
                    var mean = SIMD8<Double>(), m2 = SIMD8<Double>()
                    var count: Int64 = 0
                    var first = 0
                    while first < images {
                        let runs = min(imagesPerSegment, images - first)
                        let n = Double(runs * layout.spatial)
                        var total = SIMD8<Double>()
                        for i in first..<(first + runs) {
                            total += laneSum(start + i * layout.imageStride, spatial: layout.spatial, block: layout.block)
                        }
                        let rough = total / n
                        var sumD = SIMD8<Double>(), sumSq = SIMD8<Double>()
                        for i in first..<(first + runs) {
                            let (d, q) = laneCentred(start + i * layout.imageStride, spatial: layout.spatial, block: layout.block, mean: rough)
                            sumD += d
                            sumSq += q
                        }
                        let partMean = rough + sumD / n
                        var partM2 = sumSq - sumD * sumD / n
                        for lane in 0..<laneGroup { partM2[lane] = clampedM2(partM2[lane]) }
                        let partCount = Int64(runs * layout.spatial)
                        if count == 0 {
                            (mean, m2) = (partMean, partM2)
                        } else {
                            let w = ChanWeights(countA: count, countB: partCount)
                            for lane in 0..<laneGroup { w.merge(meanA: &mean[lane], m2A: &m2[lane], meanB: partMean[lane], m2B: partM2[lane]) }
                        }
                        count += partCount
                        first += runs
                    }
                    for lane in 0..<laneGroup {
                        meanOut[group * laneGroup + lane] = mean[lane]
                        m2Out[group * laneGroup + lane] = m2[lane]
                    }
                }
            }
        }
        self.init(count: Int64(images * layout.spatial), mean: Array(mean.prefix(layout.channels)), m2: Array(m2.prefix(layout.channels)))
    }
}

extension SquareSums {
    /// Per-channel ``SquareSums`` and per-image ``SquaredNormSum`` of the first `images`
    /// images of a blob held in a channel-blocked layout, from one read of every value:
    /// `Σ_s x²` per image and channel, then added over images (per channel, in image order)
    /// and over channels (per image, in channel order; images then in order). A plain layout
    /// is handed to ``init(accumulating:shape:)`` and ``SquaredNormSum/init(accumulating:shape:)``.
    /// - Complexity: one read of every counted value (plain: two).
    public static func channelsAndImages(_ base: UnsafePointer<Float>, layout: ChannelBlockedLayout,
                                         images: Int) -> (channels: SquareSums, images: SquaredNormSum) {
        precondition(images >= 0 && images <= layout.images, "\(images) images of a blob of \(layout.images)")
        if layout.isPlain {
            let values = UnsafeBufferPointer(start: base, count: images * layout.imageStride)
            let shape = [images, layout.channels, layout.spatial]
            return (SquareSums(accumulating: values, shape: shape), SquaredNormSum(accumulating: values, shape: shape))
        }
        let padded = layout.channelBlocks * layout.block
        // perImage[n · padded + c] = Σ_s x(n, c, s)².
        var perImage = [Double](repeating: 0, count: images * padded)
        perImage.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            forEachLaneGroup(base, layout) { group, start in
                for n in 0..<images {
                    let sums = laneSquares(start + n * layout.imageStride, spatial: layout.spatial, block: layout.block)
                    for lane in 0..<laneGroup { out[n * padded + group * laneGroup + lane] = sums[lane] }
                }
            }
        }
        var channels = [Double](repeating: 0, count: layout.channels)
        var norms = 0.0
        for n in 0..<images {
            var norm = 0.0
            for c in 0..<layout.channels {
                let v = perImage[n * padded + c]
                channels[c] += v
                norm += v
            }
            norms += norm
        }
        return (SquareSums(count: Int64(images * layout.spatial), sumOfSquares: channels),
                SquaredNormSum(imageCount: Int64(images), sum: norms))
    }
}
