import Testing
import MagicInitAlgorithms
import MagicInitCluster
import MagicInitWire

/// The worker's protocol machine driven by scripted events: no sockets, no threads, no sleeping.
@Suite struct WorkerMachineTests {
    static let runID: UInt64 = 31
    static let configuration = RunConfiguration(model: .builtin(name: "small"), chunkSize: 2, seed: 1, inputShape: [3, 32, 32],
                                                bgr: true, mean: [0, 0, 0], std: [1, 1, 1], centerCrop: true)
    static let d0 = WeightDirective.gaussian(layer: "conv1", seed: 1, std: 1)
    static let d1 = WeightDirective.gaussian(layer: "conv2", seed: 1, std: 1)
    static let d2 = WeightDirective.gaussian(layer: "conv3", seed: 1, std: 1)

    static func envelope(_ message: WireMessage) -> WireEnvelope { WireEnvelope(runID: runID, message: message) }

    /// A machine that said hello and was welcomed (heartbeat 100 ms) and configured.
    static func configured(timeout: Duration = .seconds(60)) -> WorkerMachine {
        var m = WorkerMachine(host: "w", threads: 2, coordinatorTimeout: timeout)
        _ = m.handle(.start)
        _ = m.handle(.received(envelope(.welcome(workerIndex: 3, heartbeatIntervalMilliseconds: 100, livenessHeartbeats: 10))))
        _ = m.handle(.received(envelope(.configure(configuration))))
        return m
    }

    @Test func test_start_saysHello_thenWelcomeSetsTheRunID() {
        var m = WorkerMachine(host: "w", threads: 2, coordinatorTimeout: .seconds(60))
        #expect(m.handle(.start) == [.send(WireEnvelope(runID: 0, message: .hello(host: "w", threads: 2, capabilities: ["lz4", "algorithm1", "algorithm2"])))])
        _ = m.handle(.received(Self.envelope(.welcome(workerIndex: 3, heartbeatIntervalMilliseconds: 100, livenessHeartbeats: 10))))
        #expect(m.runID == Self.runID && m.workerIndex == 3)
        #expect(m.handle(.computed(.heartbeat)) == [.send(Self.envelope(.heartbeat))])
        // Another run's message is dropped.
        let foreign = m.handle(.received(WireEnvelope(runID: 5, message: .configure(Self.configuration))))
        #expect(!foreign.contains { if case .compute = $0 { true } else { false } })
    }

    @Test func test_directives_appliedInLogOrder_overlapsSkipped_gapsFail() {
        var m = Self.configured()
        #expect(m.handle(.received(Self.envelope(.directives(first: 0, [Self.d0, Self.d1])))) == [.compute(.apply([Self.d0, Self.d1]))])
        // A resent overlap (the whole log to a late joiner, say) applies only what is new.
        #expect(m.handle(.received(Self.envelope(.directives(first: 1, [Self.d1, Self.d2])))) == [.compute(.apply([Self.d2]))])
        #expect(m.handle(.received(Self.envelope(.directives(first: 0, [Self.d0])))) == [])
        #expect(m.handle(.received(Self.envelope(.directives(first: 5, [Self.d0])))).last
                == .fail(.worker("directive 5 arrived but only 3 were applied (lost message)")))
    }

    @Test func test_request_computedOnlyAtTheDirectiveCountItNames() {
        var m = Self.configured()
        _ = m.handle(.received(Self.envelope(.directives(first: 0, [Self.d0]))))
        let kind = StatisticsKind.outputMoments(layer: "conv1")
        #expect(m.handle(.received(Self.envelope(.request(step: 2, kind: kind, chunks: [0, 4], directiveCount: 1))))
                == [.compute(.answer(step: 2, kind: kind, chunks: [0, 4]))])
        #expect(m.handle(.received(Self.envelope(.request(step: 3, kind: kind, chunks: [0], directiveCount: 2)))).last
                == .fail(.worker("request for step 3 expects 2 directives applied, have 1")))
    }

    @Test func test_workBeforeConfigure_fails() {
        var m = WorkerMachine(host: "w", threads: 1, coordinatorTimeout: .seconds(60))
        _ = m.handle(.start)
        #expect(m.handle(.received(Self.envelope(.assign([])))) == [.fail(.worker("chunks assigned before configure"))])
        #expect(m.handle(.received(Self.envelope(.heartbeat))) == [], "a failed machine acted again")
    }

    @Test func test_heartbeatAfterAnIntervalOfSilence_coordinatorSilencePastTheTimeoutFails() {
        var m = Self.configured(timeout: .seconds(2))
        #expect(m.handle(.tick(now: .milliseconds(50))) == [])
        #expect(m.handle(.tick(now: .milliseconds(100))) == [.send(Self.envelope(.heartbeat))])
        _ = m.handle(.received(Self.envelope(.heartbeat)))
        _ = m.handle(.tick(now: .milliseconds(150)))               // heard, credited at 150 ms
        #expect(m.handle(.tick(now: .milliseconds(2150))).allSatisfy { if case .fail = $0 { false } else { true } })
        #expect(m.handle(.tick(now: .milliseconds(2151))) == [.fail(.coordinatorSilent(seconds: 2))])
    }

    @Test func test_otherProtocolVersion_failsNamingBothVersions() {
        var m = Self.configured()
        let actions = m.handle(.undecodable(.unsupportedVersion(got: 9, expected: wireProtocolVersion)))
        guard case .fail(.rejected(let reason))? = actions.last else { Issue.record("\(actions)"); return }
        #expect(reason.contains("version 9") && reason.contains("version \(wireProtocolVersion)"))
    }

    @Test func test_shutdown_finishes_computeFailure_sendsErrorAndFails() {
        var m = Self.configured()
        #expect(m.handle(.received(Self.envelope(.shutdown(reason: "run complete")))).last == .finish(reason: "run complete"))
        #expect(m.handle(.tick(now: .seconds(100))) == [])
        var n = Self.configured()
        #expect(n.handle(.computeFailed("chunk 2: image x.jpg: not a JPEG"))
                == [.send(Self.envelope(.error(message: "chunk 2: image x.jpg: not a JPEG"))), .fail(.worker("chunk 2: image x.jpg: not a JPEG"))])
        var o = Self.configured()
        #expect(o.handle(.received(Self.envelope(.reject(reason: "full")))) == [.fail(.rejected("full"))])
    }
}
