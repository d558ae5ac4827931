import Foundation
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitStatistics
import MagicInitTransport
import Synchronization

/// The coordinator side of the protocol (cluster/PROTOCOL.md): a ``StatisticsSource`` whose
/// statistics come from workers. Chunks are numbered independently of the workers; every
/// request is answered per chunk and merged in chunk order (Chan's formula), so the result
/// does not depend on how many workers there are or which one computed what. A worker that
/// stays silent past its deadline loses its chunks to the others, which rebuild what they
/// need from the directive log; late or duplicate replies are dropped.
///
/// The coordinator's own weights are a ``WeightReplica`` fed the same directives.
public actor ClusterStatisticsSource: StatisticsSource {
    /// Tunables, with units (Paranoid Pirate pattern: any traffic counts as a heartbeat).
    public struct Settings: Sendable {
        /// How often each side sends a heartbeat when it has nothing else to send.
        public var heartbeatInterval: Duration = .seconds(1)
        /// A worker silent for this many intervals is declared lost.
        public var livenessInHeartbeats: Int = 10
        /// How long to wait for the expected number of workers to say hello.
        public var joinTimeout: Duration = .seconds(120)
        /// Largest decompressed reply accepted.
        public var maxReplyBytes: Int = 1 << 30
        public init() {}
    }

    /// Traffic and timing figures for the summary.
    public struct Statistics: Sendable {
        public var bytesSent = 0
        public var bytesReceived = 0
        /// Reply payload bytes before and after LZ4.
        public var payloadUncompressed = 0
        public var payloadCompressed = 0
        public var lostWorkers: [String] = []
    }

    private struct Worker {
        var peer: PeerID
        var index: Int
        var host: String
        var threads: Int
        var lastHeard: ContinuousClock.Instant
        var lastSent: ContinuousClock.Instant
        var chunks: Set<Int> = []
        /// Joined after the first request: it has the weights (the directive log) but not
        /// Algorithm 1's per-step history, so it cannot rebuild a chunk's cached state bit
        /// for bit as the workers present from the start do.
        var late = false
        /// A send found its connection gone: lost at the next liveness check.
        var disconnected = false
    }

    /// Set from outside the actor (a signal handler) to end the run: the request loop and
    /// the wait for workers check it every 100–200 ms and throw
    /// ``ClusterError/interrupted(signal:)``.
    public nonisolated let interruption = Interruption()

    public nonisolated let graph: Graph
    private let transport: RouterTransport
    private let settings: Settings
    private let configuration: RunConfiguration
    private let runID: UInt64
    private let assignments: [Int: ChunkAssignment]
    private nonisolated let assignmentCount: Int
    private let log: @Sendable (String) -> Void
    private let clock = ContinuousClock()
    private var workers: [PeerID: Worker] = [:]
    /// Peers already sent `reject` for speaking another protocol version (once each).
    private var versionRejected: Set<PeerID> = []
    /// Malformed messages are logged as a count per interval, not a line each.
    private var malformed = MalformedMessageLog()
    private var nextWorkerIndex = 0
    private var directiveLog: [WeightDirective] = []
    private var replica: WeightReplica
    private var step = 0
    public private(set) var traffic = Statistics()
    private let progress: ProgressHandler?

    /// - Parameters:
    ///   - network: the network to initialise (as the workers will build it).
    ///   - configuration: sent to every worker.
    ///   - chunks: every chunk with its encoded images, numbered 0…M−1.
    public init(transport: RouterTransport, network: Network, configuration: RunConfiguration, chunks: [ChunkAssignment],
                runID: UInt64, settings: Settings = Settings(), log: @escaping @Sendable (String) -> Void,
                progress: ProgressHandler? = nil) throws {
        self.progress = progress
        self.transport = transport
        self.configuration = configuration
        self.settings = settings
        self.runID = runID
        self.log = log
        assignments = Dictionary(uniqueKeysWithValues: chunks.map { ($0.index, $0) })
        assignmentCount = chunks.count
        let graph = try Graph(ChunkCollector.droppingOutputSoftmax(network), batchSize: configuration.chunkSize)
        self.graph = graph
        replica = WeightReplica(graph: graph)
    }

    // MARK: membership

    /// Waits until `count` workers have joined, then configures them and deals the chunks
    /// round-robin in chunk order.
    /// - Throws: ``ClusterError/notEnoughWorkers(expected:joined:seconds:)``.
    public func start(expectedWorkers count: Int) throws {
        let deadline = clock.now + settings.joinTimeout
        while workers.count < count {
            try interruption.check()
            guard clock.now < deadline else {
                throw ClusterError.notEnoughWorkers(expected: count, joined: workers.count, seconds: settings.joinTimeout / .seconds(1))
            }
            if let (peer, envelope) = try receive(timeout: .milliseconds(200)) { try handleUnsolicited(peer, envelope) }
        }
        let order = workers.values.sorted { $0.index < $1.index }.map(\.peer)
        var deal: [PeerID: [Int]] = [:]
        for (i, chunk) in assignments.keys.sorted().enumerated() { deal[order[i % order.count], default: []].append(chunk) }
        for peer in order { try give(deal[peer] ?? [], to: peer) }
    }

    /// Sends `shutdown` to every worker and waits up to `wait` for their goodbyes.
    /// - Returns: each worker's peak resident memory in bytes, by worker name.
    @discardableResult
    public func shutdown(reason: String, wait: Duration = .seconds(3)) -> [(worker: String, peakResidentBytes: Int)] {
        for peer in workers.keys { try? send(.shutdown(reason: reason), to: peer) }
        var peaks: [(String, Int)] = []
        let deadline = clock.now + wait
        while peaks.count < workers.count && clock.now < deadline {
            guard let (peer, envelope) = try? receive(timeout: .milliseconds(100)) else { continue }
            if case .goodbye(let bytes) = envelope.message, let worker = workers[peer] {
                peaks.append(("\(worker.index) (\(worker.host))", bytes))
            }
        }
        return peaks.sorted { $0.0 < $1.0 }
    }

    /// A new worker: welcome, configure, replay the directive log.
    private func admit(_ peer: PeerID, host: String, threads: Int) throws {
        let index = nextWorkerIndex
        nextWorkerIndex += 1
        workers[peer] = Worker(peer: peer, index: index, host: host, threads: threads, lastHeard: clock.now, lastSent: clock.now, late: step > 0)
        try send(.welcome(workerIndex: index, heartbeatIntervalMilliseconds: Int(settings.heartbeatInterval / .milliseconds(1)),
                          livenessHeartbeats: settings.livenessInHeartbeats), to: peer)
        try send(.configure(configuration), to: peer)
        if !directiveLog.isEmpty { try send(.directives(first: 0, directiveLog), to: peer) }
        log("[coordinator] worker \(index) joined from \(host) with \(threads) thread(s)")
    }

    private func give(_ chunks: [Int], to peer: PeerID) throws {
        guard !chunks.isEmpty else { return }
        try send(.assign(chunks.map { assignments[$0]! }), to: peer)
        workers[peer]!.chunks.formUnion(chunks)
    }

    // MARK: StatisticsSource

    /// Sends the directives first, so the workers apply them (Gaussian draws of a whole
    /// layer, say) while this replica does the same; a directive this replica rejects ends
    /// the run all the same.
    public func apply(_ directives: [WeightDirective]) throws {
        let first = directiveLog.count
        directiveLog += directives
        for peer in workers.keys { try send(.directives(first: first, directives), to: peer) }
        for d in directives { try replica.apply(d) }
    }

    public func outputMoments(layer: String) throws -> ChannelMoments {
        guard let node = graph.node(named: layer) else { throw AlgorithmError.unknownLayer(layer) }
        let channels = graph.blobs[graph.nodes[node].tops[0]].shape[1]
        let parts = try collect(.outputMoments(layer: layer), phase: graph.algorithm1Phase(layer: layer),
                                replyBytes: WireCodec.momentsBytes(channels: channels)) { bytes in try WireCodec.decodeMoments(bytes, channels: channels) }
        var merged = ChannelMoments(channelCount: channels)
        for chunk in parts.keys.sorted() { merged.merge(parts[chunk]!) }
        return merged
    }

    public nonisolated var chunkCount: Int { assignmentCount }

    public func measure(step etaStep: Int, weightGradients: Bool, groups: [Range<Int>]) throws -> [NetworkMeasurement] {
        let expected = graph.nodes.filter { $0.kind.isAffine }.map { node -> (String, Int, Int) in
            let bottom = graph.blobs[node.bottoms[0]].shape
            let columns: Int
            switch node.kind {
            case .convolution(let p): columns = bottom[1] * p.kernel.h * p.kernel.w
            case .innerProduct: columns = bottom.dropFirst().reduce(1, *)
            default: columns = bottom[1]
            }
            return (node.name, graph.blobs[node.tops[0]].shape[1], columns)
        }
        let only = groups.chunkSet.intersection(assignments.keys)
        let phase = measurementPhase(chunks: only.count, of: assignments.count)
        let parts = try collect(.measure(etaStep: etaStep, weightGradients: weightGradients), phase: phase, only: only,
                                replyBytes: WireCodec.measurementBytesBound(expected: expected)) { bytes in
            try WireCodec.decodeMeasurement(bytes, expected: expected)
        }
        return try groups.merged(parts)
    }

    public func parameters() -> ParameterSet { replica.parameters }

    // MARK: the request loop

    /// Asks every worker for its chunks (those in `only`, when given) and waits until every
    /// one is answered once, reassigning the chunks of lost workers. A reply declaring more
    /// than `replyBytes` uncompressed bytes (the size of that reply, from the coordinator's
    /// own graph) is refused before it is decompressed.
    private func collect<T>(_ kind: StatisticsKind, phase: String, only: Set<Int>? = nil, replyBytes: Int,
                            decode: ([UInt8]) throws -> T) throws -> [Int: T] {
        step += 1
        let current = step
        var results: [Int: T] = [:]
        let wanted = only ?? Set(assignments.keys)
        let totalImages = wanted.reduce(0) { $0 + assignments[$1]!.imageCount }
        var imagesDone = 0
        progress?(ProgressEvent(phase: phase, imagesDone: 0, imagesTotal: totalImages))
        for (peer, worker) in workers {
            let chunks = worker.chunks.intersection(wanted).sorted()
            guard !chunks.isEmpty else { continue }
            try send(.request(step: current, kind: kind, chunks: chunks, directiveCount: directiveLog.count), to: peer)
        }
        // Chunks not asked for count as answered: a lost worker's share of them is not re-requested.
        let unwanted = Set(assignments.keys).subtracting(wanted)
        while results.count < wanted.count {
            try interruption.check()
            try checkLiveness(kind: kind, step: current, answered: Set(results.keys).union(unwanted))
            guard let (peer, envelope) = try receive(timeout: .milliseconds(100)) else { continue }
            guard case .reply(let replyStep, let chunk, let size, let payload) = envelope.message else {
                try handleUnsolicited(peer, envelope)
                continue
            }
            guard let worker = workers[peer] else { continue }
            // Exactly-once merge: stale steps, unknown or already answered chunks are dropped.
            guard replyStep == current, wanted.contains(chunk), results[chunk] == nil, worker.chunks.contains(chunk) else {
                log("[coordinator] dropped a reply from worker \(worker.index) for step \(replyStep) chunk \(chunk)")
                continue
            }
            do {
                let limit = min(replyBytes, settings.maxReplyBytes)
                let bytes = try LZ4.decompress(payload, originalSize: size, limit: limit)
                results[chunk] = try decode(bytes)
                traffic.payloadUncompressed += size
                traffic.payloadCompressed += payload.count
                imagesDone += assignments[chunk]!.imageCount
                progress?(ProgressEvent(phase: phase, imagesDone: imagesDone, imagesTotal: totalImages))
            } catch {
                log("[coordinator] rejected a reply from worker \(worker.index) for chunk \(chunk): \(error)")
                throw ClusterError.badReply(worker: "\(worker.index) (\(worker.host))", reason: "\(error)")
            }
        }
        return results
    }

    /// Declares silent workers lost and hands their chunks to the least-loaded others.
    private func checkLiveness(kind: StatisticsKind, step current: Int, answered: Set<Int>) throws {
        let deadline = settings.heartbeatInterval * settings.livenessInHeartbeats
        for (peer, worker) in workers {
            if clock.now - worker.lastSent >= settings.heartbeatInterval { try? send(.heartbeat, to: peer) }
            guard worker.disconnected || clock.now - worker.lastHeard > deadline else { continue }
            workers[peer] = nil
            traffic.lostWorkers.append("\(worker.index) (\(worker.host))")
            let why = worker.disconnected ? "its connection closed" : "silent for \(Int((clock.now - worker.lastHeard) / .seconds(1))) s"
            log("[coordinator] worker \(worker.index) (\(worker.host)) lost (\(why)); reassigning chunk(s) \(worker.chunks.sorted().map(String.init).joined(separator: ","))")
            guard !workers.isEmpty else { throw ClusterError.allWorkersLost(step: current) }
            // Workers present from the start replay Algorithm 1 for an adopted chunk and give
            // the bits of an undisturbed run; a late one is used only when none is left.
            var heirs = workers.values.filter { !$0.late }
            if heirs.isEmpty {
                heirs = Array(workers.values)
                log("[coordinator] only workers that joined mid-run are left: they compute the adopted chunks afresh from the current weights (the same statistics up to float rounding, so the last bits of the result may differ from an undisturbed run)")
            }
            for chunk in worker.chunks.sorted() {
                let target = heirs.min { (workers[$0.peer]!.chunks.count, $0.index) < (workers[$1.peer]!.chunks.count, $1.index) }!.peer
                try give([chunk], to: target)
                if !answered.contains(chunk) {
                    try send(.request(step: current, kind: kind, chunks: [chunk], directiveCount: directiveLog.count), to: target)
                }
            }
        }
    }

    private func handleUnsolicited(_ peer: PeerID, _ envelope: WireEnvelope) throws {
        switch envelope.message {
        case .hello(let host, let threads, _):
            if workers[peer] == nil { try admit(peer, host: host, threads: threads) }
        case .heartbeat, .goodbye:
            break
        case .error(let message):
            let index = workers[peer].map { "\($0.index)" } ?? peer.description
            throw ClusterError.worker("worker \(index): \(message)")
        default:
            log("[coordinator] ignored \(envelope.message.name) from \(peer)")
        }
    }

    // MARK: I/O

    private func send(_ message: WireMessage, to peer: PeerID) throws {
        let bytes = WireCodec.encode(WireEnvelope(runID: runID, message: message))
        do {
            try transport.send(bytes, to: peer)
        } catch TransportError.unroutable where workers[peer] != nil {
            // The worker's connection is gone (killed, or its machine went away): it is
            // declared lost at the next liveness check, like a silent one, and its chunks
            // are handed on; the run does not end on the transport's error.
            workers[peer]!.disconnected = true
            return
        }
        traffic.bytesSent += bytes.count
        workers[peer]?.lastSent = clock.now
    }

    private func receive(timeout: Duration) throws -> (PeerID, WireEnvelope)? {
        if let line = malformed.flush(now: clock.now) { log("[coordinator] \(line)") }
        guard let (peer, body) = try transport.receive(timeout: timeout) else { return nil }
        traffic.bytesReceived += body.count
        workers[peer]?.lastHeard = clock.now
        do {
            let envelope = try WireCodec.decode(body)
            if case .hello = envelope.message { return (peer, envelope) }
            guard envelope.runID == runID else {
                log("[coordinator] dropped a \(envelope.message.name) of run \(envelope.runID) from \(peer)")
                return nil
            }
            return (peer, envelope)
        } catch WireError.unsupportedVersion(let got, let expected) {
            if versionRejected.insert(peer).inserted {
                log("[coordinator] refused \(peer): it speaks protocol version \(got), this coordinator \(expected)")
                try? send(.reject(reason: WireError.unsupportedVersion(got: got, expected: expected).rejectReason), to: peer)
            }
            return nil
        } catch {
            if let line = malformed.record("from \(peer): \(error)", now: clock.now) { log("[coordinator] \(line)") }
            return nil
        }
    }
}

/// A request to end a run, set from any thread (a signal handler) and checked by the
/// coordinator's loops.
public final class Interruption: Sendable {
    private let signal = Mutex<Int32?>(nil)

    public init() {}

    /// Records `signal` (the first one wins).
    public func set(_ value: Int32) { signal.withLock { if $0 == nil { $0 = value } } }

    /// The signal recorded, if any.
    public var value: Int32? { signal.withLock { $0 } }

    /// - Throws: ``ClusterError/interrupted(signal:)`` once a signal was recorded.
    public func check() throws {
        if let value { throw ClusterError.interrupted(signal: value) }
    }
}
