import Testing
@testable import MagicInitImages

private let fish = Fixture.path("000_gcompris__fishes__fish1.jpg")
private let eiffel = Fixture.path("036_gcompris__monuments__eiffelTower.jpg")
private let broken = Fixture.path("broken.jpg")
private let missing = Fixture.path("no_such_photo.jpg")

@Test func test_loadBatch_corruptFile_skippedWithWarningNamingIt() throws {
    let loader = try ImageLoader(inputShape: [3, 32, 32])
    var warnings: [String] = []
    let batch = try loader.loadBatch(paths: [fish, broken, eiffel]) { warnings.append($0) }
    #expect(batch.tensor.shape == [2, 3, 32, 32])
    #expect(batch.loaded == [fish, eiffel])
    #expect(batch.skipped.map(\.path) == [broken])
    #expect(warnings.count == 1)
    #expect(warnings.first?.hasPrefix("[images] skipped \(broken): cannot decode") == true, "\(warnings)")
    // Image 1 of the tensor is exactly what load(path:) gives for the eiffel tower.
    let single = try loader.load(path: eiffel)
    let perImage = 3 * 32 * 32
    #expect(Array(batch.tensor.data[perImage..<(2 * perImage)]) == single)
}

@Test func test_loadBatch_missingFile_reportedByName() throws {
    let loader = try ImageLoader(inputShape: [3, 16, 16], preprocessing: .imagenet)
    var warnings: [String] = []
    let batch = try loader.loadBatch(paths: [missing, fish]) { warnings.append($0) }
    #expect(batch.tensor.shape == [1, 3, 16, 16])
    #expect(batch.skipped == [.init(path: missing, error: .unreadable(path: missing,
                                                                        reason: "No such file or directory"))])
    #expect(warnings == ["[images] skipped \(missing): cannot read: No such file or directory"])
}

@Test func test_loadBatch_onlyUnusableFiles_throwsNoUsableImages() throws {
    let loader = try ImageLoader(inputShape: [3, 16, 16])
    var warnings: [String] = []
    #expect(throws: ImageError.noUsableImages(tried: 3)) {
        try loader.loadBatch(paths: [broken, missing, Fixture.directory]) { warnings.append($0) }
    }
    #expect(warnings.count == 3)
    #expect(warnings.contains { $0.contains("broken.jpg") })
    #expect(warnings.contains { $0.contains("no_such_photo.jpg") })
    #expect(throws: ImageError.noUsableImages(tried: 0)) {
        try loader.loadBatch(paths: []) { _ in }
    }
}

@Test func test_loadBatch_allFixtureFormats_loadWithPlausibleValues() throws {
    let names = Fixture.photos.map(\.name)
        + ["png_parthenon.png", "gray_solar1.jpg", "cmyk_hammer1.jpg", "known_4x3.png"]
    let loader = try ImageLoader(inputShape: [3, 24, 24], preprocessing: .identity)
    let batch = try loader.loadBatch(paths: names.map(Fixture.path)) { _ in }
    #expect(batch.tensor.shape == [names.count, 3, 24, 24])
    #expect(batch.skipped.isEmpty)
    let outOfRange = batch.tensor.data.filter { $0 < 0 || $0 > 255 }
    #expect(outOfRange.isEmpty)
    // The grayscale JPEG gives three identical planes.
    let plane = 24 * 24, gray = Fixture.photos.count + 1
    let base = gray * 3 * plane
    let r = batch.tensor.data[base..<(base + plane)]
    let b = batch.tensor.data[(base + 2 * plane)..<(base + 3 * plane)]
    #expect(Array(r) == Array(b))
}

@Test func test_imageLoader_badInputShape_throwsNamingShape() {
    #expect(throws: ImageError.invalidInputShape([1, 28, 28])) {
        try ImageLoader(inputShape: [1, 28, 28])
    }
    #expect(throws: ImageError.invalidInputShape([3, 224])) { try ImageLoader(inputShape: [3, 224]) }
    #expect(ImageError.invalidInputShape([1, 28, 28]).description.contains("(1, 28, 28)"))
}
