// The payload of each statistics type; header and checks in StatisticsCodec.swift.

extension ChannelMoments: StatisticsCodec {
    /// `"MIcm"`. Payload: `mean[C]`, then `m2[C]` (each `m2[c] ≥ 0`).
    public static let tag: [UInt8] = Array("MIcm".utf8)
    /// 2^24 channels (a 256 MiB payload).
    public static let maximumDimension = 1 << 24
    /// The channel count, C.
    public var dimension: Int { channelCount }

    /// - Complexity: O(C).
    public func encode() -> [UInt8] {
        var writer = ByteWriter(Self.self, dimension: channelCount, count: count, payloadValues: 2 * channelCount)
        writer.append(mean)
        writer.append(m2)
        return writer.bytes
    }

    /// - Complexity: O(C).
    public init(decoding bytes: [UInt8]) throws(StatisticsCodingError) {
        var reader = try ByteReader(bytes, as: Self.self) { 2 * $0 }
        let mean = try reader.doubles(reader.dimension, field: "mean")
        let m2 = try reader.doubles(reader.dimension, field: "m2")
        try ByteReader.requireNonNegative(m2, field: "m2")
        self.init(count: reader.count, mean: mean, m2: m2)
    }
}

extension SquareSums: StatisticsCodec {
    /// `"MIss"`. Payload: `sumOfSquares[C]` (each ≥ 0).
    public static let tag: [UInt8] = Array("MIss".utf8)
    /// 2^24 channels (a 128 MiB payload).
    public static let maximumDimension = 1 << 24
    /// The channel count, C.
    public var dimension: Int { channelCount }

    /// - Complexity: O(C).
    public func encode() -> [UInt8] {
        var writer = ByteWriter(Self.self, dimension: channelCount, count: count, payloadValues: channelCount)
        writer.append(sumOfSquares)
        return writer.bytes
    }

    /// - Complexity: O(C).
    public init(decoding bytes: [UInt8]) throws(StatisticsCodingError) {
        var reader = try ByteReader(bytes, as: Self.self) { $0 }
        let sums = try reader.doubles(reader.dimension, field: "sumOfSquares")
        try ByteReader.requireNonNegative(sums, field: "sumOfSquares")
        self.init(count: reader.count, sumOfSquares: sums)
    }
}

extension SquaredNormSum: StatisticsCodec {
    /// `"MInn"`. Dimension 1; count = images; payload: `sum` (≥ 0).
    public static let tag: [UInt8] = Array("MInn".utf8)
    /// Exactly 1 is valid; anything larger is rejected before the size check.
    public static let maximumDimension = 1
    /// Always 1.
    public var dimension: Int { 1 }

    public func encode() -> [UInt8] {
        var writer = ByteWriter(Self.self, dimension: 1, count: imageCount, payloadValues: 1)
        writer.append([sum])
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(StatisticsCodingError) {
        var reader = try ByteReader(bytes, as: Self.self) { $0 }
        guard reader.dimension == 1 else { throw .shapeMismatch(expected: 1, actual: reader.dimension) }
        let sum = try reader.doubles(1, field: "sum")
        try ByteReader.requireNonNegative(sum, field: "sum")
        self.init(imageCount: reader.count, sum: sum[0])
    }
}

extension Covariance: StatisticsCodec {
    /// `"MIcv"`. Payload: `mean[D]`, then `scatter[D·D]` row-major (exactly symmetric,
    /// non-negative diagonal).
    public static let tag: [UInt8] = Array("MIcv".utf8)
    /// D ≤ 2^14 (a 2 GiB scatter matrix); im2col rows of real layers have D ≤ a few thousand.
    public static let maximumDimension = 1 << 14

    /// - Complexity: O(D²).
    public func encode() -> [UInt8] {
        var writer = ByteWriter(Self.self, dimension: dimension, count: count,
                                payloadValues: dimension + dimension * dimension)
        writer.append(mean)
        writer.append(scatter)
        return writer.bytes
    }

    /// - Complexity: O(D²).
    public init(decoding bytes: [UInt8]) throws(StatisticsCodingError) {
        var reader = try ByteReader(bytes, as: Self.self) { $0 + $0 * $0 }
        let d = reader.dimension
        let mean = try reader.doubles(d, field: "mean")
        let scatter = try reader.doubles(d * d, field: "scatter")
        for i in 0..<d {
            if scatter[i * d + i] < 0 { throw .negative(field: "scatter", index: i * d + i, value: scatter[i * d + i]) }
            for j in 0..<i where scatter[i * d + j] != scatter[j * d + i] {
                throw .asymmetric(row: i, column: j)
            }
        }
        self.init(count: reader.count, mean: mean, scatter: scatter)
    }
}
