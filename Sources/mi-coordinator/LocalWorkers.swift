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

    /// The `mi-worker` executable next to this one. This one is found through
    /// `/proc/self/exe` (the kernel's path of the running binary), so a coordinator started
    /// through `PATH` or a symlink finds its worker; `argv[0]` only where `/proc` is absent.
    /// - Throws: ``CoordinatorError/missingWorkerExecutable(_:)``.
    @discardableResult
    static func requireWorkerExecutable() throws -> URL {
        let running = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        let executable = URL(fileURLWithPath: running).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("mi-worker")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw CoordinatorError.missingWorkerExecutable(executable.path)
        }
        return executable
    }

    /// A new folder for the ipc:// socket of this run, `magicinit-<pid>` in the temporary
    /// folder (`TMPDIR`). Folders of earlier runs whose coordinator no longer exists (killed
    /// with SIGKILL, so it could not remove its own) and that this user owns are removed first.
    /// - Throws: when the folder cannot be created.
    static func makeSocketDirectory() throws -> URL {
        let temporary = FileManager.default.temporaryDirectory
        let prefix = "magicinit-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid > 0, pid != getpid(),
                  kill(pid, 0) == -1 && errno == ESRCH else { continue }
            let stale = temporary.appendingPathComponent(name)
            let owner = (try? FileManager.default.attributesOfItem(atPath: stale.path))?[.ownerAccountID] as? NSNumber
            if owner?.uint32Value == getuid() { try? FileManager.default.removeItem(at: stale) }
        }
        let directory = temporary.appendingPathComponent(prefix + String(getpid()))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
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
    /// None of the `tried` files of `--images` `source` could be decoded.
    case noUsableImages(source: String, tried: Int)
    /// Writing the weights or the report failed (`reason` names the file); neither was
    /// put in place.
    case outputFailed(String)
    var description: String {
        switch self {
        case .missingWorkerExecutable(let path): "cannot start local workers: \(path) is missing; build it with `swift build -c release --product mi-worker`"
        case .noUsableImages(let source, let tried): "--images \(source): none of its \(tried) image file(s) could be decoded (each is named above)"
        case .outputFailed(let reason): "\(reason); nothing was written: the weights and the report are written together or not at all, so any files there before are unchanged"
        }
    }
}
