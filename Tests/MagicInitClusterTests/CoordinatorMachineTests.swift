import Testing
import MagicInitAlgorithms
import MagicInitCluster
import MagicInitTransport
import MagicInitWire

/// The coordinator's protocol machine driven by scripted events: no sockets, no threads, no
/// sleeping. Partial statistics are plain strings here (the machine only keeps and orders them).
@Suite struct CoordinatorMachineTests {
    typealias Machine = CoordinatorMachine<String>
    static let runID: UInt64 = 77
    static let interval = Duration.milliseconds(100)
    /// Liveness 10 intervals: a worker silent for more than 1 s is lost.
    static let liveness = 10

    static func machine(chunks: Int = 4) -> Machine {
        let configuration = RunConfiguration(model: .builtin(name: "small"), chunkSize: 2, seed: 1, inputShape: [3, 32, 32],
                                             bgr: true, mean: [0, 0, 0], std: [1, 1, 1], centerCrop: true)
        // Chunk c holds c + 1 images, so image counts show which chunks were counted.
        let assignments = (0..<chunks).map { c in
            ChunkAssignment(index: c, firstImage: c * 10, images: (0...c).map { .init(name: "image-\(c)-\($0).jpg", bytes: [UInt8(c)]) })
        }
        return Machine(runID: runID, configuration: configuration, assignments: assignments,
                       heartbeatInterval: interval, livenessInHeartbeats: liveness)
    }

    static func hello(_ host: String) -> WireEnvelope {
        WireEnvelope(runID: 0, message: .hello(host: host, threads: 1, capabilities: ["lz4"]))
    }

    static func envelope(_ message: WireMessage) -> WireEnvelope { WireEnvelope(runID: runID, message: message) }

    static func reply(step: Int, chunk: Int) -> WireEnvelope {
        envelope(.reply(step: step, chunk: chunk, uncompressedBytes: 1, payload: [UInt8(chunk)]))
    }

    static let a = PeerID("a"), b = PeerID("b"), c = PeerID("c"), d = PeerID("d")
    static let request = StatisticsKind.outputMoments(layer: "conv1")

    /// A machine whose `peers` have joined (in that order) and been dealt the chunks.
    static func running(_ peers: [PeerID], chunks: Int = 4) -> Machine {
        var m = machine(chunks: chunks)
        _ = m.handle(.tick(now: .zero))
        _ = m.handle(.awaitWorkers(count: peers.count, timeout: .seconds(120)))
        for peer in peers { _ = m.handle(.received(from: peer, hello(peer.description))) }
        return m
    }

    /// Feeds a reply and, when the machine asks for it to be decoded, its decoded partial
    /// `"p<chunk>"`; returns every action.
    static func answer(_ m: inout Machine, from peer: PeerID, step: Int, chunk: Int) -> [Machine.Action] {
        var actions = m.handle(.received(from: peer, reply(step: step, chunk: chunk)))
        for case .decodeReply(let from, let s, let k, _, _) in actions {
            actions += m.handle(.replyDecoded(from: from, step: s, chunk: k, "p\(k)"))
        }
        return actions
    }

    // MARK: membership and dealing

    @Test func test_hellos_welcomedAndConfigured_chunksDealtRoundRobinInChunkOrder() {
        var m = Self.machine(chunks: 5)
        _ = m.handle(.tick(now: .zero))
        #expect(m.handle(.awaitWorkers(count: 2, timeout: .seconds(120))).isEmpty)
        let first = m.handle(.received(from: Self.b, Self.hello("host-b")))
        #expect(first.sends.map(\.message.name) == ["welcome", "configure"])
        #expect(first.sends.allSatisfy { $0.peer == Self.b })
        guard case .welcome(let index, let ms, let liveness) = first.sends[0].message else { Issue.record("no welcome"); return }
        #expect(index == 0 && ms == 100 && liveness == 10)
        let second = m.handle(.received(from: Self.a, Self.hello("host-a")))
        // The second worker completes the count: welcome, configure, then the deal in joining order.
        let assigns = second.sends.filter { $0.message.name == "assign" }
        #expect(assigns.map(\.peer) == [Self.b, Self.a])
        #expect(assigns.map { $0.message.assignedChunks } == [[0, 2, 4], [1, 3]])
        #expect(second.contains { if case .workersReady = $0 { true } else { false } })
        #expect(m.chunks(of: Self.b) == [0, 2, 4] && m.chunks(of: Self.a) == [1, 3])
    }

