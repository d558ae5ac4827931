import Foundation
import Testing
@testable import MagicInitCluster
import MagicInitCore
import MagicInitTransport
@testable import MagicInitWire

/// A peer speaking another protocol version is told so with a `reject` naming both
/// versions (cluster/PROTOCOL.md, "Session" 1), on both sides; it is never just dropped.
@Suite struct VersionHandshakeTests {
    /// `message` encoded as this build does, with the header's version field set to `version`.
    static func encoded(_ message: WireMessage, version: UInt16, runID: UInt64 = 0) -> [UInt8] {
        var bytes = WireCodec.encode(WireEnvelope(runID: runID, message: message))
        bytes[2] = UInt8(version & 0xFF); bytes[3] = UInt8(version >> 8)
        return bytes
    }

    @Test func test_rejectOfAnyVersion_decodes() throws {
        let envelope = try WireCodec.decode(Self.encoded(.reject(reason: "why"), version: 9))
        #expect(envelope.message == .reject(reason: "why"))
        #expect(throws: WireError.unsupportedVersion(got: 9, expected: wireProtocolVersion)) {
            try WireCodec.decode(Self.encoded(.hello(host: "h", threads: 1, capabilities: []), version: 9))
        }
    }

    @Test func test_helloOfAnotherVersion_getsRejectNamingBothVersions_once() async throws {
        let hub = InProcessHub()
        var settings = ClusterStatisticsSource.Settings()
        settings.joinTimeout = .milliseconds(600)
        let configuration = RunConfiguration(model: .builtin(name: "small"), chunkSize: 2, seed: 0, inputShape: [3, 32, 32],
                                             bgr: true, mean: [0, 0, 0], std: [1, 1, 1], centerCrop: true)
        let lines = LockedBox<[String]>([])
        let source = try ClusterStatisticsSource(transport: hub.makeRouter(), network: BuiltinNetworks.small(), configuration: configuration,
                                                 chunks: [], runID: 5, settings: settings, log: { line in lines.update { $0.append(line) } })
        let stranger = hub.makeDealer(identity: Array("old-worker".utf8))
        let hello = Self.encoded(.hello(host: "old", threads: 1, capabilities: []), version: 9)
        try stranger.send(hello)
        try stranger.send(hello)
        await #expect(throws: ClusterError.self) { try await source.start(expectedWorkers: 1) }
        let reply = try #require(try stranger.receive(timeout: .seconds(2)), "no reply to a hello of version 9")
        let envelope = try WireCodec.decode(reply)
        guard case .reject(let reason) = envelope.message else {
            Issue.record("expected reject, got \(envelope.message.name)"); return
        }
        #expect(reason.contains("version 9") && reason.contains("version \(wireProtocolVersion)"), "\(reason)")
        #expect(try stranger.receive(timeout: .milliseconds(200)) == nil, "the second hello was answered again")
        #expect(lines.value.filter { $0.contains("refused") }.count == 1, "\(lines.value)")
    }

    @Test func test_workerReceivingAnotherVersion_failsNamingBothVersions() throws {
        let hub = InProcessHub()
        let router = hub.makeRouter()
        let dealer = hub.makeDealer(identity: Array("w".utf8))
        var settings = WorkerSession.Settings(threads: 1, host: "test")
        settings.coordinatorTimeout = .seconds(5)
        let session = WorkerSession(transport: dealer, settings: settings, log: { _ in })
        let done = LockedBox<[String]>([])
        let finished = DispatchSemaphore(value: 0)
        Thread {
            let outcome: String
            do { try session.run(); outcome = "returned" } catch { outcome = "\(error)" }
            done.value.append(outcome)
            finished.signal()
        }.start()
        let (peer, _) = try #require(try router.receive(timeout: .seconds(5)), "the worker sent no hello")
        try router.send(Self.encoded(.welcome(workerIndex: 0, heartbeatIntervalMilliseconds: 100, livenessHeartbeats: 10), version: 9, runID: 1), to: peer)
        _ = finished.wait(timeout: .now() + 5)
        let outcome = try #require(done.value.first, "the worker kept running after a message of version 9")
        #expect(outcome.contains("version 9") && outcome.contains("version \(wireProtocolVersion)"), "\(outcome)")
    }
}
