import MagicInitCore
import MagicInitStatistics
import Testing

@Suite struct StatisticsCodecTests {
    static let shape = [6, 3, 4, 5]
    static var blob: [Float] { gaussianBlob(shape, purpose: "codec") }
    static var someMoments: ChannelMoments { moments(blob, shape: shape) }
    static var someCovariance: Covariance { covariance(blob, dimension: 10) }

    /// Expects decoding `bytes` as `T` to throw exactly `expected`.
    static func expectRejected<T: StatisticsCodec>(_ bytes: [UInt8], as _: T.Type, with expected: StatisticsCodingError,
                                                   sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try T(decoding: bytes)
            Issue.record("decoding \(bytes.count) bytes as \(T.self) succeeded; expected \(expected)", sourceLocation: sourceLocation)
        } catch {
            #expect(error == expected, "\(error)", sourceLocation: sourceLocation)
        }
    }

    /// `bytes` with the little-endian `value` written at `offset` over `width` bytes.
    static func patched(_ bytes: [UInt8], at offset: Int, _ value: UInt64, width: Int = 8) -> [UInt8] {
        var out = bytes
        for k in 0..<width { out[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * k)) }
        return out
    }

    @Test func test_roundTrip_isBitwiseExact_forEveryType() throws {
        let m = Self.someMoments
        let mBack = try ChannelMoments(decoding: m.encode())
        #expect(mBack.count == m.count && bits(mBack.mean) == bits(m.mean) && bits(mBack.m2) == bits(m.m2))
        #expect(mBack.encode() == m.encode())
        #expect(m.encode().count == 24 + 16 * 3)

        let s = squareSums(Self.blob, shape: Self.shape)
        let sBack = try SquareSums(decoding: s.encode())
        #expect(sBack.count == s.count && bits(sBack.sumOfSquares) == bits(s.sumOfSquares))

        let n = squaredNorms(Self.blob, shape: Self.shape)
        let nBack = try SquaredNormSum(decoding: n.encode())
        #expect(nBack.imageCount == n.imageCount && nBack.sum.bitPattern == n.sum.bitPattern)

        let c = Self.someCovariance
        let cBack = try Covariance(decoding: c.encode())
        #expect(cBack.count == c.count && bits(cBack.mean) == bits(c.mean) && bits(cBack.scatter) == bits(c.scatter))
        #expect(c.encode().count == 24 + 8 * (10 + 100))

        // Empty values and the checked-dimension initialiser.
        #expect(try ChannelMoments(decoding: ChannelMoments(channelCount: 5).encode()) == ChannelMoments(channelCount: 5))
        #expect(try Covariance(decoding: Covariance(dimension: 0).encode()) == Covariance(dimension: 0))
        #expect(try SquaredNormSum(decoding: SquaredNormSum().encode()) == SquaredNormSum())
        #expect(try ChannelMoments(decoding: m.encode(), expectedDimension: 3) == m)
    }

    @Test func test_header_isLittleEndianTagVersionDimensionCount() {
        let bytes = Self.someMoments.encode()
        #expect(Array(bytes[0..<4]) == Array("MIcm".utf8))
        #expect(Array(bytes[4..<8]) == [1, 0, 0, 0])
        #expect(Array(bytes[8..<16]) == [3, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(bytes[16..<24]) == [120, 0, 0, 0, 0, 0, 0, 0])   // 6 images × 20 positions
        let firstMean = Self.someMoments.mean[0].bitPattern
        #expect(Array(bytes[24..<32]) == (0..<8).map { UInt8(truncatingIfNeeded: firstMean >> (8 * $0)) })
    }

    @Test func test_truncatedBuffers_areRejectedWithExpectedAndActualSizes() {
        let bytes = Self.someMoments.encode()   // 72 bytes
        Self.expectRejected(Array(bytes.dropLast()), as: ChannelMoments.self, with: .truncated(expected: 72, actual: 71))
        Self.expectRejected(Array(bytes.prefix(24)), as: ChannelMoments.self, with: .truncated(expected: 72, actual: 24))
        Self.expectRejected(Array(bytes.prefix(10)), as: ChannelMoments.self, with: .truncated(expected: 24, actual: 10))
        Self.expectRejected([], as: Covariance.self, with: .truncated(expected: 24, actual: 0))
        Self.expectRejected(bytes + [0], as: ChannelMoments.self, with: .trailingBytes(expected: 72, actual: 73))
        let c = Self.someCovariance.encode()
        Self.expectRejected(Array(c.dropLast(8)), as: Covariance.self, with: .truncated(expected: 904, actual: 896))
    }

    @Test func test_wrongTag_isRejected() {
        Self.expectRejected(Self.someMoments.encode(), as: Covariance.self, with: .wrongTag(expected: "MIcv", got: "MIcm"))
        Self.expectRejected(Self.someMoments.encode(), as: SquareSums.self, with: .wrongTag(expected: "MIss", got: "MIcm"))
        var garbage = Self.someMoments.encode()
        garbage[0] = 0; garbage[3] = 0xff
        Self.expectRejected(garbage, as: ChannelMoments.self, with: .wrongTag(expected: "MIcm", got: "\\x00Ic\\xff"))
    }

    @Test func test_unsupportedVersion_isRejected() {
        let bytes = Self.patched(Self.someMoments.encode(), at: 4, 2, width: 4)
        Self.expectRejected(bytes, as: ChannelMoments.self, with: .unsupportedVersion(got: 2, expected: 1))
        let zero = Self.patched(SquaredNormSum().encode(), at: 4, 0, width: 4)
        Self.expectRejected(zero, as: SquaredNormSum.self, with: .unsupportedVersion(got: 0, expected: 1))
    }

    @Test func test_oversizedDimension_isRejectedBeforeAnySizeIsTrusted() {
        let huge: UInt64 = 1 << 40
        Self.expectRejected(Self.patched(Self.someMoments.encode(), at: 8, huge), as: ChannelMoments.self,
                            with: .dimensionTooLarge(got: huge, limit: 1 << 24))
        Self.expectRejected(Self.patched(Self.someMoments.encode(), at: 8, .max), as: ChannelMoments.self,
                            with: .dimensionTooLarge(got: .max, limit: 1 << 24))
        Self.expectRejected(Self.patched(Self.someCovariance.encode(), at: 8, 1 << 14 + 1), as: Covariance.self,
                            with: .dimensionTooLarge(got: 1 << 14 + 1, limit: 1 << 14))
        Self.expectRejected(Self.patched(SquaredNormSum().encode(), at: 8, 2), as: SquaredNormSum.self,
                            with: .dimensionTooLarge(got: 2, limit: 1))
        // Within the limit but not what the buffer holds: a size error, not a huge allocation.
        Self.expectRejected(Self.patched(Self.someMoments.encode(), at: 8, 1 << 20), as: ChannelMoments.self,
                            with: .truncated(expected: 24 + 16 << 20, actual: 72))
    }

    @Test func test_nonFiniteValues_areRejectedNamingFieldAndIndex() {
        let bytes = Self.someMoments.encode()
        Self.expectRejected(Self.patched(bytes, at: 24 + 8, Double.nan.bitPattern), as: ChannelMoments.self,
                            with: .nonFinite(field: "mean", index: 1))
        Self.expectRejected(Self.patched(bytes, at: 24 + 8 * 5, Double.infinity.bitPattern), as: ChannelMoments.self,
                            with: .nonFinite(field: "m2", index: 2))
        Self.expectRejected(Self.patched(SquaredNormSum().encode(), at: 24, (-Double.infinity).bitPattern),
                            as: SquaredNormSum.self, with: .nonFinite(field: "sum", index: 0))
        let c = Self.someCovariance.encode()
        Self.expectRejected(Self.patched(c, at: 24 + 8 * (10 + 37), Double.signalingNaN.bitPattern), as: Covariance.self,
                            with: .nonFinite(field: "scatter", index: 37))
    }

    @Test func test_nanActivations_propagate_andTheirEncodingIsRejected() {
        var values = Self.blob
        values[Self.shape.dropFirst().reduce(1, *) + 20 + 3] = .nan   // image 1, channel 1
        let m = moments(values, shape: Self.shape)
        #expect(!m.isFinite && m.mean[1].isNaN && m.m2[1].isNaN && m.mean[0].isFinite && m.mean[2].isFinite)
        Self.expectRejected(m.encode(), as: ChannelMoments.self, with: .nonFinite(field: "mean", index: 1))
        let s = squareSums(values, shape: Self.shape)
        #expect(!s.isFinite)
        Self.expectRejected(s.encode(), as: SquareSums.self, with: .nonFinite(field: "sumOfSquares", index: 1))
        #expect(!squaredNorms(values, shape: Self.shape).isFinite)
        #expect(!covariance(values, dimension: 10).isFinite)
        #expect(Self.someMoments.isFinite && Self.someCovariance.isFinite)
    }

    @Test func test_invalidCountsAndMoments_areRejected() {
        let bytes = Self.someMoments.encode()
        Self.expectRejected(Self.patched(bytes, at: 16, UInt64(bitPattern: -5)), as: ChannelMoments.self, with: .negativeCount(-5))
        Self.expectRejected(Self.patched(bytes, at: 24 + 8 * 3, (-1.5).bitPattern), as: ChannelMoments.self,
                            with: .negative(field: "m2", index: 0, value: -1.5))
        let s = squareSums(Self.blob, shape: Self.shape).encode()
        Self.expectRejected(Self.patched(s, at: 24 + 16, (-2.0).bitPattern), as: SquareSums.self,
                            with: .negative(field: "sumOfSquares", index: 2, value: -2))
        let c = Self.someCovariance.encode()
        Self.expectRejected(Self.patched(c, at: 24 + 8 * (10 + 1 * 10 + 4), 0.125.bitPattern), as: Covariance.self,
                            with: .asymmetric(row: 4, column: 1))
    }

    @Test func test_expectedDimension_mismatch_isShapeMismatch() {
        do {
            _ = try ChannelMoments(decoding: Self.someMoments.encode(), expectedDimension: 64)
            Issue.record("a 3-channel buffer was accepted for 64 channels")
        } catch {
            #expect(error == .shapeMismatch(expected: 64, actual: 3), "\(error)")
            #expect(error.description == "statistics of dimension 3, expected 64")
        }
    }
}
