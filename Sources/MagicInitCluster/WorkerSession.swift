import Foundation
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitEngine
import MagicInitImages
import MagicInitStatistics
import MagicInitTransport

/// The worker side of the protocol (cluster/PROTOCOL.md): says hello, builds the network
/// when configured, decodes the chunks it is assigned, applies weight directives in log
/// order and answers statistics requests with LZ4-compressed partial statistics, one reply
/// per chunk.
///
/// Threads: ``run()`` is the I/O loop and owns the transport (heartbeats keep flowing while
/// a chunk is computed); the computation runs on one serial queue that owns the
/// ``ChunkCollector``. Messages are handled in arrival order.
public final class WorkerSession: @unchecked Sendable {
    /// Tunables, with units.
    public struct Settings: Sendable {
        public var threads: Int
        public var host: String
        /// How long the coordinator may stay silent before the worker gives up.
        public var coordinatorTimeout: Duration = .seconds(60)
        /// Largest decompressed or received payload accepted.
        public var maxMessageBytes: Int = 1 << 30
        public init(threads: Int, host: String) {
            self.threads = threads
            self.host = host
        }
    }

    private let transport: DealerTransport
    private let settings: Settings
    private let log: @Sendable (String) -> Void
    private let compute = DispatchQueue(label: "mi-worker.compute")
    private let lock = NSLock()
    /// Messages produced by the compute queue, sent by the I/O loop.
    private var outbox: [WireMessage] = []
    private var failure: String?

    /// Owned by the I/O loop.
    private var runID: UInt64 = 0
    // Owned by the compute queue.
    private var configuration: RunConfiguration?
    private var collector: ChunkCollector?
    private var directivesApplied = 0
    private var repliesSent = 0

    public init(transport: DealerTransport, settings: Settings, log: @escaping @Sendable (String) -> Void) {
        self.transport = transport
        self.settings = settings
        self.log = log
    }

    /// Runs until the coordinator says shutdown (returns) or the session fails (throws).
    public func run() throws {
        try send(.hello(host: settings.host, threads: settings.threads, capabilities: ["lz4", "algorithm1", "algorithm2"]))
        var interval: Duration = .seconds(1)
        let clock = ContinuousClock()
        var lastHeard = clock.now, lastSent = clock.now
        var malformed = MalformedMessageLog()
        while true {
            if let failure = lock.withLock({ self.failure }) {
                try? send(.error(message: failure))
                throw ClusterError.worker(failure)
            }
            for message in lock.withLock({ () -> [WireMessage] in defer { outbox = [] }; return outbox }) {
                try send(message)
                lastSent = clock.now
            }
            if clock.now - lastSent >= interval {
                try send(.heartbeat)
                lastSent = clock.now
            }
            if let line = malformed.flush(now: clock.now) { log("[worker] \(line)") }
            guard let body = try transport.receive(timeout: .milliseconds(50)) else {
                if clock.now - lastHeard > settings.coordinatorTimeout {
                    throw ClusterError.coordinatorSilent(seconds: settings.coordinatorTimeout / .seconds(1))
                }
                continue
            }
            lastHeard = clock.now
            let envelope: WireEnvelope
            do {
                envelope = try WireCodec.decode(body)
            } catch WireError.unsupportedVersion(let got, let expected) {
                throw ClusterError.rejected("protocol version mismatch: the coordinator speaks version \(got), this worker version \(expected); run the same MagicInit build on both")
            } catch {
                if let line = malformed.record("from the coordinator: \(error)", now: clock.now) { log("[worker] \(line)") }
                continue
            }
            switch envelope.message {
            case .welcome(let index, let milliseconds, _):
                runID = envelope.runID
                interval = .milliseconds(max(milliseconds, 10))
                log("[worker \(index)] joined run \(envelope.runID)")
            case .reject(let reason):
                throw ClusterError.rejected(reason)
            case .heartbeat:
                break
            case .shutdown(let reason):
                log("[worker] shutdown: \(reason)")
                compute.sync {}
                try? send(.goodbye(peakResidentBytes: peakResidentBytes()))
                return
            case .error(let message):
                throw ClusterError.coordinator(message)
            case .configure, .assign, .directives, .request:
                let message = envelope.message
                let run = envelope.runID
                compute.async { self.handle(message, runID: run) }
            case .hello, .reply, .goodbye:
                log("[worker] ignored a \(envelope.message.name) message")
            }
        }
    }

    private func send(_ message: WireMessage) throws {
        try transport.send(WireCodec.encode(WireEnvelope(runID: runID, message: message)))
    }

    private func post(_ message: WireMessage) {
        lock.withLock { outbox.append(message) }
    }

    private func fail(_ reason: String) {
        lock.withLock { if failure == nil { failure = reason } }
    }

    /// Runs on the compute queue.
    private func handle(_ message: WireMessage, runID: UInt64) {
        do {
            switch message {
            case .configure(let configuration):
                try configure(configuration)
            case .assign(let assignments):
                try assign(assignments)
            case .directives(let first, let list):
                guard let collector else { throw ClusterError.worker("directives before configure") }
                guard first <= directivesApplied else {
                    throw ClusterError.worker("directive \(first) arrived but only \(directivesApplied) were applied (lost message)")
                }
                let fresh = Array(list.dropFirst(directivesApplied - first))
                try collector.apply(fresh)
                directivesApplied += fresh.count
            case .request(let step, let kind, let chunks, let directiveCount):
                try answer(step: step, kind: kind, chunks: chunks, directiveCount: directiveCount)
            default:
                break
            }
        } catch {
            fail("\(error)")
        }
    }

