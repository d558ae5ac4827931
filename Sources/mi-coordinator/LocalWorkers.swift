import Foundation

/// The worker processes of `mi-coordinator --local N`: started next to the coordinator,
/// stopped at the end, on failure, or on Ctrl-C (see ``Interrupts``), and through
/// `--die-with-parent` when the coordinator itself is killed — no orphans.
final class LocalWorkers: @unchecked Sendable {
    private var processes: [Process] = []
    private let lock = NSLock()
    /// Removed when the workers stop (it holds the ipc:// socket).
    private let socketDirectory: URL?

    /// Starts `count` `mi-worker` processes (found next to this executable) connecting to
    /// `endpoint`, each with `threads` threads; `socketDirectory` is removed on stop.
    init(count: Int, endpoint: String, threads: Int, socketDirectory: URL?) throws {
        self.socketDirectory = socketDirectory
        let executable = try LocalWorkers.requireWorkerExecutable()
        for i in 0..<count {
            let process = Process()
            process.executableURL = executable
            process.arguments = ["--connect", endpoint, "--threads", String(threads), "--name", "local-\(i)", "--die-with-parent", "--quiet"]
            try process.run()
            processes.append(process)
        }
    }

    /// The `mi-worker` executable next to this one.
    /// - Throws: ``CoordinatorError/missingWorkerExecutable(_:)``.
    @discardableResult
    static func requireWorkerExecutable() throws -> URL {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("mi-worker")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw CoordinatorError.missingWorkerExecutable(executable.path)
        }
        return executable
    }

    var processIDs: [Int32] { lock.withLock { processes.map(\.processIdentifier) } }

    /// Waits up to `grace` for the workers to exit on their own, then terminates the rest.
    func stop(grace: Duration) {
        let list = lock.withLock { processes }
        let deadline = ContinuousClock.now + grace
        while list.contains(where: \.isRunning) && ContinuousClock.now < deadline { usleep(20_000) }
        for process in list where process.isRunning { process.terminate() }
        let hardDeadline = ContinuousClock.now + .seconds(2)
        while list.contains(where: \.isRunning) && ContinuousClock.now < hardDeadline { usleep(20_000) }
        for process in list where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for process in list { process.waitUntilExit() }
        if let socketDirectory { try? FileManager.default.removeItem(at: socketDirectory) }
    }
}

enum CoordinatorError: Error, CustomStringConvertible {
    case missingWorkerExecutable(String)
    var description: String {
        switch self {
        case .missingWorkerExecutable(let path): "cannot start local workers: \(path) is missing; build it with `swift build -c release` (or `swift build -c release --product mi-worker`)"
        }
    }
}
