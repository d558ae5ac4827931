import MagicInitAlgorithms
import MagicInitTransport
import MagicInitWire

/// The coordinator's side of the protocol (cluster/PROTOCOL.md, "Session") as a pure state
/// machine: membership, liveness, dealing chunks, reassigning them, exactly-once collection
/// of per-chunk replies. It never touches a clock, a socket, LZ4 or the codec: its shell
/// (``ClusterStatisticsSource``) feeds it decoded messages and ticks carrying the time, and
/// performs the actions it returns in order (SWIM-style; docs/DESIGN.md §3).
///
/// Time is a `Duration` since an origin the shell picks (its start). A peer is *heard* when
/// any message from it arrives; the next tick credits it with that tick's time, so messages
/// that queued up while the coordinator computed (between requests) count as soon as the
/// shell has read them, however long ago they were sent.
///
/// `Partial` is one chunk's decoded statistics; the machine keeps them only to hand them
/// back in chunk order when a request is complete (``Action/requestComplete(step:results:)``).
public struct CoordinatorMachine<Partial: Sendable>: Sendable {
    /// What happened, as the shell tells it.
    public enum Event: Sendable {
        /// The driver waits for `count` workers for at most `timeout`, then the chunks are dealt.
        case awaitWorkers(count: Int, timeout: Duration)
        /// A message from `peer`, decoded (any version check passed).
        case received(from: PeerID, WireEnvelope)
        /// Bytes from `peer` that did not decode: traffic all the same; another protocol version
        /// is answered with `reject` (once per peer). The shell logs the others.
        case undecodable(from: PeerID, WireError)
        /// The time now: heartbeats, liveness and the join deadline are checked.
        case tick(now: Duration)
        /// The driver asks for `kind` over the chunks in `only` (every chunk when `nil`).
        case request(StatisticsKind, only: Set<Int>?)
        /// The driver appends `directives` to the run's directive log.
        case apply([WeightDirective])
        /// The shell decoded the reply of ``Action/decodeReply(from:step:chunk:uncompressedBytes:payload:)``.
        case replyDecoded(from: PeerID, step: Int, chunk: Int, Partial)
        /// The reply could not be decompressed or decoded: its sender is evicted.
        case replyRejected(from: PeerID, step: Int, chunk: Int, reason: String)
        /// A send to `peer` found its connection gone (ROUTER_MANDATORY): lost at the next tick.
        case unroutable(PeerID)
        /// The run is over (or failed): every worker is told to stop.
        case shutDown(reason: String)
    }

    /// One chunk's statistics, as returned with a completed request.
    public struct ChunkResult: Sendable {
        public var chunk: Int
        public var partial: Partial
    }

    /// What the shell must do, in order.
    public enum Action: Sendable {
        case send(WireMessage, to: PeerID)
        /// Decompress and decode this reply's payload, then report it with
        /// ``Event/replyDecoded(from:step:chunk:_:)`` or ``Event/replyRejected(from:step:chunk:reason:)``.
        case decodeReply(from: PeerID, step: Int, chunk: Int, uncompressedBytes: Int, payload: [UInt8])
        /// The expected workers have joined and the chunks are dealt.
        case workersReady
        /// A request went out: `images` images over its chunks.
        case requestStarted(step: Int, images: Int)
        /// One more chunk of the current request is answered and kept.
        case chunkDone(chunk: Int, imagesDone: Int, imagesTotal: Int)
        /// Every wanted chunk is answered, exactly once; `results` in chunk order.
        case requestComplete(step: Int, results: [ChunkResult])
        /// Chunks of lost or evicted workers handed on: chunk → the heir's worker index (a
        /// record for the shell; the `assign` and `request` messages are separate sends).
        case reassign([Int: Int])
        /// A worker left the run (silent, disconnected, or evicted for a bad reply): `why`.
        /// A record for the shell; its chunks are handed on in a following ``reassign(_:)``.
        case evict(worker: String, why: String)
        /// A line for the log (subject first).
        case log(String)
        /// The run cannot go on.
        case fail(ClusterError)
    }

    struct Member: Sendable {
        var peer: PeerID
        var index: Int
        var host: String
        var threads: Int
        var lastHeard: Duration
        /// A message arrived since the last tick (credited with that tick's time).
        var heard = false
        var lastSent: Duration
        var chunks: Set<Int> = []
        /// Joined after the first request: it has the weights (the directive log) but not
        /// Algorithm 1's per-step history, so it cannot rebuild a chunk's cached state bit
        /// for bit as the workers present from the start do.
        var late: Bool
        /// A send found its connection gone: lost at the next tick.
        var disconnected = false
        var name: String { "\(index) (\(host))" }
    }