    @Test func test_joinTimeout_failsNamingExpectedAndJoined() {
        var m = Self.machine()
        _ = m.handle(.tick(now: .seconds(1)))
        _ = m.handle(.awaitWorkers(count: 3, timeout: .seconds(120)))
        _ = m.handle(.received(from: Self.a, Self.hello("a")))
        #expect(m.handle(.tick(now: .seconds(120))).failures.isEmpty)
        #expect(m.handle(.tick(now: .seconds(121))).failures == [.notEnoughWorkers(expected: 3, joined: 1, seconds: 120)])
    }

    @Test func test_lateJoiner_getsTheWeightLogOnce_andNoChunks() {
        var m = Self.running([Self.a, Self.b])
        let draw = WeightDirective.gaussian(layer: "conv1", seed: 3, std: 1)
        let broadcast = m.handle(.apply([draw]))
        #expect(broadcast.sends.map(\.peer) == [Self.a, Self.b])
        _ = m.handle(.request(Self.request, only: nil))
        let joined = m.handle(.received(from: Self.c, Self.hello("late")))
        #expect(joined.sends.map(\.message.name) == ["welcome", "configure", "directives"])
        #expect(joined.sends.last?.message == .directives(first: 0, [draw]))
        // Another hello from the same peer (or many) queues nothing more.
        #expect(m.handle(.received(from: Self.c, Self.hello("late"))).isEmpty)
        #expect(m.chunks(of: Self.c).isEmpty)
        // Directives after joining go to every member, the late one included.
        let next = m.handle(.apply([.gaussian(layer: "conv2", seed: 3, std: 1)]))
        #expect(Set(next.sends.map(\.peer)) == [Self.a, Self.b, Self.c])
        guard case .directives(let first, _) = next.sends[0].message else { Issue.record("no directives"); return }
        #expect(first == 1)
    }

    // MARK: requests and the exactly-once merge

    @Test func test_request_askedPerOwner_withTheDirectiveCount_onlyWantedChunks() {
        var m = Self.running([Self.a, Self.b])
        _ = m.handle(.apply([.gaussian(layer: "conv1", seed: 3, std: 1), .gaussian(layer: "conv2", seed: 3, std: 1)]))
        let actions = m.handle(.request(.measure(etaStep: 4, weightGradients: true), only: [0, 1, 2]))
        #expect(actions.sends.map(\.peer) == [Self.a, Self.b])
        #expect(actions.sends[0].message == .request(step: 1, kind: .measure(etaStep: 4, weightGradients: true), chunks: [0, 2], directiveCount: 2))
        #expect(actions.sends[1].message == .request(step: 1, kind: .measure(etaStep: 4, weightGradients: true), chunks: [1], directiveCount: 2))
        // Images of chunks 0, 1, 2: 1 + 2 + 3.
        #expect(actions.contains { if case .requestStarted(1, 6) = $0 { true } else { false } })
    }

    @Test func test_repliesInAnyOrder_completeInChunkOrder() {
        var m = Self.running([Self.a, Self.b])
        _ = m.handle(.request(Self.request, only: nil))
        var done: [Int] = []
        var complete: [Machine.ChunkResult]?
        for (peer, chunk) in [(Self.b, 3), (Self.a, 2), (Self.b, 1), (Self.a, 0)] {
            for action in Self.answer(&m, from: peer, step: 1, chunk: chunk) {
                if case .chunkDone(let k, _, _) = action { done.append(k) }
                if case .requestComplete(1, let results) = action { complete = results }
            }
        }
        #expect(done == [3, 2, 1, 0])
        #expect(complete?.map(\.chunk) == [0, 1, 2, 3])
        #expect(complete?.map(\.partial) == ["p0", "p1", "p2", "p3"])
    }

