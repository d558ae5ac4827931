import Dispatch
import MagicInitCore

/// Algorithm 1's normalisation applied to a cached blob as it is restored (docs/DESIGN.md
/// §2, "One forward pass"): the next step reads `(z − μ)/σ + β` without running the layer
/// again.
enum CachedAffineMap {
    /// `target = scale[c] · source + shift[c]` (in Float32) per channel, both in `layout`
    /// (they may be the same buffer); channel padding stays zero and whatever lies between
    /// images or channel blocks is copied as it is. With `rectify`, a ReLU follows, as
    /// oneDNN's JIT ReLU computes it (`max(y, 0)` with 0 as the second operand of the x86
    /// `maxps`: negative values, −0 and NaN all give +0), so the bits match running that
    /// layer. `(image, channel block)` runs in parallel (each element is computed alone, so
    /// the split does not change the bits).
    static func apply(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, layout: ChannelBlockedLayout,
                      scale: [Double], shift: [Double], rectify: Bool = false) {
        let block = layout.block
        let dense = layout.blockStride == layout.spatial * block && layout.imageStride == layout.channelBlocks * layout.blockStride
        if !dense && UnsafePointer(target) != source {
            target.update(from: source, count: layout.count)
            return apply(UnsafePointer(target), into: target, layout: layout, scale: scale, shift: shift, rectify: rectify)
        }
        // Per padded channel; padding lanes map 0 to 0.
        let padded = layout.channelBlocks * block
        let a = (0..<padded).map { $0 < layout.channels ? Float(scale[$0]) : 1 }
        let b = (0..<padded).map { $0 < layout.channels ? Float(shift[$0]) : 0 }
        nonisolated(unsafe) let source = source, target = target
        DispatchQueue.concurrentPerform(iterations: layout.images * layout.channelBlocks) { run in
            let n = run / layout.channelBlocks, cb = run % layout.channelBlocks
            let offset = n * layout.imageStride + cb * layout.blockStride
            let from = source + offset, to = target + offset
            if block == 1 {
                let (s, t) = (a[cb], b[cb])
                if rectify {
                    for i in 0..<layout.spatial { let y = s * from[i] + t; to[i] = y > 0 ? y : 0 }
                } else {
                    for i in 0..<layout.spatial { to[i] = s * from[i] + t }
                }
                return
            }
            for lane in stride(from: 0, to: block, by: 8) {
                var s = SIMD8<Float>(), t = SIMD8<Float>()
                for j in 0..<8 { s[j] = a[cb * block + lane + j]; t[j] = b[cb * block + lane + j] }
                for position in 0..<layout.spatial {
                    let x = UnsafeRawPointer(from + position * block + lane).loadUnaligned(as: SIMD8<Float>.self)
                    var y = s * x + t
                    if rectify { y.replace(with: 0, where: .!(y .> 0)) }
                    UnsafeMutableRawPointer(to + position * block + lane).storeBytes(of: y, as: SIMD8<Float>.self)
                }
            }
        }
    }
}