    struct Request: Sendable {
        var step: Int
        var kind: StatisticsKind
        var wanted: Set<Int>
        var results: [Int: Partial] = [:]
        var imagesDone = 0
        var imagesTotal: Int
    }

    enum Phase: Sendable {
        case created
        case joining(count: Int, deadline: Duration, timeout: Duration)
        case running
        case shuttingDown
    }

    public let runID: UInt64
    public let heartbeatInterval: Duration
    public let livenessInHeartbeats: Int
    let configuration: RunConfiguration
    let assignments: [Int: ChunkAssignment]
    private(set) var now: Duration = .zero
    private(set) var phase = Phase.created
    private(set) var members: [PeerID: Member] = [:]
    /// Peers declared lost or evicted; a message from one is answered with `shutdown`, once.
    private(set) var departed: Set<PeerID> = []
    private var toldToStop: Set<PeerID> = []
    /// Peers already sent `reject` for speaking another protocol version (once each).
    private var versionRejected: Set<PeerID> = []
    /// Non-members whose `error` was ignored (logged once each).
    private var ignoredErrors: Set<PeerID> = []
    private var nextWorkerIndex = 0
    private(set) var directiveLog: [WeightDirective] = []
    /// Requests made so far; the current one's number.
    private(set) var step = 0
    private var current: Request?
    /// Workers lost or evicted, by name, in order.
    public private(set) var lostWorkers: [String] = []
    /// Goodbyes after ``Event/shutDown(reason:)``: worker name → peak resident bytes.
    public private(set) var goodbyes: [String: Int] = [:]

    /// - Parameters:
    ///   - assignments: every chunk with its images, numbered 0…M−1.
    ///   - heartbeatInterval: a heartbeat goes to a worker after this much silence towards it.
    ///   - livenessInHeartbeats: a worker silent for more than this many intervals is lost.
    public init(runID: UInt64, configuration: RunConfiguration, assignments: [ChunkAssignment],
                heartbeatInterval: Duration, livenessInHeartbeats: Int) {
        self.runID = runID
        self.configuration = configuration
        self.assignments = Dictionary(uniqueKeysWithValues: assignments.map { ($0.index, $0) })
        self.heartbeatInterval = heartbeatInterval
        self.livenessInHeartbeats = livenessInHeartbeats
    }

    /// Workers in the run now.
    public var memberCount: Int { members.count }

    /// After ``Event/shutDown(reason:)``: some worker has not said goodbye yet.
    public var awaitingGoodbyes: Bool { goodbyes.count < members.count }

    /// Chunks `peer` owns now (empty for a non-member).
    public func chunks(of peer: PeerID) -> Set<Int> { members[peer]?.chunks ?? [] }

    /// Handles one event; the actions are to be performed in order.
    public mutating func handle(_ event: Event) -> [Action] {
        var out: [Action] = []
        switch event {
        case .awaitWorkers(let count, let timeout):
            phase = .joining(count: count, deadline: now + timeout, timeout: timeout)
            dealIfEnough(&out)
        case .received(let peer, let envelope):
            received(envelope, from: peer, &out)
        case .undecodable(let peer, let error):
            guard !departed.contains(peer) else { break }
            members[peer]?.heard = true
            if case .unsupportedVersion(let got, let expected) = error {
                if versionRejected.insert(peer).inserted {
                    out.append(.log("[coordinator] refused \(peer): it speaks protocol version \(got), this coordinator \(expected)"))
                    send(.reject(reason: error.rejectReason), to: peer, &out)
                }
            }   // other malformed messages: the shell logs them, rate-limited
        case .tick(let time):
            tick(time, &out)
        case .request(let kind, let only):
            startRequest(kind, only: only, &out)
        case .apply(let directives):
            let first = directiveLog.count
            directiveLog += directives
            for peer in memberOrder { send(.directives(first: first, directives), to: peer, &out) }
        case .replyDecoded(let peer, let replyStep, let chunk, let partial):
            guard accepts(replyStep, chunk, from: peer) else { break }
            current!.results[chunk] = partial
            current!.imagesDone += assignments[chunk]!.imageCount
            out.append(.chunkDone(chunk: chunk, imagesDone: current!.imagesDone, imagesTotal: current!.imagesTotal))
            completeIfDone(&out)
        case .replyRejected(let peer, let replyStep, let chunk, let reason):
            guard let member = members[peer] else { break }
            let why = "bad reply for step \(replyStep) chunk \(chunk): \(reason)"
            send(.shutdown(reason: "evicted: \(why)"), to: peer, &out)
            toldToStop.insert(peer)
            depart([peer], why: [peer: why], ifNoneLeft: .badReply(worker: member.name, reason: reason), &out)
        case .unroutable(let peer):
            members[peer]?.disconnected = true
        case .shutDown(let reason):
            phase = .shuttingDown
            current = nil
            for peer in memberOrder { send(.shutdown(reason: reason), to: peer, &out) }
        }
        return out
    }

