import MagicInitAlgorithms
import MagicInitCore
import MagicInitStatistics

/// Binary encoding of ``WireEnvelope``s (cluster/PROTOCOL.md): a 13-byte header — magic
/// `MI`, protocol version (UInt16), message type (UInt8), run id (UInt64) — then the body,
/// all little-endian. Decoding checks magic, version, type, every length against the bytes
/// present and a limit, and that nothing is left over.
public enum WireCodec {
    static let magic: [UInt8] = [0x4D, 0x49]

    public static func encode(_ envelope: WireEnvelope) -> [UInt8] {
        var w = WireWriter()
        w.u8(magic[0]); w.u8(magic[1])
        w.u16(wireProtocolVersion)
        w.u8(envelope.message.typeCode)
        w.u64(envelope.runID)
        switch envelope.message {
        case .hello(let host, let threads, let capabilities):
            w.string(host); w.int(threads)
            w.u64(UInt64(capabilities.count)); capabilities.forEach { w.string($0) }
        case .welcome(let index, let interval, let liveness):
            w.int(index); w.int(interval); w.int(liveness)
        case .reject(let reason), .shutdown(let reason), .error(let reason):
            w.string(reason)
        case .configure(let c):
            switch c.model {
            case .builtin(let name): w.u8(1); w.string(name)
            case .caffePrototxt(let text): w.u8(2); w.blob(Array(text.utf8))
            case .onnx(let bytes): w.u8(3); w.blob(bytes)
            }
            w.int(c.chunkSize); w.u64(c.seed); w.ints(c.inputShape)
            w.bool(c.bgr); w.doubles(c.mean); w.doubles(c.std); w.bool(c.centerCrop); w.bool(c.keepAffineInputs)
        case .assign(let chunks):
            w.u64(UInt64(chunks.count))
            for chunk in chunks {
                w.int(chunk.index); w.int(chunk.firstImage)
                switch chunk.inputs {
                case .files(let images):
                    w.u8(1); w.u64(UInt64(images.count))
                    for image in images { w.string(image.name); w.blob(image.bytes) }
                case .tensor(let tensor):
                    w.u8(2); w.ints(tensor.shape); w.floats(tensor.data)
                }
            }
        case .directives(let first, let list):
            w.int(first); w.u64(UInt64(list.count))
            for d in list { encode(d, into: &w) }
        case .request(let step, let kind, let chunks, let directiveCount):
            w.int(step)
            switch kind {
            case .outputMoments(let layer): w.u8(1); w.string(layer)
            case .measure(let etaStep, let weightGradients): w.u8(2); w.int(etaStep); w.bool(weightGradients)
            }
            w.ints(chunks); w.int(directiveCount)
        case .reply(let step, let chunk, let uncompressed, let payload):
            w.int(step); w.int(chunk); w.int(uncompressed); w.blob(payload)
        case .heartbeat:
            break
        case .goodbye(let bytes):
            w.int(bytes)
        }
        return w.bytes
    }

