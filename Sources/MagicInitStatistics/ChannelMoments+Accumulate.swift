import Dispatch
import MagicInitCore

// Accumulating ChannelMoments from float32 blobs.

extension ChannelMoments {
    /// The moments of a float32 row-major blob `(N, C, H, W)`, `(N, C)`, or generally
    /// `(N, C, …)`: for channel c, every image n and every spatial position counts.
    ///
    /// Two-level scheme: the blob's runs of channel c (contiguous `H·W` values per image) are
    /// grouped into segments of about 2^14 values; each segment's mean and M2 are computed in
    /// Float64 by the corrected two-pass algorithm while it is in cache, and segments are merged
    /// with Chan et al.'s pairwise update. For `(N, C)` blobs (`H·W = 1`) the same is done row
    /// by row, vectorised over channels. The result does not depend on threads; it depends on
    /// the blob (and rounding on how the data is split into blobs), never on anything else.
    /// - Parameters:
    ///   - values: `N·C·H·W` float32 values, row-major.
    ///   - shape: `(N, C, …)`, rank ≥ 2.
    ///
    /// Non-finite input (NaN, ±∞) propagates into `mean` and `m2`: check ``isFinite`` before
    /// sending; the decoder rejects such values.
    /// - Complexity: two reads of every value, O(N·C·H·W), plus O(C) per segment.
    public init(accumulating values: UnsafeBufferPointer<Float>, shape: [Int]) {
        let layout = BlobLayout(shape: shape, count: values.count)
        self.init(channelCount: layout.channels)
        guard layout.valuesPerChannel > 0, let base = values.baseAddress else { return }
        var mean = [Double](repeating: 0, count: layout.channels)
        var m2 = [Double](repeating: 0, count: layout.channels)
        if layout.spatial == 1 {
            Self.accumulateRows(base, layout: layout, mean: &mean, m2: &m2)
        } else {
            Self.accumulateRuns(base, layout: layout, mean: &mean, m2: &m2)
        }
        self.init(count: Int64(layout.valuesPerChannel), mean: mean, m2: m2)
    }

    /// The moments of `tensor`, shape `(N, C, …)`; see ``init(accumulating:shape:)``.
    public init(accumulating tensor: Tensor) {
        self = tensor.data.withUnsafeBufferPointer { ChannelMoments(accumulating: $0, shape: tensor.shape) }
    }

    /// Merges the moments of a blob `(N, C, …)` into `self`: exactly
    /// `merge(ChannelMoments(accumulating: values, shape: shape))`.
    /// - Precondition: `shape[1] == channelCount`.
    /// - Complexity: O(N·C·H·W).
    public mutating func accumulate(_ values: UnsafeBufferPointer<Float>, shape: [Int]) {
        merge(ChannelMoments(accumulating: values, shape: shape))
    }

    /// Merges the moments of `tensor`, shape `(N, C, …)`, into `self`.
    /// - Precondition: `tensor.shape[1] == channelCount`.
    public mutating func accumulate(_ tensor: Tensor) {
        merge(ChannelMoments(accumulating: tensor))
    }

    /// `H·W > 1`: per channel, segments of whole runs (consecutive images), two-pass each,
    /// merged in image order.
    private static func accumulateRuns(_ base: UnsafePointer<Float>, layout: BlobLayout,
                                       mean: inout [Double], m2: inout [Double]) {
        let runLength = layout.spatial
        let runStride = layout.channels * runLength
        let runsPerSegment = max(1, Kernels.segmentElements / runLength)
        nonisolated(unsafe) let base = base
        mean.withUnsafeMutableBufferPointer { meanOut in
            m2.withUnsafeMutableBufferPointer { m2Out in
                nonisolated(unsafe) let meanOut = meanOut, m2Out = m2Out
                // Channels in parallel: each channel's sequence of operations is the same
                // whatever the split, so the bits do not depend on the thread count.
                DispatchQueue.concurrentPerform(iterations: layout.channels) { c in
                    var mean = 0.0, m2 = 0.0
                    var count: Int64 = 0
                    var segmentStart = 0
                    while segmentStart < layout.images {
                        let runs = min(runsPerSegment, layout.images - segmentStart)
                        let part = Kernels.segmentMoments(base + segmentStart * runStride + c * runLength,
                                                          runLength: runLength, runStride: runStride, runCount: runs)
                        let partCount = Int64(runs * runLength)
                        if count == 0 {
                            (mean, m2) = part
                        } else {
                            ChanWeights(countA: count, countB: partCount)
                                .merge(meanA: &mean, m2A: &m2, meanB: part.mean, m2B: part.m2)
                        }
                        count += partCount
                        segmentStart += runs
                    }
                    meanOut[c] = mean
                    m2Out[c] = m2
                }
            }
        }
    }

    /// `H·W == 1` (an `(N, C)` blob): segments of whole rows (2^14 values, but at least 32
    /// rows so the per-segment merge stays cheap for wide layers), two-pass each with the
    /// channel as the inner (contiguous, vectorisable) loop, merged in row order.
    private static func accumulateRows(_ base: UnsafePointer<Float>, layout: BlobLayout,
                                       mean: inout [Double], m2: inout [Double]) {
        let channels = layout.channels
        let rowsPerSegment = max(32, Kernels.segmentElements / max(1, channels))
        // Scratch per channel: rough mean, Σd and Σd² of the current segment.
        var scratch = [Double](repeating: 0, count: 3 * channels)
        scratch.withUnsafeMutableBufferPointer { scratch in
            mean.withUnsafeMutableBufferPointer { mean in
                m2.withUnsafeMutableBufferPointer { m2 in
                    let rough = scratch.baseAddress!
                    let sumD = rough + channels, sumSq = rough + 2 * channels
                    var count: Int64 = 0
                    var segmentStart = 0
                    while segmentStart < layout.images {
                        let rows = min(rowsPerSegment, layout.images - segmentStart)
                        let n = Double(rows)
                        let segment = base + segmentStart * channels
                        rough.update(repeating: 0, count: 3 * channels)
                        for r in 0..<rows {
                            let row = segment + r * channels
                            for c in 0..<channels { rough[c] += Double(row[c]) }
                        }
                        for c in 0..<channels { rough[c] /= n }
                        for r in 0..<rows {
                            let row = segment + r * channels
                            for c in 0..<channels {
                                let d = Double(row[c]) - rough[c]
                                sumD[c] += d
                                sumSq[c] += d * d
                            }
                        }
                        let partCount = Int64(rows)
                        let weights = count == 0 ? nil : ChanWeights(countA: count, countB: partCount)
                        for c in 0..<channels {
                            let partMean = rough[c] + sumD[c] / n
                            let partM2 = clampedM2(sumSq[c] - sumD[c] * sumD[c] / n)
                            if let weights {
                                weights.merge(meanA: &mean[c], m2A: &m2[c], meanB: partMean, m2B: partM2)
                            } else {
                                (mean[c], m2[c]) = (partMean, partM2)
                            }
                        }
                        count += partCount
                        segmentStart += rows
                    }
                }
            }
        }
    }
}
