import Foundation
import Testing
import MagicInitAlgorithms
@testable import MagicInitCluster
import MagicInitCore
import MagicInitStatistics
import MagicInitTransport
@testable import MagicInitWire

/// A seeded fuzzer of the decoders a peer's bytes reach (issue 19, part 2; decoder level —
/// the cluster-level fuzzer comes with the coordinator's state machine): 120,000 frames,
/// a third random bytes, a third valid messages with random mutations, a third valid
/// messages with a size, count or shape field set to an extreme value. Every frame must be
/// decoded or refused with an error — a trap ends the test process — and what a frame
/// decodes to must never hold more bytes than the frame itself (no allocation the sender
/// did not pay for). Decoded replies go on through LZ4 and the statistics decoders with the
/// coordinator's bound; decoded `configure` messages build their network, as a worker does.
@Suite struct WireCodecFuzzTests {
    static let extremes: [UInt64] = [0, 1, 0xFF, 1 << 31, 1 << 32, (1 << 32) + 1, 1 << 62, UInt64(Int64.max), 1 << 63, .max, .max - 7]

    /// Valid frames of every message type, a reply carrying real statistics among them.
    static func seeds() -> [[UInt8]] {
        let moments = ChannelMoments(count: 4, mean: [0.5, -1, 2], m2: [1, 2, 3])
        let momentsReply = WireCodec.encode(moments)
        var messages = WireCodecTests.messages
        messages.append(.reply(step: 1, chunk: 0, uncompressedBytes: momentsReply.count, payload: LZ4.compress(momentsReply)))
        messages.append(.directives(first: 0, [.set(key: "conv1.weight", value: Tensor(shape: [2, 1, 1, 2], data: [1, 2, 3, 4]))]))
        return messages.map { WireCodec.encode(WireEnvelope(runID: 7, message: $0)) } + [HostileFrameTests.overflowingSetDirective()]
    }

    @Test func test_120000FramesOfRandomMutatedAndExtremeMessages_neverTrapNorOverAllocate() throws {
        var random = SplitMix64(seed: 0x19_2026)
        let seeds = Self.seeds()
        var decoded = 0, refused = 0, replies = 0, networks = 0
        var largestRatio = 0.0
        for i in 0..<120_000 {
            let frame: [UInt8]
            switch i % 3 {
            case 0:
                frame = (0..<Int(random.next() % 96)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 1:
                frame = Self.mutate(seeds[Int(random.next() % UInt64(seeds.count))], &random)
            default:
                frame = Self.extreme(seeds[Int(random.next() % UInt64(seeds.count))], &random)
            }
            guard let envelope = try? WireCodec.decode(frame) else {
                refused += 1
                continue
            }
            decoded += 1
            let held = Self.heldBytes(envelope.message)
            #expect(held <= frame.count, "a \(frame.count)-byte frame decoded to \(held) bytes: \(envelope.message.name)")
            largestRatio = max(largestRatio, Double(held) / Double(max(frame.count, 1)))
            switch envelope.message {
            case .reply(_, _, let size, let payload):
                replies += 1
                // The coordinator's bound for 3 channels: the exact size of their moments.
                if let bytes = try? LZ4.decompress(payload, originalSize: size, limit: WireCodec.momentsBytes(channels: 3)) {
                    _ = try? WireCodec.decodeMoments(bytes, channels: 3)
                }
            case .configure(let configuration):
                if (try? configuration.model.network()) != nil { networks += 1 }
            default:
                break
            }
        }
        // The statistics decoders on raw bytes, as a reply's payload after LZ4.
        let expected: [(layer: String, rows: Int, columns: Int)] = [("conv1", 3, 27)]
        for _ in 0..<20_000 {
            let bytes = (0..<Int(random.next() % 160)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            _ = try? WireCodec.decodeMoments(bytes, channels: 3)
            _ = try? WireCodec.decodeMeasurement(bytes, expected: expected)
        }
        print("[fuzz] 120000 frames: \(decoded) decoded (\(replies) replies, \(networks) configure → network), \(refused) refused; largest decoded/frame bytes \(String(format: "%.2f", largestRatio))")
        #expect(decoded > 1000 && refused > 1000, "the mutations should both keep and break frames: \(decoded) decoded, \(refused) refused")
    }

    /// 1–6 random edits: byte flips, byte overwrites, truncation, insertion, deletion.
    static func mutate(_ seed: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var frame = seed
        for _ in 0...(random.next() % 6) {
            guard !frame.isEmpty else { break }
            let at = Int(random.next() % UInt64(frame.count))
            switch random.next() % 5 {
            case 0: frame[at] ^= UInt8(1 << (random.next() % 8))
            case 1: frame[at] = UInt8(truncatingIfNeeded: random.next())
            case 2: frame.removeLast(frame.count - at)
            case 3: frame.insert(UInt8(truncatingIfNeeded: random.next()), at: at)
            default: frame.remove(at: at)
            }
        }
        return frame
    }

    /// One 8-byte little-endian field after the 13-byte header (most lengths, counts, shape
    /// extents and sizes are such fields) set to an extreme value.
    static func extreme(_ seed: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var frame = seed
        guard frame.count >= 21 else { return frame }
        let at = 13 + Int(random.next() % UInt64(frame.count - 20))
        let value = extremes[Int(random.next() % UInt64(extremes.count))]
        for k in 0..<8 { frame[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
        return frame
    }

    /// The bytes a decoded message holds in arrays and strings.
    static func heldBytes(_ message: WireMessage) -> Int {
        func tensor(_ t: Tensor) -> Int { 8 * t.shape.count + 4 * t.data.count }
        switch message {
        case .hello(let host, _, let capabilities): return host.utf8.count + capabilities.reduce(0) { $0 + $1.utf8.count }
        case .reject(let s), .shutdown(let s), .error(let s): return s.utf8.count
        case .configure(let c):
            let model: Int
            switch c.model {
            case .builtin(let name): model = name.utf8.count
            case .caffePrototxt(let text): model = text.utf8.count
            case .onnx(let bytes): model = bytes.count
            }
            return model + 8 * (c.inputShape.count + c.mean.count + c.std.count)
        case .assign(let chunks):
            return chunks.reduce(0) { total, chunk in
                switch chunk.inputs {
                case .files(let files): total + files.reduce(0) { $0 + $1.name.utf8.count + $1.bytes.count }
                case .tensor(let t): total + tensor(t)
                }
            }
        case .directives(_, let list):
            return list.reduce(0) { total, d in
                switch d {
                case .gaussian(let layer, _, _): total + layer.utf8.count
                case .redrawRows(let layer, let rows, _, _, _): total + layer.utf8.count + 8 * rows.count
                case .affine(let layer, let r, let c, let s): total + layer.utf8.count + 8 * (r.count + c.count + s.count)
                case .normalize(let layer, let r, let s): total + layer.utf8.count + 8 * (r.count + s.count)
                case .set(let key, let value): total + key.utf8.count + tensor(value)
                }
            }
        case .request(_, let kind, let chunks, _):
            if case .outputMoments(let layer) = kind { return layer.utf8.count + 8 * chunks.count }
            return 8 * chunks.count
        case .reply(_, _, _, let payload): return payload.count
        case .welcome, .heartbeat, .goodbye: return 0
        }
    }
}