    /// - Throws: ``WireError`` naming what is malformed; never traps on hostile input.
    public static func decode(_ bytes: [UInt8]) throws -> WireEnvelope {
        var r = WireReader(bytes, context: "message header")
        let m0 = try r.u8(), m1 = try r.u8()
        guard [m0, m1] == magic else { throw WireError.badMagic(got: [m0, m1]) }
        let version = try r.u16()
        let type = try r.u8()
        let runID = try r.u64()
        // The header and `reject` (type 3: one string) are the same in every version, so a
        // peer of another version can still be told why it is refused.
        guard version == wireProtocolVersion || type == 3 else {
            throw WireError.unsupportedVersion(got: version, expected: wireProtocolVersion)
        }
        var b = WireReader(Array(bytes[r.offset...]), context: "message type \(type)")
        let message: WireMessage
        switch type {
        case 1:
            let host = try b.string(), threads = try b.int()
            let n = try b.u64()
            guard n <= 64 else { throw WireError.tooLarge(context: "hello", what: "capability list", count: n, limit: 64) }
            message = .hello(host: host, threads: threads, capabilities: try (0..<Int(n)).map { _ in try b.string() })
        case 2: message = .welcome(workerIndex: try b.int(), heartbeatIntervalMilliseconds: try b.int(), livenessHeartbeats: try b.int())
        case 3: message = .reject(reason: try b.string())
        case 4:
            let model: RunConfiguration.Model
            switch try b.u8() {
            case 1: model = .builtin(name: try b.string())
            case 2:
                guard let text = String(validating: try b.blob(limit: 1 << 26), as: UTF8.self) else {
                    throw WireError.invalidValue(context: "configure", message: "prototxt is not UTF-8")
                }
                model = .caffePrototxt(text: text)
            case 3: model = .onnx(bytes: try b.blob(limit: 1 << 31))
            case let k: throw WireError.invalidValue(context: "configure", message: "model kind \(k)")
            }
            let config = RunConfiguration(model: model, chunkSize: try b.int(), seed: try b.u64(), inputShape: try b.ints(limit: 8),
                                          bgr: try b.bool(), mean: try b.doubles(limit: 4), std: try b.doubles(limit: 4), centerCrop: try b.bool(),
                                          keepAffineInputs: try b.bool())
            guard config.chunkSize >= 1, config.chunkSize <= 1 << 16, config.inputShape.count == 3, config.inputShape.allSatisfy({ $0 >= 1 && $0 <= 1 << 15 }) else {
                throw WireError.invalidValue(context: "configure", message: "chunk size \(config.chunkSize) or input shape \(config.inputShape) out of range")
            }
            message = .configure(config)
        case 5:
            let n = try b.u64()
            guard n <= 1 << 20 else { throw WireError.tooLarge(context: "assign", what: "chunk list", count: n, limit: 1 << 20) }
            var chunks: [ChunkAssignment] = []
            for _ in 0..<n {
                let index = try b.int(), first = try b.int()
                let inputs: ChunkAssignment.Inputs
                switch try b.u8() {
                case 1:
                    let m = try b.u64()
                    guard m <= 1 << 16 else { throw WireError.tooLarge(context: "assign", what: "image list", count: m, limit: 1 << 16) }
                    inputs = .files(try (0..<Int(m)).map { _ in ChunkAssignment.ImageFile(name: try b.string(limit: 4096), bytes: try b.blob()) })
                case 2:
                    let shape = try b.ints(limit: 4), values = try b.floats()
                    guard shape.count == 4, shape[0] >= 1, shape[0] <= 1 << 16, Tensor.checkedCount(of: shape) == values.count else {
                        throw WireError.invalidValue(context: "assign", message: "input tensor of shape \(shape) with \(values.count) values")
                    }
                    inputs = .tensor(Tensor(shape: shape, data: values))
                case let k: throw WireError.invalidValue(context: "assign", message: "chunk input kind \(k)")
                }
                guard index >= 0, first >= 0 else { throw WireError.invalidValue(context: "assign", message: "negative chunk index") }
                chunks.append(ChunkAssignment(index: index, firstImage: first, inputs: inputs))
            }
            message = .assign(chunks)
        case 6:
            let first = try b.int()
            let n = try b.u64()
            guard n <= 1 << 16 else { throw WireError.tooLarge(context: "directives", what: "directive list", count: n, limit: 1 << 16) }
            message = .directives(first: first, try (0..<Int(n)).map { _ in try decodeDirective(&b) })
        case 7:
            let step = try b.int()
            let kind: StatisticsKind
            switch try b.u8() {
            case 1: kind = .outputMoments(layer: try b.string())
            case 2: kind = .measure(etaStep: try b.int(), weightGradients: try b.bool())
            case let k: throw WireError.invalidValue(context: "request", message: "statistics kind \(k)")
            }
            message = .request(step: step, kind: kind, chunks: try b.ints(), directiveCount: try b.int())
        case 8:
            message = .reply(step: try b.int(), chunk: try b.int(), uncompressedBytes: try b.int(), payload: try b.blob())
        case 9: message = .heartbeat
        case 10: message = .shutdown(reason: try b.string())
        case 11: message = .error(message: try b.string())
        case 12: message = .goodbye(peakResidentBytes: try b.int())
        default: throw WireError.unknownType(type)
        }
        try b.finish()
        return WireEnvelope(runID: runID, message: message)
    }

    // MARK: weight directives

    static func encode(_ d: WeightDirective, into w: inout WireWriter) {
        switch d {
        case .gaussian(let layer, let seed, let std):
            w.u8(1); w.string(layer); w.u64(seed); w.f64(std)
        case .redrawRows(let layer, let rows, let seed, let std, let attempt):
            w.u8(2); w.string(layer); w.ints(rows); w.u64(seed); w.f64(std); w.int(attempt)
        case .affine(let layer, let rowScale, let columnScale, let shift):
            w.u8(3); w.string(layer); w.doubles(rowScale); w.doubles(columnScale); w.doubles(shift)
        case .set(let key, let value):
            w.u8(4); w.string(key); w.ints(value.shape); w.floats(value.data)
        case .normalize(let layer, let scale, let shift):
            w.u8(5); w.string(layer); w.doubles(scale); w.doubles(shift)
        }
    }

    static func decodeDirective(_ b: inout WireReader) throws -> WeightDirective {
        switch try b.u8() {
        case 1: return .gaussian(layer: try b.string(), seed: try b.u64(), std: try b.f64())
        case 2: return .redrawRows(layer: try b.string(), rows: try b.ints(), seed: try b.u64(), std: try b.f64(), attempt: try b.int())
        case 3: return .affine(layer: try b.string(), rowScale: try b.doubles(), columnScale: try b.doubles(), shift: try b.doubles())
        case 4:
            let key = try b.string(), shape = try b.ints(limit: 8), data = try b.floats()
            // Checked product: a forged shape such as [2³², 2³²] must be refused, not trap.
            guard Tensor.checkedCount(of: shape) == data.count else {
                throw WireError.invalidValue(context: "set directive \(key)", message: "shape \(shape) does not hold \(data.count) values")
            }
            return .set(key: key, value: Tensor(shape: shape, data: data))
        case 5: return .normalize(layer: try b.string(), scale: try b.doubles(), shift: try b.doubles())
        case let k: throw WireError.invalidValue(context: "directive", message: "directive kind \(k)")
        }
    }

