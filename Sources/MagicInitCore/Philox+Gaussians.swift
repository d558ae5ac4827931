import Dispatch

/// Standard normal draws from ``Philox``: Box–Muller in Float32 with ``PortableFloatMath``.
///
/// Draws come in groups of 256. Group `G` runs ``Philox/block(_:)`` on the 64 counters
/// `64G + l`, `l < 64`, giving words `(w₀, w₁, w₂, w₃)` each. Pair `j < 128` takes a radius
/// word and an angle word: `(w₀, w₁)` of counter `64G + j` for `j < 64`, `(w₂, w₃)` of
/// counter `64G + j − 64` for `j ≥ 64`. With the 24-bit uniform
/// `u = ((radius >> 8) + 1) · 2⁻²⁴ ∈ (0, 1]` (so `ln u` is finite and
/// `|draw| ≤ √(2 ln 2²⁴) ≈ 5.77`) and the angle `θ = 2π · (angle >> 8) · 2⁻²⁴ ∈ [0, 2π)`:
///
///     r_j               = √(−2 ln u_j)
///     draw 256G + j       = r_j · cos θ_j
///     draw 256G + 128 + j = r_j · sin θ_j
///
/// each a fixed sequence of IEEE operations. So draw `i` is a pure function of
/// `(seed, stream, i)`: the same however a request is split into blocks, threads or
/// offsets, and bitwise the same on every machine (see ``PortableFloatMath``).
extension Philox {
    /// Draws per group: 64 counters × 4 words, one word per draw.
    static let gaussianGroupSize = 256
    /// Draws per parallel block: a multiple of the group size, aligned on absolute draw
    /// indices (the split only decides which thread computes a draw, never its value).
    static let gaussianBlockSize = 1 << 16

    /// `count` normal draws `mean + std · g`: element `i` is draw `i` of this stream, so a
    /// longer request extends a shorter one.
    /// - Complexity: O(count); see ``fillGaussians(_:startingAt:mean:std:)``.
    public func gaussians(count: Int, mean: Double = 0, std: Double = 1) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            fillGaussians(buffer, mean: mean, std: std)
            initialized = count
        }
    }

    /// Writes draws `first ..< first + buffer.count` of this stream into `buffer`, in place:
    /// `buffer[k] = Float(std) · g(first + k) + Float(mean)` (`mean` and `std` rounded to
    /// Float32 once, then one Float32 multiply and one add, no FMA; `mean = 0, std = 1`
    /// gives `g` itself, up to the sign of a zero). `buffer` may be uninitialised memory.
    /// - Parameter first: the draw index of `buffer[0]`, `≥ 0`. Row `o` of an `(O, n)`
    ///   weight tensor is `first = o · n`: the same values as in a draw of the whole tensor.
    /// - Complexity: O(count), about 3.5 ns per draw on one x86-64 core (the old scalar
    ///   libm version took 16); blocks of 2¹⁶ draws run in parallel
    ///   (`DispatchQueue.concurrentPerform`). Called from any thread; `buffer` must not be
    ///   touched by others meanwhile.
    public func fillGaussians(_ buffer: UnsafeMutableBufferPointer<Float>, startingAt first: Int = 0,
                              mean: Double = 0, std: Double = 1) {
        precondition(first >= 0, "negative draw index \(first)")
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        let end = first + buffer.count
        let firstBlock = first / Self.gaussianBlockSize
        let blocks = (end - 1) / Self.gaussianBlockSize - firstBlock + 1
        let scale = Float(std), shift = Float(mean)
        if blocks == 1 {
            fillGaussianRange(first..<end, into: base, scale: scale, shift: shift)
            return
        }
        nonisolated(unsafe) let out = base
        DispatchQueue.concurrentPerform(iterations: blocks) { b in
            let start = max(first, (firstBlock + b) * Self.gaussianBlockSize)
            let stop = min(end, (firstBlock + b + 1) * Self.gaussianBlockSize)
            self.fillGaussianRange(start..<stop, into: out + (start - first), scale: scale, shift: shift)
        }
    }

    /// Draws `range` (times `scale`, plus `shift`) into `out[0 ..< range.count]`, on the
    /// calling thread.
    private func fillGaussianRange(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>, scale: Float, shift: Float) {
        let size = Self.gaussianGroupSize
        withUnsafeTemporaryAllocation(of: Float.self, capacity: size) { scratch in
            var index = range.lowerBound
            while index < range.upperBound {
                let group = index / size, groupStart = group * size
                if index == groupStart && range.upperBound - index >= size {
                    gaussianGroup(group, into: out + (index - range.lowerBound), scale: scale, shift: shift)
                    index += size
                } else {
                    // A group cut by the start or end of the range: keep only its part.
                    let stop = min(range.upperBound, groupStart + size)
                    gaussianGroup(group, into: scratch.baseAddress!, scale: scale, shift: shift)
                    (out + (index - range.lowerBound)).update(from: scratch.baseAddress! + (index - groupStart), count: stop - index)
                    index = stop
                }
            }
        }
    }

    /// Draws `256G ..< 256G + 256` of group `G` (see the extension's documentation), times
    /// `scale` plus `shift`, into `out[0 ..< 256]`.
    ///
    /// Three plain loops that LLVM vectorises (4 lanes of SSE2): Philox over the 64
    /// counters, then `r` per pair, then `sin`/`cos` and the products.
    @inline(__always)
    private func gaussianGroup(_ group: Int, into out: UnsafeMutablePointer<Float>, scale: Float, shift: Float) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 256) { words in
            // words[0 ..< 128]: radius word of pair j; words[128 ..< 256]: angle word.
            let radius = words.baseAddress!, angle = radius + 128
            let firstCounter = UInt64(group) &* 64
            for l in 0..<64 {
                let (w0, w1, w2, w3) = block(firstCounter &+ UInt64(l))
                radius[l] = w0; angle[l] = w1
                radius[64 + l] = w2; angle[64 + l] = w3
            }
            // r goes to out[0 ..< 128] first, then is replaced by r · cos θ.
            for j in 0..<128 {
                let u = Float(Int32(bitPattern: (radius[j] >> 8) &+ 1)) * 0x1p-24  // exact
                out[j] = PortableFloatMath.squareRoot(-2 * PortableFloatMath.log(u))
            }
            let outSin = out + 128
            for j in 0..<128 {
                let (sin, cos) = PortableFloatMath.sinCos(turns: angle[j] >> 8)
                let r = out[j]
                out[j] = r * cos * scale + shift
                outSin[j] = r * sin * scale + shift
            }
        }
    }
}
