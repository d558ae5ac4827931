import Foundation

/// Counter-based random numbers: Philox-4x32-10 (Salmon et al., "Parallel random numbers:
/// as easy as 1, 2, 3", SC 2011).
///
/// Every draw is a pure function of `(seed, stream, counter)`: there is no global state, so
/// a value depends only on where it is used (e.g. stream = hash of purpose, layer and
/// image index; counter = element index), never on thread or worker scheduling.
public struct Philox: Sendable, Hashable {
    /// The 64-bit key (the user's seed).
    public let seed: UInt64
    /// The 64-bit stream id; derive it with ``Philox/stream(_:)``.
    public let stream: UInt64

    public init(seed: UInt64, stream: UInt64) {
        self.seed = seed
        self.stream = stream
    }

    /// Derives a stream id from a purpose string and integer indices (FNV-1a, 64 bit).
    /// - Complexity: O(purpose length + indices).
    public static func stream(_ purpose: String, _ indices: Int...) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        for byte in purpose.utf8 { mix(byte) }
        for index in indices {
            mix(0xff)
            var value = UInt64(bitPattern: Int64(index))
            for _ in 0..<8 {
                mix(UInt8(truncatingIfNeeded: value))
                value >>= 8
            }
        }
        return hash
    }

    /// Four independent 32-bit words for block `counter`.
    public func block(_ counter: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: counter)
        var c1 = UInt32(truncatingIfNeeded: counter >> 32)
        var c2 = UInt32(truncatingIfNeeded: stream)
        var c3 = UInt32(truncatingIfNeeded: stream >> 32)
        var k0 = UInt32(truncatingIfNeeded: seed)
        var k1 = UInt32(truncatingIfNeeded: seed >> 32)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
            k0 = k0 &+ 0x9E37_79B9
            k1 = k1 &+ 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }

    /// Four standard normal draws for block `counter`: two Box–Muller pairs in Float32, each
    /// from two 24-bit uniforms (so |draw| ≤ √(2 ln 2²⁴) ≈ 5.77; the weights are float32
    /// anyway, and float32 `log`/`sin`/`cos` make this several times faster than Float64).
    public func gaussianQuad(_ counter: UInt64) -> (Float, Float, Float, Float) {
        let (a, b, c, d) = block(counter)
        // Uniforms in (0, 1] for the radius (log finite) and [0, 1) for the angle.
        let u1 = Float((a >> 8) + 1) * 0x1p-24, v1 = Float(b >> 8) * 0x1p-24
        let u2 = Float((c >> 8) + 1) * 0x1p-24, v2 = Float(d >> 8) * 0x1p-24
        let r1 = (-2 * log(u1)).squareRoot(), r2 = (-2 * log(u2)).squareRoot()
        let t1 = 2 * Float.pi * v1, t2 = 2 * Float.pi * v2
        return (r1 * cos(t1), r1 * sin(t1), r2 * cos(t2), r2 * sin(t2))
    }

    /// `count` normal draws `mean + std · g`; element `i` depends only on `(seed, stream, i)`
    /// (it is lane `i % 4` of ``gaussianQuad(_:)`` at counter `i / 4`).
    /// - Complexity: O(count); large requests are split into blocks generated in parallel
    ///   (the values do not depend on the split).
    public func gaussians(count: Int, mean: Double = 0, std: Double = 1) -> [Float] {
        let block = 1 << 16  // a multiple of 4, so no quad straddles two blocks
        let blocks = (count + block - 1) / block
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            let base = buffer.baseAddress!
            let fill = { (b: Int) in
                var i = b * block
                let end = min(count, i + block)
                while i < end {
                    let (g0, g1, g2, g3) = self.gaussianQuad(UInt64(i / 4))
                    (base + i).initialize(to: Float(mean + std * Double(g0)))
                    if i + 1 < end { (base + i + 1).initialize(to: Float(mean + std * Double(g1))) }
                    if i + 2 < end { (base + i + 2).initialize(to: Float(mean + std * Double(g2))) }
                    if i + 3 < end { (base + i + 3).initialize(to: Float(mean + std * Double(g3))) }
                    i += 4
                }
            }
            if blocks > 1 {
                nonisolated(unsafe) let fill = fill
                DispatchQueue.concurrentPerform(iterations: blocks) { fill($0) }
            } else if blocks == 1 {
                fill(0)
            }
            initialized = count
        }
    }

    /// `count` uniform draws in `[low, high)`; element `i` depends only on `(seed, stream, i)`.
    public func uniforms(count: Int, low: Double = 0, high: Double = 1) -> [Float] {
        (0..<count).map { i in
            let (a, b, _, _) = block(UInt64(i))
            let u = Double((UInt64(a) << 21) ^ UInt64(b >> 11)) / 9_007_199_254_740_992.0
            return Float(low + (high - low) * u)
        }
    }
}
