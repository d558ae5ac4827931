import MagicInitAlgorithms
import MagicInitWire

/// The worker's side of the protocol (cluster/PROTOCOL.md, "Session") as a pure state
/// machine: hello, the run id from `welcome`, heartbeats, the coordinator's liveness, and the
/// order of the work — configure, chunks, directives in log order, requests only once the
/// directive count they name is reached. It never touches a clock, a socket, LZ4, the codec
/// or the engine: its shell (``WorkerSession``) feeds it decoded messages, ticks and the
/// compute side's results, runs the ``Job``s it returns on one serial compute queue, and
/// sends what it returns.
///
/// Time is a `Duration` since an origin the shell picks. A message from the coordinator is
/// credited at the next tick.
public struct WorkerMachine: Sendable {
    /// What happened, as the shell tells it.
    public enum Event: Sendable {
        /// The session begins: say hello.
        case start
        /// A message from the coordinator, decoded (any version check passed).
        case received(WireEnvelope)
        /// Bytes that did not decode: traffic all the same; another protocol version ends the
        /// session. The shell logs the others.
        case undecodable(WireError)
        /// The time now: heartbeats and the coordinator's silence are checked.
        case tick(now: Duration)
        /// The compute side produced `message` (a chunk's `reply`).
        case computed(WireMessage)
        /// A job failed; `reason` names the layer, chunk or file.
        case computeFailed(String)
    }

    /// Work for the compute side, run in the order given.
    public enum Job: Sendable, Equatable {
        /// Build the network and a fresh collector.
        case configure(RunConfiguration)
        /// Decode and hold these chunks.
        case assign([ChunkAssignment])
        /// Apply these directives (the log entries not applied yet, in order).
        case apply([WeightDirective])
        /// Compute `kind` for `chunks` and post one `reply` per chunk for `step`.
        case answer(step: Int, kind: StatisticsKind, chunks: [Int])
    }

    /// What the shell must do, in order.
    public enum Action: Sendable, Equatable {
        case send(WireEnvelope)
        case compute(Job)
        /// The coordinator ended the run: let the compute side finish, say `goodbye` with the
        /// peak memory, and stop.
        case finish(reason: String)
        /// A line for the log (subject first).
        case log(String)
        /// The session cannot go on.
        case fail(ClusterError)
    }

    public let host: String
    public let threads: Int
    public let capabilities: [String]
    /// The coordinator may stay silent this long before the worker gives up.
    public let coordinatorTimeout: Duration
    /// `0` until `welcome`.
    public private(set) var runID: UInt64 = 0
    public private(set) var workerIndex: Int?
    private(set) var heartbeatInterval: Duration = .seconds(1)
    private(set) var now: Duration = .zero
    private var lastHeard: Duration = .zero
    private var heard = false
    private var lastSent: Duration = .zero
    private var configured = false
    /// Length of the directive log passed to the compute side (what it will have applied
    /// when it reaches the next job).
    private(set) var directivesQueued = 0
    private var finished = false

    public init(host: String, threads: Int, capabilities: [String] = ["lz4", "algorithm1", "algorithm2"], coordinatorTimeout: Duration) {
        self.host = host
        self.threads = threads
        self.capabilities = capabilities
        self.coordinatorTimeout = coordinatorTimeout
    }

    /// Handles one event; the actions are to be performed in order.
    public mutating func handle(_ event: Event) -> [Action] {
        guard !finished else { return [] }
        var out: [Action] = []
        switch event {
        case .start:
            send(.hello(host: host, threads: threads, capabilities: capabilities), &out)
        case .received(let envelope):
            heard = true
            received(envelope, &out)
        case .undecodable(let error):
            heard = true
            if case .unsupportedVersion(let got, let expected) = error {
                fail(.rejected("protocol version mismatch: the coordinator speaks version \(got), this worker version \(expected); run the same MagicInit build on both"), &out)
            }   // other malformed messages: the shell logs them, rate-limited
        case .tick(let time):
            now = max(now, time)
            if heard {
                heard = false
                lastHeard = now
            }
            if now - lastHeard > coordinatorTimeout {
                fail(.coordinatorSilent(seconds: coordinatorTimeout / .seconds(1)), &out)
            } else if now - lastSent >= heartbeatInterval {
                send(.heartbeat, &out)
            }
        case .computed(let message):
            send(message, &out)
        case .computeFailed(let reason):
            send(.error(message: reason), &out)
            fail(.worker(reason), &out)
        }
        return out
    }

    private mutating func received(_ envelope: WireEnvelope, _ out: inout [Action]) {
        if workerIndex != nil, envelope.runID != runID {
            out.append(.log("[worker] dropped a \(envelope.message.name) of run \(envelope.runID) (this run is \(runID))"))
            return
        }
        switch envelope.message {
        case .welcome(let index, let milliseconds, _):
            guard workerIndex == nil else { return }
            runID = envelope.runID
            workerIndex = index
            heartbeatInterval = .milliseconds(max(milliseconds, 10))
            out.append(.log("[worker \(index)] joined run \(envelope.runID)"))
        case .reject(let reason):
            fail(.rejected(reason), &out)
        case .heartbeat:
            break
        case .shutdown(let reason):
            out.append(.log("[worker] shutdown: \(reason)"))
            finished = true
            out.append(.finish(reason: reason))
        case .error(let message):
            fail(.coordinator(message), &out)
        case .configure(let configuration):
            configured = true
            directivesQueued = 0
            out.append(.compute(.configure(configuration)))
        case .assign(let chunks):
            guard configured else { return fail(.worker("chunks assigned before configure"), &out) }
            out.append(.compute(.assign(chunks)))
        case .directives(let first, let list):
            guard configured else { return fail(.worker("directives before configure"), &out) }
            guard first <= directivesQueued else {
                return fail(.worker("directive \(first) arrived but only \(directivesQueued) were applied (lost message)"), &out)
            }
            let fresh = Array(list.dropFirst(directivesQueued - first))
            directivesQueued += fresh.count
            if !fresh.isEmpty { out.append(.compute(.apply(fresh))) }
        case .request(let step, let kind, let chunks, let directiveCount):
            guard configured else { return fail(.worker("request before configure"), &out) }
            guard directiveCount == directivesQueued else {
                return fail(.worker("request for step \(step) expects \(directiveCount) directives applied, have \(directivesQueued)"), &out)
            }
            out.append(.compute(.answer(step: step, kind: kind, chunks: chunks)))
        case .hello, .reply, .goodbye:
            out.append(.log("[worker] ignored a \(envelope.message.name) message"))
        }
    }

    private mutating func send(_ message: WireMessage, _ out: inout [Action]) {
        out.append(.send(WireEnvelope(runID: runID, message: message)))
        lastSent = now
    }

    private mutating func fail(_ error: ClusterError, _ out: inout [Action]) {
        finished = true
        out.append(.fail(error))
    }
}
