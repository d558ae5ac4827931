import Testing
@testable import MagicInitImages

@Test func test_scaledSize_shorterSide_coversTarget() {
    // 500×375 to 224×224: the shorter side becomes 224, 500·224/375 = 298.67 → 299.
    let landscape = ImageGeometry.scaledSize(ofWidth: 500, height: 375, toWidth: 224, height: 224,
                                             mode: .shorterSideThenCenterCrop)
    #expect(landscape == (299, 224))
    // Non-square target 200 wide × 100 high from 300×300: s = max(100/300, 200/300).
    let square = ImageGeometry.scaledSize(ofWidth: 300, height: 300, toWidth: 200, height: 100,
                                          mode: .shorterSideThenCenterCrop)
    #expect(square == (200, 200))
    let stretched = ImageGeometry.scaledSize(ofWidth: 500, height: 375, toWidth: 224, height: 224,
                                             mode: .stretch)
    #expect(stretched == (224, 224))
}

@Test func test_fit_wideImageNoResizeNeeded_cropKeepsCentreColumnsExactly() {
    // 12×4 → 4×4: scale 1, x0 = (12 − 4) / 2 = 4, so columns 4…7 survive unchanged.
    let image = syntheticImage(width: 12, height: 4) { x, y in (UInt8(10 * x), UInt8(10 * y), 7) }
    let out = ImageGeometry.fit(image, width: 4, height: 4, mode: .shorterSideThenCenterCrop)
    #expect(out.width == 4 && out.height == 4)
    for y in 0..<4 {
        for x in 0..<4 {
            #expect(out[x, y] == (UInt8(10 * (x + 4)), UInt8(10 * y), 7), "pixel (\(x), \(y))")
        }
    }
}

@Test func test_fit_tallImageOddMargin_cropOffsetRoundsDown() {
    // 4×10 → 4×3: y0 = (10 − 3) / 2 = 3 (Caffe rounds down), rows 3…5.
    let image = syntheticImage(width: 4, height: 10) { x, y in (UInt8(x), UInt8(20 * y), 0) }
    let out = ImageGeometry.fit(image, width: 4, height: 3, mode: .shorterSideThenCenterCrop)
    #expect(out.height == 3)
    #expect((0..<3).map { Int(out[0, $0].g) } == [60, 80, 100])
}

@Test func test_fit_threeBands_cropKeepsMiddleBandStretchKeepsAll() {
    // 16×8: red x < 4, green 4 ≤ x < 12, blue x ≥ 12. To 4×4: scale 1/2 → 8×4, crop x0 = 2,
    // which keeps source columns 4…11, the green band.
    let image = syntheticImage(width: 16, height: 8) { x, _ in
        x < 4 ? (255, 0, 0) : x < 12 ? (0, 255, 0) : (0, 0, 255)
    }
    let crop = ImageGeometry.fit(image, width: 4, height: 4, mode: .shorterSideThenCenterCrop)
    let stretch = ImageGeometry.fit(image, width: 4, height: 4, mode: .stretch)
    for y in 0..<4 {
        // The two centre columns are pure green up to the filter's ringing.
        for x in 1...2 {
            let p = crop[x, y]
            #expect(p.r <= 2 && p.b <= 2 && p.g >= 253, "crop pixel (\(x), \(y)) = \(p)")
        }
        // The outer crop columns are still mostly green; the stretched edges are not.
        #expect(crop[0, y].g > 200 && crop[0, y].r < 60, "crop (0, \(y)) = \(crop[0, y])")
        #expect(crop[3, y].g > 200 && crop[3, y].b < 60, "crop (3, \(y)) = \(crop[3, y])")
        #expect(stretch[0, y].r > 200 && stretch[0, y].g < 60, "stretch (0, \(y)) = \(stretch[0, y])")
        #expect(stretch[3, y].b > 200 && stretch[3, y].g < 60, "stretch (3, \(y)) = \(stretch[3, y])")
    }
}

@Test func test_fit_solidColour_resizePreservesValueExactly() {
    let image = syntheticImage(width: 37, height: 23) { _, _ in (200, 100, 50) }
    for mode in ResizeMode.allCases {
        for (w, h) in [(16, 16), (64, 48), (5, 9)] {
            let out = ImageGeometry.fit(image, width: w, height: h, mode: mode)
            #expect(out.width == w && out.height == h)
            let wrong = stride(from: 0, to: out.pixels.count, by: 3).filter {
                out.pixels[$0] != 200 || out.pixels[$0 + 1] != 100 || out.pixels[$0 + 2] != 50
            }
            #expect(wrong.isEmpty, "\(mode) \(w)×\(h): \(wrong.count) pixels changed")
        }
    }
}

@Test func test_loaderPrepare_nonSquareInput_givesThreeHW_andModesDiffer() throws {
    let photo = try ImageDecoding.decodeFile(path: Fixture.path("000_gcompris__fishes__fish1.jpg"))
    let crop = try ImageLoader(inputShape: [3, 40, 56], preprocessing: .identity,
                               resize: .shorterSideThenCenterCrop).prepare(photo)
    let stretch = try ImageLoader(inputShape: [3, 40, 56], preprocessing: .identity,
                                  resize: .stretch).prepare(photo)
    #expect(crop.count == 3 * 40 * 56)
    #expect(stretch.count == 3 * 40 * 56)
    // 160×107 → s = max(40/107, 56/160) = 0.3738 → 60×40, crop x0 = 2: a 7 % squeeze
    // instead of a cut; the planes differ clearly but not wildly.
    let meanDiff = zip(crop, stretch).map { abs($0 - $1) }.reduce(0, +) / Float(crop.count)
    print("[geometry] fish1 crop vs stretch at 40×56: mean |Δ| \(meanDiff) levels")
    #expect(meanDiff > 2)
    #expect(meanDiff < 60)
}