    // MARK: messages

    private mutating func received(_ envelope: WireEnvelope, from peer: PeerID, _ out: inout [Action]) {
        if departed.contains(peer) {
            // Declared lost (or evicted) and back: its chunks are elsewhere; it must stop.
            if toldToStop.insert(peer).inserted, !isGoodbye(envelope.message) {
                out.append(.log("[coordinator] \(peer) was declared lost and is back (\(envelope.message.name)): told to stop"))
                send(.shutdown(reason: "this worker was declared lost; its chunks went to others"), to: peer, &out)
            }
            return
        }
        if case .hello(let host, let threads, _) = envelope.message {
            if members[peer] == nil { admit(peer, host: host, threads: threads, &out) }
            return
        }
        members[peer]?.heard = true
        guard envelope.runID == runID else {
            out.append(.log("[coordinator] dropped a \(envelope.message.name) of run \(envelope.runID) from \(peer)"))
            return
        }
        switch envelope.message {
        case .reply(let replyStep, let chunk, let size, let payload):
            guard let member = members[peer] else { return }
            guard accepts(replyStep, chunk, from: peer) else {
                out.append(.log("[coordinator] dropped a reply from worker \(member.index) for step \(replyStep) chunk \(chunk)"))
                return
            }
            out.append(.decodeReply(from: peer, step: replyStep, chunk: chunk, uncompressedBytes: size, payload: payload))
        case .heartbeat:
            break
        case .goodbye(let bytes):
            if case .shuttingDown = phase, let member = members[peer] { goodbyes[member.name] = bytes }
        case .error(let message):
            if let member = members[peer] {
                out.append(.fail(.worker("worker \(member.index): \(message)")))
            } else if ignoredErrors.insert(peer).inserted {
                out.append(.log("[coordinator] ignored an error from \(peer), which is not a worker of this run: \(message)"))
            }
        default:
            out.append(.log("[coordinator] ignored \(envelope.message.name) from \(peer)"))
        }
    }

    private func isGoodbye(_ message: WireMessage) -> Bool {
        if case .goodbye = message { return true }
        return false
    }

    /// Exactly-once merge: a reply counts only for the current step, for a chunk it wants
    /// that is not answered yet, from the worker that owns the chunk now.
    private func accepts(_ replyStep: Int, _ chunk: Int, from peer: PeerID) -> Bool {
        guard let request = current, let member = members[peer] else { return false }
        return replyStep == request.step && request.wanted.contains(chunk) && request.results[chunk] == nil && member.chunks.contains(chunk)
    }

    // MARK: membership

    /// A new worker: welcome, configure, replay the directive log (once per admitted worker).
    private mutating func admit(_ peer: PeerID, host: String, threads: Int, _ out: inout [Action]) {
        let index = nextWorkerIndex
        nextWorkerIndex += 1
        members[peer] = Member(peer: peer, index: index, host: host, threads: threads, lastHeard: now, lastSent: now, late: step > 0)
        send(.welcome(workerIndex: index, heartbeatIntervalMilliseconds: Int(heartbeatInterval / .milliseconds(1)),
                      livenessHeartbeats: livenessInHeartbeats), to: peer, &out)
        send(.configure(configuration), to: peer, &out)
        if !directiveLog.isEmpty { send(.directives(first: 0, directiveLog), to: peer, &out) }
        out.append(.log("[coordinator] worker \(index) joined from \(host) with \(threads) thread(s)"))
        dealIfEnough(&out)
    }

    /// Once `count` workers have joined: the chunks dealt round-robin in chunk order over
    /// the workers in joining order.
    private mutating func dealIfEnough(_ out: inout [Action]) {
        guard case .joining(let count, _, _) = phase, members.count >= count else { return }
        phase = .running
        let order = memberOrder
        var deal: [PeerID: [Int]] = [:]
        for (i, chunk) in assignments.keys.sorted().enumerated() { deal[order[i % order.count], default: []].append(chunk) }
        for peer in order { give(deal[peer] ?? [], to: peer, &out) }
        out.append(.workersReady)
    }

    private var memberOrder: [PeerID] { members.values.sorted { $0.index < $1.index }.map(\.peer) }

    private mutating func give(_ chunks: [Int], to peer: PeerID, _ out: inout [Action]) {
        guard !chunks.isEmpty else { return }
        send(.assign(chunks.map { assignments[$0]! }), to: peer, &out)
        members[peer]!.chunks.formUnion(chunks)
    }

