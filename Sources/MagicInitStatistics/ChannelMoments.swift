/// Per-channel count, mean and centred second moment of a blob's values: the statistics of
/// Algorithm 1 (Krähenbühl et al. 2016, §3.1), taken over every image and every spatial
/// position of each channel.
///
/// For channel c with values `x_1 … x_n`:
///
///     mean[c] = Σ x_i / n
///     m2[c]   = Σ (x_i − mean[c])²          (centred second moment, "M2")
///     variance[c] = m2[c] / n               (population variance)
///
/// Partial moments of disjoint parts merge exactly in real arithmetic with the pairwise update
/// of Chan, Golub & LeVeque ("Updating formulae and a pairwise algorithm for computing sample
/// variances", 1979; analysis in "Algorithms for computing the sample variance", 1983):
///
///     n = n_a + n_b,  δ = mean_b − mean_a
///     mean = mean_a + δ · n_b / n
///     M2   = M2_a + M2_b + δ² · n_a · n_b / n
///
/// Properties: the merge is commutative and associative up to rounding (a few ulps of the
/// result; never the catastrophic cancellation of `E[x²] − E[x]²`); an empty part (count 0)
/// is an exact identity element. Merging the same parts in the same order is bitwise
/// deterministic, which is what makes the coordinator's chunk-order merge reproducible for any
/// number of workers (docs/DESIGN.md §3).
///
/// `count` is an `Int64`: exact and order-independent (a Float64 count would stop being exact
/// beyond 2^53 values), and shared by all channels, since every channel of a blob has the same
/// number of values (`N·H·W`).
public struct ChannelMoments: Sendable, Equatable {
    /// Number of values seen per channel (`N·H·W` summed over the merged parts).
    public private(set) var count: Int64
    /// Per-channel mean, `(C)`; all zero while `count == 0`.
    public private(set) var mean: [Double]
    /// Per-channel centred second moment `Σ (x − mean)²`, `(C)`; all zero while `count == 0`.
    public private(set) var m2: [Double]

    /// The empty accumulator for `channelCount` channels: the identity element of ``merge(_:)``.
    public init(channelCount: Int) {
        precondition(channelCount >= 0, "negative channel count \(channelCount)")
        count = 0
        mean = [Double](repeating: 0, count: channelCount)
        m2 = [Double](repeating: 0, count: channelCount)
    }

    /// Moments from their parts (e.g. decoded from the wire).
    /// - Precondition: `count >= 0`, `mean.count == m2.count`, every `m2[c] >= 0`.
    public init(count: Int64, mean: [Double], m2: [Double]) {
        precondition(count >= 0, "negative count \(count)")
        precondition(mean.count == m2.count, "\(mean.count) means but \(m2.count) second moments")
        precondition(m2.allSatisfy { !($0 < 0) }, "negative centred second moment")
        self.count = count
        self.mean = mean
        self.m2 = m2
    }

    /// Number of channels, C.
    public var channelCount: Int { mean.count }

    /// `true` when no value has been seen.
    public var isEmpty: Bool { count == 0 }

    /// `true` when every mean and M2 is finite (false after NaN or ±∞ activations).
    public var isFinite: Bool { mean.allSatisfy(\.isFinite) && m2.allSatisfy(\.isFinite) }

    /// Per-channel **population** variance `M2 / n` (divides by n, not n − 1, as Algorithm 1
    /// normalises the observed activations themselves), `(C)`. Zero when `count == 0`, so an
    /// empty or constant channel reads as dead (σ = 0) rather than NaN.
    /// - Complexity: O(C).
    public var variance: [Double] {
        guard count > 0 else { return [Double](repeating: 0, count: channelCount) }
        let n = Double(count)
        return m2.map { $0 / n }
    }

    /// Per-channel population standard deviation `sqrt(M2 / n)`, `(C)`; zero when empty.
    /// - Complexity: O(C).
    public var standardDeviation: [Double] { variance.map { $0.squareRoot() } }

    /// Merges `other` into `self` with Chan et al.'s pairwise update (see the type's doc).
    /// If either side is empty the result is the other side, bit for bit.
    ///
    /// Merging parts with different channel counts is a programming error (a precondition
    /// failure): data from outside the process is checked when it is decoded, with
    /// ``StatisticsCodec/init(decoding:expectedDimension:)``.
    /// - Precondition: `other.channelCount == channelCount`.
    /// - Complexity: O(C).
    public mutating func merge(_ other: ChannelMoments) {
        precondition(other.channelCount == channelCount,
                     "merging moments of \(other.channelCount) channels into \(channelCount) channels")
        guard other.count > 0 else { return }
        guard count > 0 else {
            self = other
            return
        }
        let weights = ChanWeights(countA: count, countB: other.count)
        mean.withUnsafeMutableBufferPointer { meanA in
            m2.withUnsafeMutableBufferPointer { m2A in
                for c in 0..<meanA.count {
                    weights.merge(meanA: &meanA[c], m2A: &m2A[c], meanB: other.mean[c], m2B: other.m2[c])
                }
            }
        }
        count += other.count
    }

    /// `self` merged with `other`; see ``merge(_:)``.
    /// - Complexity: O(C).
    public func merged(with other: ChannelMoments) -> ChannelMoments {
        var result = self
        result.merge(other)
        return result
    }

    /// The moments of `x' = scale[c] · x + shift[c]` per channel, without revisiting the data:
    ///
    ///     mean'[c] = scale[c] · mean[c] + shift[c]
    ///     M2'[c]   = scale[c]² · M2[c]      (so variance' = scale² · variance)
    ///
    /// Algorithm 1 (Krähenbühl et al. 2016, §3.1, step 5) rescales a layer's output by
    /// `1/σ` and shifts it to mean β; this gives the statistics of the rescaled output from
    /// those of the original. Exact up to one rounding per operation. An empty accumulator
    /// stays empty (its zeros are not shifted).
    /// - Precondition: `scale.count == shift.count == channelCount`.
    /// - Complexity: O(C).
    public func affine(scale: [Double], shift: [Double]) -> ChannelMoments {
        precondition(scale.count == channelCount && shift.count == channelCount,
                     "affine map with \(scale.count) scales and \(shift.count) shifts for \(channelCount) channels")
        guard count > 0 else { return self }
        var result = self
        for c in 0..<channelCount {
            result.mean[c] = scale[c] * mean[c] + shift[c]
            result.m2[c] = scale[c] * scale[c] * m2[c]
        }
        return result
    }
}
