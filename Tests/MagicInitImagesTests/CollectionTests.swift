import Foundation
import Testing
@testable import MagicInitImages

@Test func test_listImages_fixturesFolder_sortedImageFilesOnly() throws {
    let expected = [
        "000_gcompris__fishes__fish1.jpg", "028_gcompris__monuments__IndiaGate.jpg",
        "036_gcompris__monuments__eiffelTower.jpg", "049_gcompris__monuments__parthenon.jpg",
        "061_gcompris__renewable__solar1.jpg", "085_gcompris__tools__hammer1.jpg",
        "broken.jpg", "cmyk_hammer1.jpg", "gray_solar1.jpg", "known_4x3.png",
        "png_parthenon.png", "solid_200_100_50.png", "truncated_fish1.jpg",
    ].map(Fixture.path)
    #expect(try ImageCollection.listImages(in: Fixture.directory) == expected)
    #expect(try ImageCollection.listImages(in: Fixture.directory + "/") == expected)
}

@Test func test_listImages_listFile_resolvesRelativePathsDropsLabelsAndComments() throws {
    let paths = try ImageCollection.listImages(in: Fixture.path("images.txt"))
    #expect(paths == ["000_gcompris__fishes__fish1.jpg", "png_parthenon.png", "nonexistent.jpg"]
        .map(Fixture.path))
}

@Test func test_listImages_globPattern_sortedMatches() throws {
    let paths = try ImageCollection.listImages(in: Fixture.directory + "/*.png")
    #expect(paths == ["known_4x3.png", "png_parthenon.png", "solid_200_100_50.png"].map(Fixture.path))
    let one = try ImageCollection.listImages(in: Fixture.directory + "/0[0-2]?_*.jpg")
    #expect(one.count == 2)
}

@Test func test_listImages_nothingThere_throwsNamingSource() throws {
    let pattern = Fixture.directory + "/*.webp"
    #expect(throws: ImageError.noImagesFound(source: pattern)) {
        try ImageCollection.listImages(in: pattern)
    }
    let list = Fixture.path("missing-list.txt")
    #expect(throws: ImageError.unreadable(path: list, reason: "No such file or directory")) {
        try ImageCollection.listImages(in: list)
    }
}

@Test func test_listImages_missingFolder_saysItIsMissing() {
    #expect(throws: ImageError.unreadable(path: "/nonexistent/photos", reason: "no such file or folder")) {
        try ImageCollection.listImages(in: "/nonexistent/photos")
    }
    // A pattern that matches nothing is still "no image found".
    #expect(throws: ImageError.noImagesFound(source: "/nonexistent/*.jpg")) {
        try ImageCollection.listImages(in: "/nonexistent/*.jpg")
    }
}
