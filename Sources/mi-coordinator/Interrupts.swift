import ArgumentParser
import Foundation
import MagicInitCluster
import MagicInitCore
import Synchronization

/// Ctrl-C (SIGINT) and SIGTERM for the whole of a coordinator run, in every mode:
/// - while workers compute (`--local`, `--workers`): the run ends at its next wait for them
///   (``ClusterStatisticsSource/interruption``), they are told to stop, and local worker
///   processes are stopped; nothing is written;
/// - while a file is written (the weights and report, `--dump-inputs`): it is finished
///   first (each appears whole, never as a half-written temporary file), then the process
///   exits;
/// - otherwise (loading, computing in this process, verifying): the engines are cancelled
///   (``Cancellation/process``: they stop at their next primitive and the run ends with
///   `CancellationError`, turned into the exit status by ``MICoordinator/main()``); a phase
///   that runs no primitive (decoding images, reading weights) is ended by the handler after
///   ``hardExitDelay`` with `_exit`. Either way no library finaliser runs under a thread that
///   is still computing (`exit()` from the handler did that and crashed in libdnnl, 5 of 28
///   tries, and took 10–21 s during Algorithm 2), and nothing is being written.
/// Either way the exit status is 128 + the signal number, as a shell expects.
final class Interrupts: Sendable {
    private struct State {
        var signal: Int32?
        var cluster: Interruption?
        var writing = false
        /// Files finished so far (see ``whileWriting(_:)``), for the message at exit.
        var written = 0
        /// Run before an exit at once (see ``atExit(_:)``).
        var cleanup: (@Sendable () -> Void)?
        /// A signal handler is on its way to exit at once (and says so itself).
        var exiting = false
    }

    private let state = Mutex(State())
    nonisolated(unsafe) private var sources: [DispatchSourceSignal] = []

    /// The first signal that ended the run (0: none), for the exit status of a run that
    /// ended in `CancellationError`.
    static let received = Atomic<Int32>(0)

    /// How long after a signal the handler ends a process whose main flow has not exited
    /// by itself: it then runs no primitive that could notice the cancellation.
    static let hardExitDelay: Duration = .milliseconds(250)

    /// Installs the handlers (they replace the default action, which would end the process
    /// at any point, a write included).
    init() {
        // A signal that came before this point while blocked (a process started by a Swift
        // program inherits its spawning thread's mask, which blocks them) is pending: setting
        // SIG_IGN below would discard it, so it is handled as soon as the handlers exist.
        var pending = sigset_t()
        sigpending(&pending)
        let early = [SIGINT, SIGTERM].filter { sigismember(&pending, $0) == 1 }
        defer { for sig in early { DispatchQueue.global().async { [weak self] in self?.received(sig) } } }
        sources = [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.received(sig) }
            source.resume()
            return source
        }
    }

    deinit { sources.forEach { $0.cancel() } }

    private func received(_ sig: Int32) {
        enum Action { case stopWorkers, finishWriting, exitNow(written: Int) }
        let action: Action = state.withLock { s in
            if s.signal == nil { s.signal = sig }
            if s.writing { return .finishWriting }
            if let cluster = s.cluster { cluster.set(sig); return .stopWorkers }
            s.exiting = true
            return .exitNow(written: s.written)
        }
        switch action {
        case .stopWorkers: say("interrupted: stopping the workers")
        case .finishWriting: say("interrupted by signal \(sig) while writing: finishing the file(s) first")
        case .exitNow(let written):
            say(Interrupts.stopped(by: sig, written: written))
            _ = Interrupts.received.compareExchange(expected: 0, desired: sig, ordering: .relaxed)
            Cancellation.process.cancel()
            // `_exit`, not `exit`: no atexit handler or library finaliser runs, so none can
            // run under an engine thread; nothing is being written (see `whileWriting`). The
            // cleanup is the one registered by then (the main flow may have gone on to start
            // local workers meanwhile).
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(Interrupts.hardExitDelay / .milliseconds(1)))) {
                let cleanup = self.state.withLock { $0.cleanup }
                cleanup?()
                fflush(nil)
                _exit(128 + sig)
            }
        }
    }

    /// `cleanup` runs before the process exits at once on a signal (not when the run ends
    /// otherwise: the caller's own `defer` does that), e.g. stopping local worker processes
    /// and removing their socket folder, which `exit` would skip.
    func atExit(_ cleanup: @escaping @Sendable () -> Void) {
        state.withLock { $0.cleanup = cleanup }
    }

    /// Workers are computing for `cluster`: a signal now ends the run at its next wait;
    /// `nil` when they are done (a signal then ends the process at once).
    func route(to cluster: Interruption?) {
        state.withLock { $0.cluster = cluster }
    }

    /// Runs `write` with signals held until it returns, then exits if one came (before it
    /// started: without writing).
    /// - Throws: whatever `write` throws; `ExitCode(128 + N)` after signal N.
    func whileWriting(_ write: () throws -> Void) throws {
        let early = state.withLock { s -> (signal: Int32, written: Int, exiting: Bool)? in
            s.writing = s.signal == nil
            return s.signal.map { ($0, s.written, s.exiting) }
        }
        if let early {
            // When the handler is already exiting (its cleanup still running), it has the
            // last word: one message, not two.
            if !early.exiting { say(Interrupts.stopped(by: early.signal, written: early.written)) }
            throw ExitCode(128 + early.signal)
        }
        do {
            try write()
        } catch {
            state.withLock { $0.writing = false }
            throw error
        }
        // Leaving the writing state and looking for a signal in one step: one that comes
        // later finds `writing` false and ends the process itself.
        if let late = state.withLock({ s -> Int32? in s.writing = false; s.written += 1; return s.signal }) {
            say("the file(s) are complete; stopping as asked (signal \(late))")
            throw ExitCode(128 + late)
        }
    }

    /// The exit for `error`: `ExitCode(128 + N)` (after saying so) for an interruption by
    /// signal N, `error` itself otherwise.
    static func exitCode(for error: Error) -> Error {
        if error is CancellationError { return ExitCode(128 + max(received.load(ordering: .relaxed), 2)) }
        guard case ClusterError.interrupted(let signal) = error else { return error }
        say("\(error)")
        return ExitCode(128 + signal)
    }

    /// The message for stopping on signal `sig` with `written` files finished.
    private static func stopped(by sig: Int32, written: Int) -> String {
        "interrupted by signal \(sig); " + (written == 0 ? "nothing was written" : "the file(s) written so far are complete")
    }

    private static func say(_ message: String) {
        FileHandle.standardError.write(Data("[coordinator] \(message)\n".utf8))
    }

    private func say(_ message: String) { Interrupts.say(message) }
}