    // MARK: statistics payloads (before LZ4)

    public static func encode(_ moments: ChannelMoments) -> [UInt8] { moments.encode() }

    /// The exact size in bytes of an encoded ``ChannelMoments`` of `channels` channels: the
    /// 24-byte statistics header, then `mean` and `m2` as Float64 (`24 + 16·C`). A reply to
    /// an `outputMoments` request that declares more is refused before LZ4 decompresses it.
    /// Saturates at `Int.max`.
    public static func momentsBytes(channels: Int) -> Int {
        checkedSum([(24, 1), (channels, 16)])
    }

    /// The largest size in bytes of an encoded ``NetworkMeasurement`` of the layers
    /// `expected` (names, rows, columns), weight-gradient squares included (without them a
    /// layer is `8·columns` bytes smaller). A reply to a `measure` request that declares
    /// more is refused before LZ4 decompresses it. Saturates at `Int.max`.
    public static func measurementBytesBound(expected: [(layer: String, rows: Int, columns: Int)]) -> Int {
        // Per layer: the name's length, rows and columns per channel (8 bytes each); five
        // statistics blobs, each an 8-byte length and a 24-byte header; the squared norm's one
        // value and the weight norms' count (8 each); the name; moments (16 per row) and
        // output-gradient squares (8 per row); input squares, weight-gradient squares and
        // weight norms (8 per column each).
        expected.reduce(8) { total, e in
            checkedSum([(total, 1), (3 * 8 + 5 * 32 + 2 * 8, 1), (e.layer.utf8.count, 1), (e.rows, 24), (e.columns, 24)])
        }
    }

    /// `Σ value·factor`, or `Int.max` when it overflows.
    private static func checkedSum(_ terms: [(value: Int, factor: Int)]) -> Int {
        var total = 0
        for (value, factor) in terms {
            let (product, o1) = value.multipliedReportingOverflow(by: factor)
            let (sum, o2) = total.addingReportingOverflow(product)
            if o1 || o2 { return Int.max }
            total = sum
        }
        return total
    }

    public static func decodeMoments(_ bytes: [UInt8], channels: Int) throws -> ChannelMoments {
        try ChannelMoments(decoding: bytes, expectedDimension: channels)
    }

    public static func encode(_ measurement: NetworkMeasurement) -> [UInt8] {
        var w = WireWriter()
        w.u64(UInt64(measurement.layers.count))
        for l in measurement.layers {
            w.string(l.layer); w.int(l.rows); w.int(l.columnsPerChannel)
            w.blob(l.outputMoments.encode()); w.blob(l.inputSquares.encode()); w.blob(l.outputGradientNorm.encode())
            w.blob(l.outputGradientSquares.encode()); w.blob(l.weightGradientSquares.encode()); w.doubles(l.weightSquares)
        }
        return w.bytes
    }

    /// Decodes a measurement and checks it against the layers `expected` (names, rows and
    /// column counts of the coordinator's own graph).
    public static func decodeMeasurement(_ bytes: [UInt8], expected: [(layer: String, rows: Int, columns: Int)]) throws -> NetworkMeasurement {
        var r = WireReader(bytes, context: "measurement")
        let n = try r.u64()
        guard n == UInt64(expected.count) else { throw WireError.invalidValue(context: "measurement", message: "\(n) layers, expected \(expected.count)") }
        var layers: [LayerMeasurement] = []
        for e in expected {
            let name = try r.string(), rows = try r.int(), perChannel = try r.int()
            guard name == e.layer, rows == e.rows else {
                throw WireError.invalidValue(context: "measurement", message: "layer \(name) with \(rows) rows where \(e.layer) with \(e.rows) was expected")
            }
            let moments = try ChannelMoments(decoding: try r.blob(), expectedDimension: rows)
            let inputs = try SquareSums(decoding: try r.blob(), expectedDimension: e.columns)
            let norm = try SquaredNormSum(decoding: try r.blob())
            let outputs = try SquareSums(decoding: try r.blob(), expectedDimension: rows)
            let gradientBytes = try r.blob()
            let gradients = try SquareSums(decoding: gradientBytes)
            guard gradients.channelCount == 0 || gradients.channelCount == e.columns else {
                throw WireError.invalidValue(context: "measurement of \(name)", message: "\(gradients.channelCount) weight-gradient columns, expected \(e.columns)")
            }
            let weights = try r.doubles()
            guard weights.count == e.columns, weights.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw WireError.invalidValue(context: "measurement of \(name)", message: "weight norms of \(weights.count) columns, expected \(e.columns)")
            }
            layers.append(LayerMeasurement(layer: name, rows: rows, columnsPerChannel: perChannel, outputMoments: moments,
                                           inputSquares: inputs, outputGradientNorm: norm, outputGradientSquares: outputs,
                                           weightGradientSquares: gradients, weightSquares: weights))
        }
        try r.finish()
        return NetworkMeasurement(layers: layers)
    }
}