    @Test func test_duplicateStaleAndForeignReplies_areDroppedBeforeDecoding() {
        var m = Self.running([Self.a, Self.b])
        _ = m.handle(.request(Self.request, only: nil))
        #expect(Self.answer(&m, from: Self.a, step: 1, chunk: 0).decodes == [0])
        // The same chunk again, a chunk the sender does not own, a step that is not current,
        // a chunk that does not exist, another run's reply, a non-member's reply.
        #expect(Self.answer(&m, from: Self.a, step: 1, chunk: 0).decodes.isEmpty)
        #expect(Self.answer(&m, from: Self.a, step: 1, chunk: 1).decodes.isEmpty)
        #expect(Self.answer(&m, from: Self.b, step: 0, chunk: 1).decodes.isEmpty)
        #expect(Self.answer(&m, from: Self.b, step: 1, chunk: 9).decodes.isEmpty)
        #expect(m.handle(.received(from: Self.b, WireEnvelope(runID: 5, message: .reply(step: 1, chunk: 1, uncompressedBytes: 1, payload: [1])))).decodes.isEmpty)
        #expect(Self.answer(&m, from: Self.d, step: 1, chunk: 1).decodes.isEmpty)
        // A decoded verdict for a chunk already kept changes nothing.
        #expect(m.handle(.replyDecoded(from: Self.a, step: 1, chunk: 0, "again")).isEmpty)
        _ = Self.answer(&m, from: Self.b, step: 1, chunk: 1)
        _ = Self.answer(&m, from: Self.a, step: 1, chunk: 2)
        let last = Self.answer(&m, from: Self.b, step: 1, chunk: 3)
        guard case .requestComplete(_, let results)? = last.last else { Issue.record("not complete: \(last)"); return }
        #expect(results.map(\.partial) == ["p0", "p1", "p2", "p3"])
        // After completion a late duplicate of the finished step is dropped too.
        #expect(Self.answer(&m, from: Self.b, step: 1, chunk: 3).decodes.isEmpty)
    }

    @Test func test_requestForNoChunk_completesAtOnce() {
        var m = Self.running([Self.a])
        let actions = m.handle(.request(Self.request, only: []))
        #expect(actions.sends.isEmpty)
        #expect(actions.contains { if case .requestComplete(1, let r) = $0 { r.isEmpty } else { false } })
    }

    // MARK: liveness

    @Test func test_heartbeat_sentAfterOneIntervalOfSilence() {
        var m = Self.running([Self.a])
        #expect(m.handle(.tick(now: .milliseconds(50))).sends.isEmpty)
        #expect(m.handle(.tick(now: .milliseconds(100))).sends.map(\.message) == [.heartbeat])
        #expect(m.handle(.tick(now: .milliseconds(150))).sends.isEmpty)
    }

