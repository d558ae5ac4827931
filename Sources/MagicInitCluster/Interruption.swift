import Synchronization

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
