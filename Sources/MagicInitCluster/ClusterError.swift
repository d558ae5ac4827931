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