    @Test func test_silentWorker_lost_chunksReassignedToLeastLoaded_unansweredOnesRequestedAgain() {
        var m = Self.running([Self.a, Self.b, Self.c], chunks: 6)   // a: 0,3  b: 1,4  c: 2,5
        _ = m.handle(.request(Self.request, only: nil))
        _ = Self.answer(&m, from: Self.a, step: 1, chunk: 0)
        _ = Self.answer(&m, from: Self.a, step: 1, chunk: 3)
        _ = Self.answer(&m, from: Self.c, step: 1, chunk: 2)
        // b says nothing more; a and c keep talking. Lost only past 1 s of silence.
        for t in stride(from: 100, through: 1000, by: 100) {
            _ = m.handle(.received(from: Self.a, Self.envelope(.heartbeat)))
            _ = m.handle(.received(from: Self.c, Self.envelope(.heartbeat)))
            #expect(m.handle(.tick(now: .milliseconds(t))).failures.isEmpty)
            #expect(m.memberCount == 3, "lost at \(t) ms")
        }
        _ = m.handle(.received(from: Self.a, Self.envelope(.heartbeat)))
        _ = m.handle(.received(from: Self.c, Self.envelope(.heartbeat)))
        let actions = m.handle(.tick(now: .milliseconds(1100)))
        #expect(m.memberCount == 2 && m.lostWorkers == ["1 (b)"])
        // b's chunks 1 and 4, in chunk order, each to the least loaded (ties: lowest index):
        // a and c hold 2 each -> 1 to a; then c holds fewer -> 4 to c.
        #expect(actions.reassignments == [1: 0, 4: 2])
        let sends = actions.sends.filter { $0.message.name != "heartbeat" }
        #expect(sends.map(\.peer) == [Self.a, Self.a, Self.c, Self.c])
        #expect(sends[0].message.assignedChunks == [1])
        #expect(sends[1].message == .request(step: 1, kind: Self.request, chunks: [1], directiveCount: 0))
        #expect(sends[3].message == .request(step: 1, kind: Self.request, chunks: [4], directiveCount: 0))
        #expect(m.chunks(of: Self.a) == [0, 1, 3] && m.chunks(of: Self.c) == [2, 4, 5])
        // A late reply from b is not taken; the heirs' are.
        #expect(Self.answer(&m, from: Self.b, step: 1, chunk: 4).decodes.isEmpty)
        _ = Self.answer(&m, from: Self.a, step: 1, chunk: 1)
        _ = Self.answer(&m, from: Self.c, step: 1, chunk: 5)
        let last = Self.answer(&m, from: Self.c, step: 1, chunk: 4)
        guard case .requestComplete(_, let results)? = last.last else { Issue.record("not complete"); return }
        #expect(results.map(\.chunk) == Array(0..<6))
    }

    @Test func test_answeredChunksOfALostWorker_areReassignedButNotRequestedAgain() {
        var m = Self.running([Self.a, Self.b])   // a: 0,2  b: 1,3
        _ = m.handle(.request(Self.request, only: nil))
        _ = Self.answer(&m, from: Self.b, step: 1, chunk: 1)
        _ = m.handle(.tick(now: .zero))                            // b's reply is credited at 0
        _ = m.handle(.received(from: Self.a, Self.envelope(.heartbeat)))
        let actions = m.handle(.tick(now: .milliseconds(1100)))   // a is credited at 1.1 s, b is not
        #expect(actions.reassignments == [1: 0, 3: 0])
        #expect(actions.sends.compactMap { if case .request(_, _, let chunks, _) = $0.message { chunks } else { nil } } == [[3]])
    }

    @Test func test_twoWorkersLostInOneCheck_everyChunkGoesToTheLiveOne() {
        var m = Self.running([Self.a, Self.b, Self.c], chunks: 6)   // a: 0,3  b: 1,4  c: 2,5
        _ = m.handle(.request(Self.request, only: nil))
        _ = m.handle(.received(from: Self.c, Self.envelope(.heartbeat)))
        let actions = m.handle(.tick(now: .milliseconds(1100)))
        #expect(m.lostWorkers == ["0 (a)", "1 (b)"])
        #expect(actions.reassignments == [0: 2, 1: 2, 3: 2, 4: 2])
        #expect(actions.sends.filter { $0.message.name != "heartbeat" }.allSatisfy { $0.peer == Self.c })
        #expect(m.chunks(of: Self.c) == Set(0..<6))
        var last: [Machine.Action] = []
        for chunk in 0..<6 { last = Self.answer(&m, from: Self.c, step: 1, chunk: chunk) }
        #expect(last.contains { if case .requestComplete = $0 { true } else { false } })
    }

