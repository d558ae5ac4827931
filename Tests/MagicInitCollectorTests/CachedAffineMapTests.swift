import Testing
@testable import MagicInitCollector
import MagicInitCore

/// Algorithm 1's per-channel affine map of a cached blob, applied while it is copied back
/// into the engine: every real element mapped (and rectified, when a ReLU is folded in),
/// channel padding kept at zero, anything between images or blocks copied unchanged, in
/// place and out of place alike.
@Suite struct CachedAffineMapTests {
    @Test(arguments: [(8, 0, 0, false), (16, 0, 0, false), (8, 24, 40, false), (1, 0, 0, false), (1, 8, 0, false),
                      (8, 0, 0, true), (16, 0, 0, true), (8, 24, 40, true), (1, 8, 0, true)])
    func test_affine_mapsEveryElementAndKeepsPaddingAndSlack(block: Int, blockSlack: Int, imageSlack: Int, rectify: Bool) {
        let channels = 13, spatial = 7, images = 3
        let blocks = (channels + block - 1) / block
        let blockStride = spatial * block + blockSlack
        let layout = ChannelBlockedLayout(images: images, channels: channels, spatial: spatial, block: block,
                                          imageStride: blocks * blockStride + imageSlack, blockStride: blockStride)
        let scale = (0..<channels).map { 0.5 + Double($0) / 7 }, shift = (0..<channels).map { Double($0) / 3 - 2 }
        var source = (0..<layout.count).map { Float($0 % 97) / 9 - 5 }
        var isReal = [Bool](repeating: false, count: layout.count)
        for n in 0..<images {
            for c in 0..<blocks * block {
                for s in 0..<spatial {
                    let o = layout.offset(image: n, channel: c, position: s)
                    if c < channels { isReal[o] = true } else { source[o] = 0 }
                }
            }
        }
        var outOfPlace = [Float](repeating: .nan, count: layout.count)
        source.withUnsafeBufferPointer { s in
            outOfPlace.withUnsafeMutableBufferPointer { CachedAffineMap.apply(s.baseAddress!, into: $0.baseAddress!, layout: layout, scale: scale, shift: shift, rectify: rectify) }
        }
        var inPlace = source
        inPlace.withUnsafeMutableBufferPointer { CachedAffineMap.apply(UnsafePointer($0.baseAddress!), into: $0.baseAddress!, layout: layout, scale: scale, shift: shift, rectify: rectify) }
        #expect(inPlace.map(\.bitPattern) == outOfPlace.map(\.bitPattern))
        var wrong = 0, negative = 0
        for n in 0..<images {
            for c in 0..<channels {
                for s in 0..<spatial {
                    let o = layout.offset(image: n, channel: c, position: s)
                    let y = Float(scale[c]) * source[o] + Float(shift[c])
                    if outOfPlace[o].bitPattern != (rectify && !(y > 0) ? 0 : y).bitPattern { wrong += 1 }
                    if y < 0 { negative += 1 }
                }
            }
        }
        #expect(wrong == 0, "\(wrong) elements mapped wrongly")
        #expect(negative > 0, "no element maps below zero")
        let others = (0..<layout.count).filter { !isReal[$0] }
        #expect(others.allSatisfy { outOfPlace[$0].bitPattern == source[$0].bitPattern }, "padding or slack changed")
    }
}
