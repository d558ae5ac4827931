// Inner loops shared by the accumulators: Float32 in, Float64 out, fixed summation order.
//
// Every loop keeps eight interleaved Float64 partial sums (one SIMD8 lane each) and reduces
// them in a fixed tree at the end, so a result depends only on the values and their order —
// never on threads or scheduling — and the chains of dependent additions are an eighth as
// long as a plain loop (faster, and slightly more accurate).

/// Internal kernels; not public API.
enum Kernels {
    /// Values per two-pass segment in the accumulators: `2^14` float32 values (64 KiB), so the
    /// second pass re-reads the segment from cache.
    static let segmentElements = 1 << 14

    /// `((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))`: a fixed reduction order.
    @inline(__always)
    static func reduce(_ a: SIMD8<Double>) -> Double {
        let half = a.lowHalf + a.highHalf
        let quarter = half.lowHalf + half.highHalf
        return quarter[0] + quarter[1]
    }

    /// Widens eight float32 values at `p + i` to Float64.
    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Double> {
        let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
        return SIMD8<Double>(v)
    }

    /// `Σ x[i]` over `count` contiguous values, in Float64.
    /// - Complexity: O(count).
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ count: Int) -> Double {
        var acc = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            acc += load8(p, i)
            i += 8
        }
        var tail = 0.0
        while i < count {
            tail += Double(p[i])
            i += 1
        }
        return reduce(acc) + tail
    }

    /// `(Σ d[i], Σ d[i]²)` with `d[i] = x[i] − mean`, over `count` contiguous values, in Float64.
    /// - Complexity: O(count).
    @inline(__always)
    static func centred(_ p: UnsafePointer<Float>, _ count: Int, mean: Double) -> (sum: Double, squares: Double) {
        let m = SIMD8<Double>(repeating: mean)
        var accD = SIMD8<Double>(), accSq = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            let d = load8(p, i) - m
            accD += d
            accSq += d * d
            i += 8
        }
        var tailD = 0.0, tailSq = 0.0
        while i < count {
            let d = Double(p[i]) - mean
            tailD += d
            tailSq += d * d
            i += 1
        }
        return (reduce(accD) + tailD, reduce(accSq) + tailSq)
    }

    /// `Σ x[i]²` over `count` contiguous values, in Float64.
    /// - Complexity: O(count).
    @inline(__always)
    static func squares(_ p: UnsafePointer<Float>, _ count: Int) -> Double {
        var acc = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            let x = load8(p, i)
            acc += x * x
            i += 8
        }
        var tail = 0.0
        while i < count {
            let x = Double(p[i])
            tail += x * x
            i += 1
        }
        return reduce(acc) + tail
    }

    /// Mean and centred second moment of `runCount` runs of `runLength` contiguous values,
    /// run `r` starting at `base + r·runStride`, by the corrected two-pass algorithm
    /// (Chan, Golub & LeVeque 1983, "Algorithms for computing the sample variance"):
    ///
    ///     m = Σx / n;   d = x − m;   mean = m + Σd / n;   M2 = Σd² − (Σd)² / n
    ///
    /// - Precondition: `runLength · runCount > 0`.
    /// - Complexity: two passes over `runLength · runCount` values.
    static func segmentMoments(_ base: UnsafePointer<Float>, runLength: Int, runStride: Int,
                               runCount: Int) -> (mean: Double, m2: Double) {
        var total = 0.0
        for r in 0..<runCount { total += sum(base + r * runStride, runLength) }
        let n = Double(runLength * runCount)
        let rough = total / n
        var sumD = 0.0, sumSq = 0.0
        for r in 0..<runCount {
            let (d, sq) = centred(base + r * runStride, runLength, mean: rough)
            sumD += d
            sumSq += sq
        }
        return (rough + sumD / n, clampedM2(sumSq - sumD * sumD / n))
    }
}

/// A corrected-two-pass M2 clamped at 0 (rounding can take it a hair below), letting NaN
/// through so that non-finite input stays visible (`Swift.max(0, .nan)` would hide it).
@inline(__always)
func clampedM2(_ m2: Double) -> Double { m2 < 0 ? 0 : m2 }

/// The weights of Chan, Golub & LeVeque's pairwise update for parts of `countA` and `countB`
/// values, shared by every channel: `weightB = n_b / n` and `cross = n_a · n_b / n`.
struct ChanWeights {
    let weightB: Double
    let cross: Double

    init(countA: Int64, countB: Int64) {
        let n = Double(countA) + Double(countB)
        weightB = Double(countB) / n
        cross = Double(countA) * weightB
    }

    /// Merges part B into part A in place: `δ = mean_b − mean_a`, `mean = mean_a + δ·n_b/n`,
    /// `M2 = M2_a + M2_b + δ²·n_a·n_b/n`.
    @inline(__always)
    func merge(meanA: inout Double, m2A: inout Double, meanB: Double, m2B: Double) {
        let delta = meanB - meanA
        meanA += delta * weightB
        m2A = m2A + m2B + delta * delta * cross
    }
}