    @Test func test_workersLostOneAfterAnother_chunksFollowTheLiveOnes() {
        var m = Self.running([Self.a, Self.b, Self.c])   // a: 0,3  b: 1  c: 2
        _ = m.handle(.request(Self.request, only: nil))
        _ = m.handle(.unroutable(Self.a))                 // a's connection closed
        _ = m.handle(.received(from: Self.b, Self.envelope(.heartbeat)))
        _ = m.handle(.received(from: Self.c, Self.envelope(.heartbeat)))
        #expect(m.handle(.tick(now: .milliseconds(200))).reassignments == [0: 1, 3: 2])
        _ = m.handle(.received(from: Self.c, Self.envelope(.heartbeat)))
        _ = m.handle(.tick(now: .milliseconds(1000)))
        _ = m.handle(.received(from: Self.c, Self.envelope(.heartbeat)))
        let second = m.handle(.tick(now: .milliseconds(1300)))   // b silent since 200 ms
        #expect(second.reassignments == [0: 2, 1: 2])
        #expect(m.chunks(of: Self.c) == [0, 1, 2, 3] && m.memberCount == 1)
        _ = m.handle(.received(from: Self.c, Self.envelope(.heartbeat)))
        _ = m.handle(.tick(now: .milliseconds(2000)))
        // The last one lost: the run cannot go on.
        #expect(m.handle(.tick(now: .milliseconds(3100))).failures == [.allWorkersLost(step: 1)])
    }

    @Test func test_lateJoiner_isHeirOnlyWhenNoOriginalWorkerIsLeft() {
        var m = Self.running([Self.a, Self.b])   // a: 0,2  b: 1,3
        _ = m.handle(.request(Self.request, only: nil))
        _ = m.handle(.received(from: Self.c, Self.hello("late")))
        _ = m.handle(.received(from: Self.a, Self.envelope(.heartbeat)))
        _ = m.handle(.received(from: Self.c, Self.envelope(.heartbeat)))
        // b lost: a (present from the start) takes its chunks though the late c holds none.
        #expect(m.handle(.tick(now: .milliseconds(1100))).reassignments == [1: 0, 3: 0])
        _ = m.handle(.received(from: Self.c, Self.envelope(.heartbeat)))
        let actions = m.handle(.tick(now: .milliseconds(2200)))
        #expect(actions.reassignments == [0: 2, 1: 2, 2: 2, 3: 2])
        #expect(actions.logs.contains { $0.contains("only workers that joined mid-run are left") })
    }

    @Test func test_lostWorkerThatReappears_isToldToStop_once() {
        var m = Self.running([Self.a, Self.b])
        _ = m.handle(.request(Self.request, only: nil))
        _ = m.handle(.received(from: Self.a, Self.envelope(.heartbeat)))
        _ = m.handle(.tick(now: .milliseconds(1100)))
        #expect(m.lostWorkers == ["1 (b)"])
        let back = m.handle(.received(from: Self.b, Self.reply(step: 1, chunk: 1)))
        #expect(back.decodes.isEmpty)
        guard case .shutdown(let reason)? = back.sends.first?.message, back.sends.count == 1, back.sends[0].peer == Self.b else {
            Issue.record("expected one shutdown to b: \(back)"); return
        }
        #expect(reason.contains("declared lost"))
        #expect(m.handle(.received(from: Self.b, Self.envelope(.heartbeat))).sends.isEmpty)
        #expect(m.handle(.received(from: Self.b, Self.hello("b"))).sends.isEmpty)
        #expect(m.memberCount == 1)
    }

    // MARK: bad peers