    /// Removes `peers` from the run at once, then hands all their chunks to the workers
    /// that remain (least loaded first, ties to the lowest index), re-requesting those the
    /// current request still waits for. Heirs are chosen among live workers only, so any
    /// number lost together or one after another is handled (issue 19, liveness).
    /// - Parameter ifNoneLeft: the failure when no worker remains (default: every worker lost).
    private mutating func depart(_ peers: [PeerID], why: [PeerID: String], ifNoneLeft: ClusterError? = nil, _ out: inout [Action]) {
        let gone = peers.compactMap { members.removeValue(forKey: $0) }.sorted { $0.index < $1.index }
        guard !gone.isEmpty else { return }
        for member in gone {
            departed.insert(member.peer)
            lostWorkers.append(member.name)
            out.append(.evict(worker: member.name, why: why[member.peer] ?? "lost"))
            out.append(.log("[coordinator] worker \(member.name) lost (\(why[member.peer] ?? "lost")); reassigning chunk(s) \(member.chunks.sorted().map(String.init).joined(separator: ","))"))
        }
        guard !members.isEmpty else {
            out.append(.fail(ifNoneLeft ?? .allWorkersLost(step: step)))
            return
        }
        // Workers present from the start replay Algorithm 1 for an adopted chunk and give
        // the bits of an undisturbed run; a late one is used only when none is left.
        var heirs = members.values.filter { !$0.late }.map(\.peer)
        if heirs.isEmpty {
            heirs = Array(members.keys)
            out.append(.log("[coordinator] only workers that joined mid-run are left: they compute the adopted chunks afresh from the current weights (the same statistics up to float rounding, so the last bits of the result may differ from an undisturbed run)"))
        }
        var handedOn: [Int: Int] = [:]
        for chunk in gone.flatMap(\.chunks).sorted() {
            let target = heirs.min { (members[$0]!.chunks.count, members[$0]!.index) < (members[$1]!.chunks.count, members[$1]!.index) }!
            give([chunk], to: target, &out)
            handedOn[chunk] = members[target]!.index
            if let request = current, request.wanted.contains(chunk), request.results[chunk] == nil {
                send(.request(step: request.step, kind: request.kind, chunks: [chunk], directiveCount: directiveLog.count), to: target, &out)
            }
        }
        if !handedOn.isEmpty { out.append(.reassign(handedOn)) }
    }

    // MARK: time

    private mutating func tick(_ time: Duration, _ out: inout [Action]) {
        now = max(now, time)
        for peer in members.keys where members[peer]!.heard {
            members[peer]!.heard = false
            members[peer]!.lastHeard = now
        }
        switch phase {
        case .created, .shuttingDown:
            return
        case .joining(let count, let deadline, let timeout):
            heartbeats(&out)
            if now >= deadline {
                out.append(.fail(.notEnoughWorkers(expected: count, joined: members.count, seconds: timeout / .seconds(1))))
            }
        case .running:
            heartbeats(&out)
            let deadline = heartbeatInterval * livenessInHeartbeats
            let lost = members.values.filter { $0.disconnected || now - $0.lastHeard > deadline }.map(\.peer)
            var why: [PeerID: String] = [:]
            for peer in lost {
                let member = members[peer]!
                why[peer] = member.disconnected ? "its connection closed" : "silent for \(Int((now - member.lastHeard) / .seconds(1))) s"
            }
            depart(lost, why: why, &out)
        }
    }

    private mutating func heartbeats(_ out: inout [Action]) {
        for peer in memberOrder where now - members[peer]!.lastSent >= heartbeatInterval { send(.heartbeat, to: peer, &out) }
    }

    // MARK: requests

    private mutating func startRequest(_ kind: StatisticsKind, only: Set<Int>?, _ out: inout [Action]) {
        step += 1
        let wanted = only.map { $0.intersection(assignments.keys) } ?? Set(assignments.keys)
        let images = wanted.reduce(0) { $0 + assignments[$1]!.imageCount }
        current = Request(step: step, kind: kind, wanted: wanted, imagesTotal: images)
        out.append(.requestStarted(step: step, images: images))
        for peer in memberOrder {
            let chunks = members[peer]!.chunks.intersection(wanted).sorted()
            guard !chunks.isEmpty else { continue }
            send(.request(step: step, kind: kind, chunks: chunks, directiveCount: directiveLog.count), to: peer, &out)
        }
        completeIfDone(&out)
    }

    private mutating func completeIfDone(_ out: inout [Action]) {
        guard let request = current, request.results.count == request.wanted.count else { return }
        current = nil
        out.append(.requestComplete(step: request.step, results: request.results.keys.sorted().map { ChunkResult(chunk: $0, partial: request.results[$0]!) }))
    }

    private mutating func send(_ message: WireMessage, to peer: PeerID, _ out: inout [Action]) {
        out.append(.send(message, to: peer))
        members[peer]?.lastSent = now
    }
}
