import Foundation
@testable import MagicInitImages

/// The files of `Fixtures/` (see `Fixtures/CREDITS.md`), copied into the test bundle.
enum Fixture {
    static let directory: String = {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("Fixtures folder missing from the test bundle")
        }
        return url.path
    }()

    static func path(_ name: String) -> String { directory + "/" + name }

    /// The six photo fixtures with their (width, height) in pixels.
    static let photos: [(name: String, width: Int, height: Int)] = [
        ("000_gcompris__fishes__fish1.jpg", 160, 107),
        ("028_gcompris__monuments__IndiaGate.jpg", 160, 107),
        ("036_gcompris__monuments__eiffelTower.jpg", 90, 160),
        ("049_gcompris__monuments__parthenon.jpg", 160, 119),
        ("061_gcompris__renewable__solar1.jpg", 160, 120),
        ("085_gcompris__tools__hammer1.jpg", 160, 107),
    ]

    static func bytes(_ name: String) throws -> [UInt8] {
        try ImageDecoding.readFile(path: path(name))
    }
}

/// Mean and largest absolute difference of two equally sized byte arrays, in 0–255 levels.
func pixelDifference(_ a: [UInt8], _ b: [UInt8]) -> (mean: Double, max: Int) {
    precondition(a.count == b.count && !a.isEmpty)
    var sum = 0, largest = 0
    for i in a.indices {
        let d = abs(Int(a[i]) - Int(b[i]))
        sum += d
        largest = max(largest, d)
    }
    return (Double(sum) / Double(a.count), largest)
}

/// A synthetic image from a colour function of (x, y).
func syntheticImage(width: Int, height: Int, _ colour: (Int, Int) -> (UInt8, UInt8, UInt8)) -> RGB8Image {
    var pixels: [UInt8] = []
    for y in 0..<height {
        for x in 0..<width {
            let (r, g, b) = colour(x, y)
            pixels += [r, g, b]
        }
    }
    return RGB8Image(width: width, height: height, pixels: pixels)
}
