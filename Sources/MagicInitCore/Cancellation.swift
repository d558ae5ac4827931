import Synchronization

/// A request to stop computing, set from any thread (a signal handler) and checked by the
/// engines between primitives and by the collectors between chunks, which then throw
/// `CancellationError`: a computation stops within one primitive instead of running on
/// under a process that is exiting (issue 19, part 5).
///
/// Engines check ``process`` unless given their own (tests that run several sessions in one
/// process give each its own).
public final class Cancellation: Sendable {
    private let cancelled = Atomic<Bool>(false)

    /// The one the programs' signal handlers set.
    public static let process = Cancellation()

    public init() {}

    /// Asks every computation checking this to stop. Safe from any thread; idempotent.
    public func cancel() { cancelled.store(true, ordering: .releasing) }

    public var isCancelled: Bool { cancelled.load(ordering: .acquiring) }

    /// - Throws: `CancellationError` once ``cancel()`` was called.
    public func check() throws {
        if isCancelled { throw CancellationError() }
    }
}