    @Test func test_badReply_evictsItsSender_chunksGoOn_runContinues() {
        var m = Self.running([Self.a, Self.b])   // a: 0,2  b: 1,3
        _ = m.handle(.request(Self.request, only: nil))
        let decode = m.handle(.received(from: Self.b, Self.reply(step: 1, chunk: 1)))
        #expect(decode.decodes == [1])
        let evicted = m.handle(.replyRejected(from: Self.b, step: 1, chunk: 1, reason: "LZ4 block malformed"))
        #expect(evicted.failures.isEmpty)
        #expect(evicted.sends.first.map { $0.peer == Self.b && $0.message.name == "shutdown" } == true)
        #expect(evicted.reassignments == [1: 0, 3: 0])
        #expect(m.lostWorkers == ["1 (b)"])
        // With nobody left the bad reply is the failure, naming the worker.
        var lone = Self.running([Self.a])
        _ = lone.handle(.request(Self.request, only: nil))
        _ = lone.handle(.received(from: Self.a, Self.reply(step: 1, chunk: 0)))
        #expect(lone.handle(.replyRejected(from: Self.a, step: 1, chunk: 0, reason: "bad")).failures == [.badReply(worker: "0 (a)", reason: "bad")])
    }

    @Test func test_errorFromANonMember_isIgnored_fromAMember_failsTheRun() {
        var m = Self.running([Self.a])
        let stranger = m.handle(.received(from: Self.d, Self.envelope(.error(message: "boom"))))
        #expect(stranger.failures.isEmpty && stranger.logs.count == 1)
        #expect(m.handle(.received(from: Self.d, Self.envelope(.error(message: "boom")))).isEmpty, "logged twice")
        #expect(m.handle(.received(from: Self.a, Self.envelope(.error(message: "layer conv1: out of memory")))).failures
                == [.worker("worker 0: layer conv1: out of memory")])
    }

    @Test func test_anotherProtocolVersion_getsRejectNamingBothVersions_once() {
        var m = Self.running([Self.a])
        let first = m.handle(.undecodable(from: Self.d, .unsupportedVersion(got: 9, expected: wireProtocolVersion)))
        guard case .reject(let reason)? = first.sends.first?.message, first.sends[0].peer == Self.d else {
            Issue.record("no reject: \(first)"); return
        }
        #expect(reason.contains("version 9") && reason.contains("version \(wireProtocolVersion)"), "\(reason)")
        #expect(m.handle(.undecodable(from: Self.d, .unsupportedVersion(got: 9, expected: wireProtocolVersion))).sends.isEmpty)
        #expect(m.memberCount == 1)
    }

    @Test func test_shutdown_toEveryMember_goodbyesCollected() {
        var m = Self.running([Self.a, Self.b])
        let actions = m.handle(.shutDown(reason: "run complete"))
        #expect(actions.sends.map(\.peer) == [Self.a, Self.b])
        #expect(actions.sends.allSatisfy { $0.message == .shutdown(reason: "run complete") })
        #expect(m.awaitingGoodbyes)
        _ = m.handle(.received(from: Self.a, Self.envelope(.goodbye(peakResidentBytes: 10))))
        _ = m.handle(.received(from: Self.d, Self.envelope(.goodbye(peakResidentBytes: 99))))
        #expect(m.awaitingGoodbyes)
        _ = m.handle(.received(from: Self.b, Self.envelope(.goodbye(peakResidentBytes: 20))))
        #expect(!m.awaitingGoodbyes && m.goodbyes == ["0 (a)": 10, "1 (b)": 20])
    }
}

extension Array where Element == CoordinatorMachine<String>.Action {
    var sends: [(peer: PeerID, message: WireMessage)] {
        compactMap { if case .send(let message, let peer) = $0 { (peer, message) } else { nil } }
    }
    var decodes: [Int] { compactMap { if case .decodeReply(_, _, let chunk, _, _) = $0 { chunk } else { nil } } }
    var failures: [ClusterError] { compactMap { if case .fail(let error) = $0 { error } else { nil } } }
    var logs: [String] { compactMap { if case .log(let line) = $0 { line } else { nil } } }
    /// Every reassignment, merged: chunk → heir's worker index.
    var reassignments: [Int: Int] {
        reduce(into: [:]) { all, action in if case .reassign(let map) = action { all.merge(map) { $1 } } }
    }
}

extension WireMessage {
    /// The chunk indices of an `assign`, in order.
    var assignedChunks: [Int] {
        if case .assign(let chunks) = self { chunks.map(\.index) } else { [] }
    }
}
