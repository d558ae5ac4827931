import Testing
@testable import MagicInitImages

@Test func test_decodeJPEG_photos_haveFileDimensions() throws {
    for photo in Fixture.photos {
        let image = try ImageDecoding.decodeFile(path: Fixture.path(photo.name))
        #expect(image.width == photo.width, "\(photo.name)")
        #expect(image.height == photo.height, "\(photo.name)")
        #expect(image.pixels.count == photo.width * photo.height * 3)
    }
}

@Test func test_turboAndSTB_samePhotos_meanDifferenceBelowTwoLevels() throws {
    for photo in Fixture.photos {
        let bytes = try Fixture.bytes(photo.name)
        let turbo = try ImageDecoding.decodeJPEGWithTurbo(bytes, path: photo.name)
        let stb = try ImageDecoding.decodeWithSTB(bytes, path: photo.name)
        #expect(turbo.warning == nil)
        #expect(turbo.image.width == stb.width && turbo.image.height == stb.height)
        let diff = pixelDifference(turbo.image.pixels, stb.pixels)
        print("[decode] \(photo.name): turbo vs stb mean |Δ| \(diff.mean), max |Δ| \(diff.max)")
        #expect(diff.mean < 2, "\(photo.name): mean |Δ| \(diff.mean)")
    }
}

@Test func test_decodePNG_known4x3_exactPixels() throws {
    let image = try ImageDecoding.decodeFile(path: Fixture.path("known_4x3.png"))
    #expect(image.width == 4 && image.height == 3)
    for y in 0..<3 {
        for x in 0..<4 {
            var expected = (r: 10 + 60 * x, g: 20 + 70 * y, b: 250 - 20 * x - 50 * y)
            switch (x, y) {
            case (0, 0): expected = (255, 0, 0)
            case (3, 0): expected = (0, 255, 0)
            case (0, 2): expected = (0, 0, 255)
            case (3, 2): expected = (0, 0, 0)
            default: break
            }
            let got = image[x, y]
            #expect(Int(got.r) == expected.r && Int(got.g) == expected.g && Int(got.b) == expected.b,
                    "pixel (\(x), \(y)): got \(got), expected \(expected)")
        }
    }
}

@Test func test_decodePNG_photo_closeToJPEGOfSameSource() throws {
    // Both fixtures were made from the same shrunk parthenon photo: lossless PNG vs JPEG q85.
    let png = try ImageDecoding.decodeFile(path: Fixture.path("png_parthenon.png"))
    let jpeg = try ImageDecoding.decodeFile(path: Fixture.path("049_gcompris__monuments__parthenon.jpg"))
    #expect(png.width == 160 && png.height == 119)
    let diff = pixelDifference(png.pixels, jpeg.pixels)
    print("[decode] parthenon PNG vs JPEG q85: mean |Δ| \(diff.mean), max |Δ| \(diff.max)")
    #expect(diff.mean < 4)
}

@Test func test_decodeGrayJPEG_channelsEqualAndMatchLuma() throws {
    let gray = try ImageDecoding.decodeFile(path: Fixture.path("gray_solar1.jpg"))
    let colour = try ImageDecoding.decodeFile(path: Fixture.path("061_gcompris__renewable__solar1.jpg"))
    #expect(gray.width == 160 && gray.height == 120)
    var unequal = 0
    var luma: [UInt8] = [], grayR: [UInt8] = []
    for i in 0..<(gray.width * gray.height) {
        let r = gray.pixels[3 * i], g = gray.pixels[3 * i + 1], b = gray.pixels[3 * i + 2]
        if r != g || g != b { unequal += 1 }
        grayR.append(r)
        let y = 0.299 * Double(colour.pixels[3 * i]) + 0.587 * Double(colour.pixels[3 * i + 1])
            + 0.114 * Double(colour.pixels[3 * i + 2])
        luma.append(UInt8(y.rounded()))
    }
    #expect(unequal == 0)
    let diff = pixelDifference(grayR, luma)
    print("[decode] gray JPEG vs luma of colour JPEG: mean |Δ| \(diff.mean), max |Δ| \(diff.max)")
    #expect(diff.mean < 3)
}

@Test func test_decodeCMYKJPEG_turboAgreesWithSTBAndSourceColours() throws {
    let bytes = try Fixture.bytes("cmyk_hammer1.jpg")
    let turbo = try ImageDecoding.decodeJPEGWithTurbo(bytes, path: "cmyk_hammer1.jpg").image
    let stb = try ImageDecoding.decodeWithSTB(bytes, path: "cmyk_hammer1.jpg")
    #expect(turbo.width == 96 && turbo.height == 64)
    let decoders = pixelDifference(turbo.pixels, stb.pixels)
    // The same photo as RGB, brought to the same size.
    let rgb = try ImageDecoding.decodeFile(path: Fixture.path("085_gcompris__tools__hammer1.jpg"))
    let reference = ImageGeometry.resize(rgb, width: 96, height: 64)
    let colours = pixelDifference(turbo.pixels, reference.pixels)
    print("[decode] CMYK JPEG: turbo vs stb mean |Δ| \(decoders.mean) max \(decoders.max); "
          + "vs RGB source mean |Δ| \(colours.mean) max \(colours.max)")
    #expect(decoders.mean < 2)
    #expect(colours.mean < 6)
}

@Test func test_decodeTruncatedJPEG_decodesWithWarningNamingFile() throws {
    let path = Fixture.path("truncated_fish1.jpg")
    var warnings: [String] = []
    let image = try ImageDecoding.decodeFile(path: path) { warnings.append($0) }
    #expect(image.width == 160 && image.height == 107)
    #expect(warnings.count == 1)
    #expect(warnings.first?.contains(path) == true, "\(warnings)")
    #expect(warnings.first?.contains("Premature end of JPEG file") == true, "\(warnings)")
}

@Test func test_decodeBrokenJPEG_throwsUndecodableNamingFile() throws {
    let path = Fixture.path("broken.jpg")
    let error = #expect(throws: ImageError.self) { try ImageDecoding.decodeFile(path: path) }
    guard case .undecodable(let named, let reason)? = error else {
        Issue.record("expected .undecodable, got \(String(describing: error))")
        return
    }
    #expect(named == path)
    print("[decode] broken.jpg: \(reason)")
    #expect(reason.hasPrefix("libjpeg-turbo: ") && reason.contains("; stb_image: "), "\(reason)")
    #expect(error?.description.contains("broken.jpg") == true)
}

@Test func test_decode_nonImageBytes_throwsUndecodable() throws {
    let bytes = Array("not an image at all".utf8)
    #expect(!ImageDecoding.isJPEG(bytes))
    #expect(throws: ImageError.self) { try ImageDecoding.decode(bytes, path: "note.png") }
}
