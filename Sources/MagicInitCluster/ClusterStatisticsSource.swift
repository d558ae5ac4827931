import Foundation
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitStatistics
import MagicInitTransport
import MagicInitWire

/// The coordinator side of the protocol (cluster/PROTOCOL.md): a ``StatisticsSource`` whose
/// statistics come from workers. The protocol itself — membership, liveness, dealing,
/// reassignment, exactly-once collection — is the pure ``CoordinatorMachine``; this actor is
/// its shell: it owns the transport, the codec, LZ4, the clock and the coordinator's own
/// ``WeightReplica``, feeds the machine messages and ticks, and merges the per-chunk
/// statistics it hands back in chunk order (Chan's formula), so the result does not depend
/// on how many workers there are or which one computed what (docs/DESIGN.md §3).
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

    /// One chunk's decoded statistics, as the machine keeps them until a request completes.
    enum ChunkStatistics: Sendable {
        case moments(ChannelMoments)
        case measurement(NetworkMeasurement)
    }
    typealias Machine = CoordinatorMachine<ChunkStatistics>

    /// Set from outside the actor (a signal handler) to end the run: the request loop and
    /// the wait for workers check it every 100–200 ms and throw
    /// ``ClusterError/interrupted(signal:)``.
    public nonisolated let interruption = Interruption()

    public nonisolated let graph: Graph
    private let transport: RouterTransport
    private let settings: Settings
    private nonisolated let assignmentCount: Int
    private let log: @Sendable (String) -> Void
    private let progress: ProgressHandler?
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    private var machine: Machine
    private var replica: WeightReplica
    private var bytes = Statistics()
    /// How the current request's replies decode, and the most uncompressed bytes one can
    /// declare; set by ``collect(_:phase:only:replyBytes:decode:)``.
    private var decodeReply: (([UInt8]) throws -> ChunkStatistics)?
    private var replyBytes = 0
    /// Malformed messages are logged as a count per interval, not a line each.
    private var malformed = MalformedMessageLog()
    private var progressPhase = ""
    private var completed: [Machine.ChunkResult]?
    private var workersReady = false
    private var failure: ClusterError?

    /// Traffic so far; the lost workers are the machine's record.
    public var traffic: Statistics {
        var figures = bytes
        figures.lostWorkers = machine.lostWorkers
        return figures
    }

    /// - Parameters:
    ///   - network: the network to initialise (as the workers will build it).
    ///   - configuration: sent to every worker.
    ///   - chunks: every chunk with its encoded images, numbered 0…M−1.
    public init(transport: RouterTransport, network: Network, configuration: RunConfiguration, chunks: [ChunkAssignment],
                runID: UInt64, settings: Settings = Settings(), log: @escaping @Sendable (String) -> Void,
                progress: ProgressHandler? = nil) throws {
        self.progress = progress
        self.transport = transport
        self.settings = settings
        self.log = log
        assignmentCount = chunks.count
        let graph = try Graph(ChunkCollector.droppingOutputSoftmax(network), batchSize: configuration.chunkSize)
        self.graph = graph
        replica = WeightReplica(graph: graph)
        origin = clock.now
        machine = Machine(runID: runID, configuration: configuration, assignments: chunks,
                          heartbeatInterval: settings.heartbeatInterval, livenessInHeartbeats: settings.livenessInHeartbeats)
    }

    // MARK: membership

    /// Waits until `count` workers have joined, then configures them and deals the chunks
    /// round-robin in chunk order.
    /// - Throws: ``ClusterError/notEnoughWorkers(expected:joined:seconds:)``,
    ///   ``ClusterError/interrupted(signal:)``.
    public func start(expectedWorkers count: Int) throws {
        try perform(machine.handle(.tick(now: elapsed)))
        try perform(machine.handle(.awaitWorkers(count: count, timeout: settings.joinTimeout)))
        try loop(until: { workersReady }, wait: .milliseconds(200))
    }

    /// Sends `shutdown` to every worker and waits up to `wait` for their goodbyes.
    /// - Returns: each worker's peak resident memory in bytes, by worker name.
    @discardableResult
    public func shutdown(reason: String, wait: Duration = .seconds(3)) -> [(worker: String, peakResidentBytes: Int)] {
        failure = nil
        try? perform(machine.handle(.shutDown(reason: reason)))
        let deadline = clock.now + wait
        while machine.awaitingGoodbyes && clock.now < deadline {
            guard let (peer, body) = try? transport.receive(timeout: .milliseconds(100)) else { continue }
            try? perform(machine.handle(event(for: body, from: peer)))
        }
        return machine.goodbyes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    // MARK: StatisticsSource

    /// Sends the directives first, so the workers apply them (Gaussian draws of a whole
    /// layer, say) while this replica does the same; a directive this replica rejects ends
    /// the run all the same.
    public func apply(_ directives: [WeightDirective]) throws {
        try perform(machine.handle(.apply(directives)))
        for d in directives { try replica.apply(d) }
    }

    public func outputMoments(layer: String) throws -> ChannelMoments {
        guard let node = graph.node(named: layer) else { throw AlgorithmError.unknownLayer(layer) }
        let channels = graph.blobs[graph.nodes[node].tops[0]].shape[1]
        let parts = try collect(.outputMoments(layer: layer), phase: graph.algorithm1Phase(layer: layer),
                                replyBytes: WireCodec.momentsBytes(channels: channels)) { bytes in
            .moments(try WireCodec.decodeMoments(bytes, channels: channels))
        }
        var merged = ChannelMoments(channelCount: channels)
        for part in parts { if case .moments(let moments) = part.partial { merged.merge(moments) } }
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
        let only = groups.chunkSet.intersection(0..<assignmentCount)
        let phase = measurementPhase(chunks: only.count, of: assignmentCount)
        let parts = try collect(.measure(etaStep: etaStep, weightGradients: weightGradients), phase: phase, only: only,
                                replyBytes: WireCodec.measurementBytesBound(expected: expected)) { bytes in
            .measurement(try WireCodec.decodeMeasurement(bytes, expected: expected))
        }
        var measurements: [Int: NetworkMeasurement] = [:]
        for part in parts { if case .measurement(let m) = part.partial { measurements[part.chunk] = m } }
        return try groups.merged(measurements)
    }

    public func parameters() -> ParameterSet { replica.parameters }

    // MARK: the shell's loop

    /// Asks the workers for `kind` over the chunks in `only` (every chunk when `nil`) and
    /// waits until the machine has every one answered once. A reply declaring more than
    /// `replyBytes` uncompressed bytes (the size of that reply, from the coordinator's own
    /// graph) is refused before it is decompressed.
    /// - Returns: the chunks' statistics in chunk order.
    private func collect(_ kind: StatisticsKind, phase: String, only: Set<Int>? = nil, replyBytes: Int,
                         decode: @escaping ([UInt8]) throws -> ChunkStatistics) throws -> [Machine.ChunkResult] {
        decodeReply = decode
        self.replyBytes = replyBytes
        progressPhase = phase
        completed = nil
        defer { decodeReply = nil }
        try perform(machine.handle(.request(kind, only: only)))
        try loop(until: { completed != nil }, wait: .milliseconds(100))
        return completed ?? []
    }

    /// Receives and ticks until `done`: messages that queued up are all read before the
    /// first tick, so a worker is never declared lost for a message the shell had not read.
    private func loop(until done: () -> Bool, wait: Duration) throws {
        var lastTick = clock.now
        while !done() {
            try interruption.check()
            if let line = malformed.flush(now: clock.now) { log("[coordinator] \(line)") }
            let message = try transport.receive(timeout: wait)
            if let (peer, body) = message { try perform(machine.handle(event(for: body, from: peer))) }
            if message == nil || clock.now - lastTick >= wait {
                lastTick = clock.now
                try perform(machine.handle(.tick(now: elapsed)))
            }
        }
    }

    /// Decodes one received body into the machine's event; a malformed one is logged here,
    /// rate-limited (the machine only counts it as traffic, or rejects another version).
    private func event(for body: [UInt8], from peer: PeerID) -> Machine.Event {
        bytes.bytesReceived += body.count
        do {
            return .received(from: peer, try WireCodec.decode(body))
        } catch {
            let wireError = error as? WireError ?? .invalidValue(context: "message", message: "\(error)")
            if case .unsupportedVersion = wireError {} else if let line = malformed.record("from \(peer): \(error)", now: clock.now) {
                log("[coordinator] \(line)")
            }
            return .undecodable(from: peer, wireError)
        }
    }

    /// Performs the machine's actions in order; events they cause (a failed send, a decoded
    /// reply) are handled at once, depth first.
    /// - Throws: the first ``CoordinatorMachine/Action/fail(_:)`` among them.
    private func perform(_ actions: [Machine.Action]) throws {
        for action in actions {
            switch action {
            case .send(let message, let peer):
                let body = WireCodec.encode(WireEnvelope(runID: machine.runID, message: message))
                do {
                    try transport.send(body, to: peer)
                    bytes.bytesSent += body.count
                } catch TransportError.unroutable {
                    // The worker's connection is gone (killed, or its machine went away): it
                    // is lost at the next tick, like a silent one; the run goes on.
                    try perform(machine.handle(.unroutable(peer)))
                }
            case .decodeReply(let peer, let step, let chunk, let size, let payload):
                let verdict: Machine.Event
                do {
                    guard let decodeReply else { throw ClusterError.coordinator("a reply arrived outside a request") }
                    let limit = min(replyBytes, settings.maxReplyBytes)
                    let partial = try decodeReply(try LZ4.decompress(payload, originalSize: size, limit: limit))
                    bytes.payloadUncompressed += size
                    bytes.payloadCompressed += payload.count
                    verdict = .replyDecoded(from: peer, step: step, chunk: chunk, partial)
                } catch {
                    log("[coordinator] rejected a reply from \(peer) for chunk \(chunk): \(error)")
                    verdict = .replyRejected(from: peer, step: step, chunk: chunk, reason: "\(error)")
                }
                try perform(machine.handle(verdict))
            case .workersReady:
                workersReady = true
            case .requestStarted(_, let images):
                progress?(ProgressEvent(phase: progressPhase, imagesDone: 0, imagesTotal: images))
            case .chunkDone(_, let done, let total):
                progress?(ProgressEvent(phase: progressPhase, imagesDone: done, imagesTotal: total))
            case .requestComplete(_, let results):
                completed = results
            case .reassign, .evict:
                break   // records; the machine logged them and keeps the lost workers
            case .log(let line):
                log(line)
            case .fail(let error):
                failure = failure ?? error
            }
        }
        if let failure {
            self.failure = nil
            throw failure
        }
    }

    /// Time since this source was made: the machine's clock.
    private var elapsed: Duration { clock.now - origin }
}
