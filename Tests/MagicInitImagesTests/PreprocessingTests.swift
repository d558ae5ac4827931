import Testing
@testable import MagicInitImages

/// Largest |a − b| over two equally long arrays.
private func largestDifference(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
}

@Test func test_caffePreset_solidPNG_isBGRMinusMean() throws {
    // (R, G, B) = (200, 100, 50) → planes (B − 104, G − 117, R − 123) = (−54, −17, 77).
    let loader = try ImageLoader(inputShape: [3, 2, 3], preprocessing: .caffe)
    let out = try loader.load(path: Fixture.path("solid_200_100_50.png"))
    let expected = [Float](repeating: -54, count: 6) + [Float](repeating: -17, count: 6)
        + [Float](repeating: 77, count: 6)
    let largest = largestDifference(out, expected)
    #expect(out.count == expected.count)
    #expect(largest <= 1e-6, "largest |Δ| \(largest)")
}

@Test func test_imagenetPreset_solidPNG_isRGBScaledMeanStd() throws {
    // (200/255 − 0.485)/0.229, (100/255 − 0.456)/0.224, (50/255 − 0.406)/0.225 in Float64.
    let loader = try ImageLoader(inputShape: [3, 2, 2], preprocessing: .imagenet, resize: .stretch)
    let out = try loader.load(path: Fixture.path("solid_200_100_50.png"))
    let expected = [Float](repeating: 1.3070468362017296, count: 4)
        + [Float](repeating: -0.285014005602241, count: 4)
        + [Float](repeating: -0.9329847494553378, count: 4)
    let largest = largestDifference(out, expected)
    #expect(out.count == expected.count)
    #expect(largest <= 1e-5, "largest |Δ| \(largest)")
}

@Test func test_presets_knownPixels_planeOrderAndPositions() throws {
    // known_4x3.png at its own size: no resampling, so every value is exact.
    let image = try ImageDecoding.decodeFile(path: Fixture.path("known_4x3.png"))
    let caffe = Preprocessing.caffe.planarCHW(image)
    let imagenet = Preprocessing.imagenet.planarCHW(image)
    let plane = 12
    // Pixel (0, 0) is pure red, at index 0 of each plane.
    #expect(caffe[0] == -104 && caffe[plane] == -117 && caffe[2 * plane] == 132)
    #expect(abs(imagenet[0] - 2.2489082969432315) <= 1e-5)
    #expect(abs(imagenet[plane] - -2.0357142857142856) <= 1e-5)
    #expect(abs(imagenet[2 * plane] - -1.8044444444444445) <= 1e-5)
    // Pixel (2, 1) = (130, 90, 160) sits at index y·W + x = 6.
    #expect(caffe[6] == 160 - 104 && caffe[plane + 6] == 90 - 117 && caffe[2 * plane + 6] == 130 - 123)
    let identity = Preprocessing.identity.planarCHW(image)
    #expect(identity[6] == 130 && identity[plane + 6] == 90 && identity[2 * plane + 6] == 160)
}

@Test func test_imagenetPreset_storedInCodeScale() {
    let p = Preprocessing.imagenet
    #expect(p.channelOrder == .rgb)
    #expect(abs(p.mean[0] - 123.675) <= 1e-4 && abs(p.mean[1] - 116.28) <= 1e-4
            && abs(p.mean[2] - 103.53) <= 1e-4)
    #expect(abs(p.std[0] - 58.395) <= 1e-4 && abs(p.std[1] - 57.12) <= 1e-4
            && abs(p.std[2] - 57.375) <= 1e-4)
    #expect(Preprocessing.caffe.channelOrder == .bgr)
    #expect(Preprocessing.caffe.std == SIMD3(1, 1, 1))
}
