import Foundation
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitEngine
import MagicInitImages
import MagicInitStatistics
import MagicInitTransport
import MagicInitWire

/// The worker side of the protocol (cluster/PROTOCOL.md): the shell of the pure
/// ``WorkerMachine``. It owns the transport, the codec, LZ4 and the clock, and runs the
/// machine's jobs — build the network when configured, decode the chunks it is assigned,
/// apply weight directives in log order, answer statistics requests with LZ4-compressed
/// partial statistics, one reply per chunk — on one serial compute queue that owns the
/// ``ChunkCollector``.
///
/// Threads: ``run()`` is the I/O loop and owns the machine and the transport (heartbeats
/// keep flowing while a chunk is computed); the compute queue hands its replies and its
/// first failure back through a locked outbox. Messages are handled in arrival order.
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

    // Owned by the compute queue.
    private var configuration: RunConfiguration?
    private var collector: ChunkCollector?

    public init(transport: DealerTransport, settings: Settings, log: @escaping @Sendable (String) -> Void) {
        self.transport = transport
        self.settings = settings
        self.log = log
    }

    /// Runs until the coordinator says shutdown (returns) or the session fails (throws).
    public func run() throws {
        var machine = WorkerMachine(host: settings.host, threads: settings.threads, coordinatorTimeout: settings.coordinatorTimeout)
        let clock = ContinuousClock()
        let origin = clock.now
        var events: [WorkerMachine.Event] = [.start]
        var malformed = MalformedMessageLog()
        while true {
            for event in events {
                for action in machine.handle(event) {
                    switch action {
                    case .send(let envelope):
                        try transport.send(WireCodec.encode(envelope))
                    case .compute(let job):
                        compute.async { self.run(job) }
                    case .finish:
                        compute.sync {}
                        try? transport.send(WireCodec.encode(WireEnvelope(runID: machine.runID, message: .goodbye(peakResidentBytes: peakResidentBytes()))))
                        return
                    case .log(let line):
                        log(line)
                    case .fail(let error):
                        throw error
                    }
                }
            }
            events = []
            let (posted, failed) = lock.withLock { () -> ([WireMessage], String?) in
                defer { outbox = [] }
                return (outbox, failure)
            }
            events += posted.map { .computed($0) }
            if let failed { events.append(.computeFailed(failed)) }
            if let line = malformed.flush(now: clock.now) { log("[worker] \(line)") }
            if let body = try transport.receive(timeout: .milliseconds(50)) {
                do {
                    events.append(.received(try WireCodec.decode(body)))
                } catch {
                    let wireError = error as? WireError ?? .invalidValue(context: "message", message: "\(error)")
                    if case .unsupportedVersion = wireError {} else if let line = malformed.record("from the coordinator: \(error)", now: clock.now) {
                        log("[worker] \(line)")
                    }
                    events.append(.undecodable(wireError))
                }
            }
            events.append(.tick(now: clock.now - origin))
        }
    }

    private func post(_ message: WireMessage) {
        lock.withLock { outbox.append(message) }
    }

    private func fail(_ reason: String) {
        lock.withLock { if failure == nil { failure = reason } }
    }

    /// Runs on the compute queue; after the first failure every later job is skipped.
    private func run(_ job: WorkerMachine.Job) {
        guard lock.withLock({ failure == nil }) else { return }
        do {
            switch job {
            case .configure(let configuration):
                try configure(configuration)
            case .assign(let assignments):
                try assign(assignments)
            case .apply(let directives):
                guard let collector else { throw ClusterError.worker("directives before configure") }
                try collector.apply(directives)
            case .answer(let step, let kind, let chunks):
                try answer(step: step, kind: kind, chunks: chunks)
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

    private func answer(step: Int, kind: StatisticsKind, chunks: [Int]) throws {
        guard let collector, let c = configuration else { throw ClusterError.worker("request before configure") }
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

    /// One chunk's statistics, encoded and LZ4-compressed, for the I/O loop to send.
    private func reply(step: Int, chunk: Int, _ bytes: [UInt8]) throws {
        post(.reply(step: step, chunk: chunk, uncompressedBytes: bytes.count, payload: LZ4.compress(bytes)))
    }
}
