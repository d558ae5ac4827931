import Foundation
import Testing
import MagicInitAlgorithms
@testable import MagicInitCluster
import MagicInitCore
import MagicInitStatistics
import MagicInitTransport
@testable import MagicInitWire

/// Frames an attacker or a broken peer might send (issue 19, part 2): each is refused with
/// a reason, never a trap, never an allocation the frame does not pay for, and a flood of
/// them costs a log line per interval, not one per frame.
@Suite struct HostileFrameTests {
    /// The 82-byte `directives` frame whose `set` shape is [2³², 2³²]: its element count
    /// overflowed `Int` in `decodeDirective` and trapped (exit 132) the coordinator and
    /// every worker it reached.
    static func overflowingSetDirective() -> [UInt8] {
        var w = WireWriter()
        w.u8(0x4D); w.u8(0x49); w.u16(wireProtocolVersion); w.u8(6); w.u64(1)
        w.int(0); w.u64(1)
        w.u8(4); w.string("conv1.weight"); w.ints([1 << 32, 1 << 32]); w.floats([])
        return w.bytes
    }

    @Test func test_directiveWithOverflowingSetShape_82ByteFrame_isRefusedNotTrapped() throws {
        let frame = Self.overflowingSetDirective()
        #expect(frame.count == 82)
        #expect(throws: WireError.invalidValue(context: "set directive conv1.weight",
                                               message: "shape [4294967296, 4294967296] does not hold 0 values")) {
            try WireCodec.decode(frame)
        }
        // A shape whose product wraps to exactly the values given is refused too
        // (2⁶⁴ · 1 wraps to 0 with unchecked multiplication).
        var w = WireWriter()
        w.u8(0x4D); w.u8(0x49); w.u16(wireProtocolVersion); w.u8(6); w.u64(1)
        w.int(0); w.u64(1)
        w.u8(4); w.string("fc.bias"); w.ints([1 << 32, 1 << 32, 1]); w.floats([])
        #expect(throws: WireError.self) { try WireCodec.decode(w.bytes) }
    }

    /// The same frame sent to a running worker is dropped (logged) and the worker goes on:
    /// it still answers the coordinator's shutdown with a goodbye.
    @Test func test_worker_survivesTheOverflowingFrame() throws {
        let hub = InProcessHub()
        let router = hub.makeRouter()
        var settings = WorkerSession.Settings(threads: 1, host: "test")
        settings.coordinatorTimeout = .seconds(10)
        let lines = LockedBox<[String]>([])
        let session = WorkerSession(transport: hub.makeDealer(identity: Array("w".utf8)), settings: settings,
                                    log: { line in lines.update { $0.append(line) } })
        let outcome = LockedBox<String?>(nil)
        Thread {
            do { try session.run(); outcome.value = "returned" } catch { outcome.value = "\(error)" }
        }.start()
        let (peer, _) = try #require(try router.receive(timeout: .seconds(5)), "no hello")
        try router.send(Self.overflowingSetDirective(), to: peer)
        try router.send(WireCodec.encode(WireEnvelope(runID: 1, message: .shutdown(reason: "test"))), to: peer)
        let deadline = ContinuousClock.now + .seconds(10)
        var goodbye = false
        while !goodbye && ContinuousClock.now < deadline {
            guard let (_, body) = try router.receive(timeout: .milliseconds(100)) else { continue }
            if case .goodbye = try WireCodec.decode(body).message { goodbye = true }
        }
        #expect(goodbye, "the worker did not answer shutdown after the hostile frame")
        #expect(lines.value.contains { $0.contains("malformed") && $0.contains("4294967296") }, "\(lines.value)")
    }

    /// The byte sizes the coordinator expects for replies are those the codec writes.
    @Test func test_replySizeBounds_equalEncodedSizes() throws {
        let moments = ChannelMoments(count: 3, mean: [1, 2, 3, 4, 5], m2: [1, 1, 1, 1, 1])
        #expect(WireCodec.momentsBytes(channels: 5) == WireCodec.encode(moments).count)
        func layer(_ name: String, rows: Int, columns: Int, gradients: Bool) -> LayerMeasurement {
            LayerMeasurement(layer: name, rows: rows, columnsPerChannel: 9,
                             outputMoments: ChannelMoments(count: 1, mean: Array(repeating: 0, count: rows), m2: Array(repeating: 0, count: rows)),
                             inputSquares: SquareSums(count: 1, sumOfSquares: Array(repeating: 1, count: columns)),
                             outputGradientNorm: SquaredNormSum(imageCount: 1, sum: 2),
                             outputGradientSquares: SquareSums(count: 1, sumOfSquares: Array(repeating: 1, count: rows)),
                             weightGradientSquares: gradients ? SquareSums(count: 1, sumOfSquares: Array(repeating: 1, count: columns)) : SquareSums(channelCount: 0),
                             weightSquares: Array(repeating: 1, count: columns))
        }
        let expected: [(layer: String, rows: Int, columns: Int)] = [("conv1", 16, 27), ("fc_é", 10, 400)]
        let full = NetworkMeasurement(layers: expected.map { layer($0.layer, rows: $0.rows, columns: $0.columns, gradients: true) })
        let bare = NetworkMeasurement(layers: expected.map { layer($0.layer, rows: $0.rows, columns: $0.columns, gradients: false) })
        #expect(WireCodec.measurementBytesBound(expected: expected) == WireCodec.encode(full).count)
        #expect(WireCodec.encode(bare).count < WireCodec.encode(full).count)
        #expect(WireCodec.momentsBytes(channels: .max / 8) == .max)
        #expect(WireCodec.measurementBytesBound(expected: [("x", .max / 2, 1)]) == .max)
    }

    /// A reply whose declared uncompressed size exceeds what its request can produce (here
    /// 1 GiB for the moments of 16 channels, 280 bytes) is refused on the declared size
    /// alone: before, the coordinator allocated and decompressed up to its 1 GiB message
    /// limit first (a 4.2 MB reply cost 1 GiB).
    @Test func test_replyDeclaringMoreThanItsRequestNeeds_refusedBeforeDecompression() async throws {
        let hub = InProcessHub()
        let plan = try DeterminismTests.plan()
        let source = try ClusterStatisticsSource(transport: hub.makeRouter(), network: BuiltinNetworks.small(),
                                                 configuration: DeterminismTests.configuration(), chunks: plan.assignments,
                                                 runID: 3, log: { _ in })
        let fake = hub.makeDealer(identity: Array("fake".utf8))
        try fake.send(WireCodec.encode(WireEnvelope(runID: 0, message: .hello(host: "fake", threads: 1, capabilities: []))))
        try await source.start(expectedWorkers: 1)
        let layer = try #require(source.graph.nodes.first { $0.kind.isAffine }).name
        let channels = source.graph.blobs[source.graph.nodes[source.graph.node(named: layer)!].tops[0]].shape[1]
        Thread {
            // Answer the first request's first chunk with a 4.2 MB block declaring 1 GiB.
            while let body = try? fake.receive(timeout: .seconds(10)) {
                guard let envelope = try? WireCodec.decode(body), case .request(let step, _, let chunks, _) = envelope.message else { continue }
                let reply = WireMessage.reply(step: step, chunk: chunks[0], uncompressedBytes: 1 << 30, payload: [UInt8](repeating: 0x1F, count: 4_200_000))
                try? fake.send(WireCodec.encode(WireEnvelope(runID: 3, message: reply)))
                return
            }
        }.start()
        do {
            _ = try await source.outputMoments(layer: layer)
            Issue.record("a reply declaring 1 GiB was accepted")
        } catch ClusterError.badReply(_, let reason) {
            let limit = WireCodec.momentsBytes(channels: channels)
            #expect(reason == "\(LZ4Error.tooLarge(originalSize: 1 << 30, limit: limit))", "\(reason)")
        }
        await source.shutdown(reason: "test finished", wait: .milliseconds(100))
    }

    /// 20,000 malformed frames at a coordinator give one log line (the first, in full) within
    /// the 10 s interval; before, one line each.
    @Test func test_floodOfMalformedFrames_atCoordinator_loggedOnce() async throws {
        let hub = InProcessHub()
        var settings = ClusterStatisticsSource.Settings()
        settings.joinTimeout = .seconds(2)
        let lines = LockedBox<[String]>([])
        let source = try ClusterStatisticsSource(transport: hub.makeRouter(), network: BuiltinNetworks.small(),
                                                 configuration: DeterminismTests.configuration(), chunks: [], runID: 5, settings: settings,
                                                 log: { line in lines.update { $0.append(line) } })
        let stranger = hub.makeDealer(identity: Array("noise".utf8))
        var generator = SplitMix64(seed: 19)
        for _ in 0..<20_000 {
            try stranger.send((0..<Int(generator.next() % 40)).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
        }
        await #expect(throws: ClusterError.self) { try await source.start(expectedWorkers: 1) }
        let malformed = lines.value.filter { $0.contains("malformed") }
        #expect(malformed.count == 1, "\(malformed.count) lines: \(malformed.prefix(3))")
    }

    @Test func test_malformedMessageLog_countsPerInterval() {
        var log = MalformedMessageLog(interval: .seconds(10))
        let t0 = ContinuousClock.now
        #expect(log.record("from a: bad magic", now: t0) == "dropped a malformed message from a: bad magic")
        for i in 1...999 { #expect(log.record("from a: \(i)", now: t0 + .milliseconds(i)) == nil) }
        #expect(log.flush(now: t0 + .seconds(9)) == nil)
        #expect(log.flush(now: t0 + .seconds(10)) == "dropped 999 more malformed message(s) in the last 10 s (the last from a: 999)")
        #expect(log.flush(now: t0 + .seconds(30)) == nil, "nothing new: no line, and the window closes")
        #expect(log.record("from b: x", now: t0 + .seconds(31)) == "dropped a malformed message from b: x")
        #expect(log.record("from b: y", now: t0 + .seconds(32)) == nil)
        #expect(log.record("from b: z", now: t0 + .seconds(42)) == "dropped 1 more malformed message(s) in the last 11 s (the last from b: y)")
        #expect(log.flush(now: t0 + .seconds(52)) == "dropped 1 more malformed message(s) in the last 10 s (the last from b: z)")
        #expect(log.total == 1003)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small seeded generator for test inputs.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
