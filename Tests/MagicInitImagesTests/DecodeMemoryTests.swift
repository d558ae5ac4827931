import Testing
@testable import MagicInitImages

/// Decoding memory is bounded from the header, before any pixel buffer exists (issue 19).
@Suite struct DecodeMemoryTests {
    /// A 261 KB PNG of 16384 × 16384 grey pixels is within the pixel limit, yet decoding it
    /// took 1.6 GB (peak RSS of `mi-coordinator --images` on it, measured): stb_image's
    /// 3-channel result and its copy into `RGB8Image` are 805 MB each. It is refused now,
    /// naming the file and the memory it would take, without decoding.
    @Test func test_highlyCompressedHugePNG_refusedBeforeDecoding() throws {
        let bytes = try Fixture.bytes("oversized/grey-16384x16384.png")
        #expect(bytes.count < 300_000)
        #expect(16384 * 16384 <= ImageDecoding.maxPixelCount, "the file must be within the pixel limit to test the memory bound")
        let error = thrownError { _ = try ImageDecoding.decode(bytes, path: "grey.png") }
        guard case .undecodable(let path, let reason)? = error else {
            Issue.record("decoded, or another error: \(String(describing: error))"); return
        }
        #expect(path == "grey.png")
        #expect(reason == "stb_image: 16384×16384 would take about 1610 MB to decode, more than the 1024 MiB allowed per image", "\(reason)")
    }

    /// The footprints, per pixel, as measured here (peak RSS over the process's baseline):
    /// RGB8 PNG 16384² 1.60 GB (6 bytes/pixel), grey 16384² 1.60 GB (6), RGBA16 8192² 1.08 GB (16).
    @Test func test_decoderFootprints() {
        let p = 1 << 20
        #expect(ImageDecoding.decodeMemoryBytes(pixels: p, decoder: .stb(channels: 3, bytesPerChannel: 1)) == 6 * p)
        #expect(ImageDecoding.decodeMemoryBytes(pixels: p, decoder: .stb(channels: 1, bytesPerChannel: 1)) == 6 * p)
        #expect(ImageDecoding.decodeMemoryBytes(pixels: p, decoder: .stb(channels: 4, bytesPerChannel: 2)) == 16 * p)
        #expect(ImageDecoding.decodeMemoryBytes(pixels: p, decoder: .turboJPEG(cmyk: false)) == 3 * p)
        #expect(ImageDecoding.decodeMemoryBytes(pixels: p, decoder: .turboJPEG(cmyk: true)) == 7 * p)
        #expect(ImageDecoding.decodeMemoryBytes(pixels: .max / 2, decoder: .turboJPEG(cmyk: false)) == .max)
    }
}

private func thrownError(_ body: () throws -> Void) -> ImageError? {
    do { try body(); return nil } catch let error as ImageError { return error } catch { return nil }
}