    private func configure(_ c: RunConfiguration) throws {
        let network = try c.model.network()
        configuration = c
        collector = try ChunkCollector(network: network, chunkSize: c.chunkSize,
                                       options: .init(threads: settings.threads, keepsAffineInputs: c.keepAffineInputs))
        directivesApplied = 0
        log("[worker] configured: \(network.name), chunks of \(c.chunkSize), \(settings.threads) thread(s)")
    }

    private func assign(_ assignments: [ChunkAssignment]) throws {
        guard let c = configuration, let collector else { throw ClusterError.worker("chunks assigned before configure") }
        var loader: ImageLoader?
        var chunks: [Chunk] = []
        for a in assignments {
            let images: Tensor
            switch a.inputs {
            case .files(let files):
                if loader == nil {
                    let preprocessing = Preprocessing(channelOrder: c.bgr ? .bgr : .rgb,
                                                      mean: SIMD3(c.mean.map(Float.init)), std: SIMD3(c.std.map(Float.init)))
                    loader = try ImageLoader(inputShape: c.inputShape, preprocessing: preprocessing,
                                             resize: c.centerCrop ? .shorterSideThenCenterCrop : .stretch)
                }
                var data: [Float] = []
                for image in files {
                    data += loader!.prepare(try ImageDecoding.decode(image.bytes, path: image.name))
                }
                images = Tensor(shape: [files.count] + c.inputShape, data: data)
            case .tensor(let tensor):
                guard Array(tensor.shape.dropFirst()) == c.inputShape else {
                    throw ClusterError.worker("chunk \(a.index): inputs of shape \(describeShape(tensor.shape)) do not fit the network's input \(describeShape(c.inputShape))")
                }
                images = tensor
            }
            chunks.append(Chunk(index: a.index, firstImage: a.firstImage, images: images))
        }
        try collector.add(chunks)
        log("[worker] holds chunks \(collector.chunkIndices.map(String.init).joined(separator: ","))")
    }

    private func answer(step: Int, kind: StatisticsKind, chunks: [Int], directiveCount: Int) throws {
        guard let collector, let c = configuration else { throw ClusterError.worker("request before configure") }
        guard directiveCount == directivesApplied else {
            throw ClusterError.worker("request for step \(step) expects \(directiveCount) directives applied, have \(directivesApplied)")
        }
        let only = Set(chunks)
        let start = ContinuousClock.now
        switch kind {
        case .outputMoments(let layer):
            for (chunk, moments) in try collector.outputMoments(layer: layer, only: only) {
                try reply(step: step, chunk: chunk, WireCodec.encode(moments))
            }
        case .measure(let etaStep, let weightGradients):
            for (chunk, measurement) in try collector.measure(step: etaStep, seed: c.seed, weightGradients: weightGradients, only: only) {
                try reply(step: step, chunk: chunk, WireCodec.encode(measurement))
            }
        }
        log("[worker] step \(step): \(chunks.count) chunk(s) in \(String(format: "%.2f", (ContinuousClock.now - start) / .seconds(1))) s")
    }

    /// Test hook for in-process runs: after `count` replies the session stops answering
    /// and `vanish` is called (e.g. to disconnect it from an in-process hub).
    public func vanishAfterReplies(_ count: Int, _ vanish: @escaping @Sendable () -> Void) {
        vanishHook = (count, vanish)
    }
    private var vanishHook: (Int, @Sendable () -> Void)?
    private var vanished = false

    private func reply(step: Int, chunk: Int, _ bytes: [UInt8]) throws {
        if vanished { return }
        if let (limit, vanish) = vanishHook, repliesSent >= limit {
            vanished = true
            vanish()
            return
        }
        repliesSent += 1
        post(.reply(step: step, chunk: chunk, uncompressedBytes: bytes.count, payload: LZ4.compress(bytes)))
    }
}

/// Errors of the cluster boundary; each names the worker, the coordinator or the step.
public enum ClusterError: Error, Sendable, Equatable, CustomStringConvertible {
    case worker(String)
    case coordinator(String)
    case rejected(String)
    case coordinatorSilent(seconds: Double)
    case allWorkersLost(step: Int)
    case notEnoughWorkers(expected: Int, joined: Int, seconds: Double)
    case badReply(worker: String, reason: String)
    /// The coordinator was asked to stop (Ctrl-C: signal 2, SIGTERM: 15).
    case interrupted(signal: Int32)

    public var description: String {
        switch self {
        case .worker(let m): "worker: \(m)"
        case .coordinator(let m): "coordinator reported: \(m)"
        case .rejected(let m): "rejected by the coordinator: \(m)"
        case .coordinatorSilent(let s): "the coordinator has been silent for \(Int(s)) s"
        case .allWorkersLost(let step): "every worker stopped answering (step \(step)); nothing was written"
        case .notEnoughWorkers(let expected, let joined, let s): "\(joined) of \(expected) worker(s) joined within \(Int(s)) s"
        case .badReply(let worker, let reason): "worker \(worker) sent a bad reply: \(reason)"
        case .interrupted(let signal): "interrupted by signal \(signal); nothing was written"
        }
    }
}
