import Foundation

/// Counter-based random numbers: Philox-4x32-10 (Salmon et al., "Parallel random numbers:
/// as easy as 1, 2, 3", SC 2011).
///
/// Every draw is a pure function of `(seed, stream, counter)`: there is no global state, so
/// a value depends only on where it is used (e.g. stream = hash of purpose, layer and
/// image index; counter = element index), never on thread or worker scheduling. Normal
/// draws (``gaussians(count:mean:std:)``, ``fillGaussians(_:startingAt:mean:std:)``) are in
/// `Philox+Gaussians.swift`.
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
    @inline(__always)  // so the loop over counters in `fillGaussians` is vectorised
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

    /// `count` uniform draws in `[low, high)`; element `i` depends only on `(seed, stream, i)`.
    public func uniforms(count: Int, low: Double = 0, high: Double = 1) -> [Float] {
        (0..<count).map { i in
            let (a, b, _, _) = block(UInt64(i))
            let u = Double((UInt64(a) << 21) ^ UInt64(b >> 11)) / 9_007_199_254_740_992.0
            return Float(low + (high - low) * u)
        }
    }
}
