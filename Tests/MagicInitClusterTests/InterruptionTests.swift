import Foundation
import Synchronization
import Testing
import MagicInitAlgorithms
import MagicInitCluster
import MagicInitCore
import MagicInitSamples
import MagicInitTransport

/// Ctrl-C at a coordinator whose workers run elsewhere (`mi-coordinator --workers`): the
/// run ends at its next wait with ``ClusterError/interrupted(signal:)``, and the shutdown
/// that follows stops the workers at once instead of leaving them to their timeout.
@Suite(.serialized) struct InterruptionTests {
    @Test func test_interruptedMidRun_runEndsAndWorkersStop() async throws {
        let hub = InProcessHub()
        let plan = try DeterminismTests.plan()
        let interruption = Mutex<Interruption?>(nil)
        // Interrupted as soon as the first chunk of the first request is answered.
        let source = try ClusterStatisticsSource(transport: hub.makeRouter(), network: BuiltinNetworks.small(),
                                                 configuration: DeterminismTests.configuration(), chunks: plan.assignments,
                                                 runID: 9, log: { _ in },
                                                 progress: { event in if event.imagesDone > 0 { interruption.withLock { $0 }?.set(SIGINT) } })
        interruption.withLock { $0 = source.interruption }
        let stopped = Mutex<[String]>([])
        for name in ["worker-0", "worker-1"] {
            var settings = WorkerSession.Settings(threads: 1, host: "in-process \(name)")
            // Far longer than the test may take: only the coordinator's shutdown stops them.
            settings.coordinatorTimeout = .seconds(600)
            let session = WorkerSession(transport: hub.makeDealer(identity: Array(name.utf8)), settings: settings, log: { _ in })
            Thread {
                _ = try? session.run()
                stopped.withLock { $0.append(name) }
            }.start()
        }
        try await source.start(expectedWorkers: 2)
        let clock = ContinuousClock()
        do {
            _ = try await Initializer(options: DeterminismTests.options).run(source, images: plan.loaded.count)
            Issue.record("the run finished although it was interrupted")
        } catch let error as ClusterError {
            #expect(error == .interrupted(signal: SIGINT), "unexpected error: \(error)")
        }
        await source.shutdown(reason: "the run failed: interrupted", wait: .seconds(5))
        let deadline = clock.now + .seconds(10)
        while stopped.withLock({ $0.count }) < 2 && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(stopped.withLock { $0.sorted() } == ["worker-0", "worker-1"], "workers still running after the shutdown")
    }

    /// The real `mi-coordinator`, sent SIGTERM once Algorithm 1 is under way, with local
    /// worker processes and with workers it waits for: it exits 143 at once, writes
    /// nothing (no temporary file either), and every worker process stops within seconds
    /// (the workers' own timeout here is 20 s).
    @Test(arguments: ["--local", "--workers"])
    func test_coordinatorProcess_SIGTERM_workersStopAndNothingIsWritten(mode: String) async throws {
        let coordinator = try coordinatorExecutable()
        let directory = try makeScratchFolder("sigterm")
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("out")
        let endpoint = "ipc://" + directory.appendingPathComponent("c.sock").path
        let process = Process()
        process.executableURL = coordinator
        process.arguments = ["--network", "small", "--images", SamplePhotos.folder, "--chunk-size", "1", "--output", output.path + "/w.safetensors"]
            + (mode == "--local" ? ["--local", "2"] : ["--workers", "2", "--bind", endpoint])
        let pipe = Pipe()
        process.standardError = pipe
        // SIGTERM as soon as the first layer is done (from the pipe's handler: no polling delay).
        let pid = LockedBox<Int32>(0), signalled = LockedBox<ContinuousClock.Instant?>(nil)
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else { handle.readabilityHandler = nil; return }
            if String(decoding: data, as: UTF8.self).contains("[algorithm 1]"), signalled.value == nil, pid.value > 0 {
                signalled.value = ContinuousClock.now
                kill(pid.value, SIGTERM)
            }
        }
        try process.run()
        pid.value = process.processIdentifier
        var workers: [Process] = []
        if mode == "--workers" {
            try await Task.sleep(for: .milliseconds(300))
            workers = try (0..<2).map { try MultiProcessTests.startWorker(endpoint: endpoint, name: "w\($0)") { _ in } }
        }
        defer { for p in workers + [process] where p.isRunning { p.terminate() } }
        let clock = ContinuousClock()
        process.waitUntilExit()
        let sent = try #require(signalled.value, "the run ended before Algorithm 1 was under way")
        #expect(process.terminationReason == .exit && process.terminationStatus == 143, "exit \(process.terminationStatus)")
        #expect(clock.now - sent < .seconds(5))
        let written = (try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? []
        #expect(written.isEmpty, "written after the interrupt: \(written)")
        // The workers: started here, or found by the coordinator's socket in their arguments.
        let marker = mode == "--local" ? "magicinit-\(process.processIdentifier)/" : directory.lastPathComponent
        func running() -> Int {
            let own = workers.filter(\.isRunning).count
            let local = mode == "--local" ? processes(withArgumentContaining: marker) : 0
            return own + local
        }
        let stopDeadline = clock.now + .seconds(10)
        while running() > 0 && clock.now < stopDeadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(running() == 0, "worker processes still running 10 s after the interrupt")
    }

    /// A coordinator killed with SIGKILL cannot remove its `magicinit-<pid>` socket folder;
    /// the next `--local` run removes such folders whose process is gone, and keeps those of
    /// live processes.
    @Test func test_localRun_removesSocketFoldersOfKilledCoordinators() throws {
        let coordinator = try coordinatorExecutable()
        let temporary = try makeScratchFolder("stale")
        defer { try? FileManager.default.removeItem(at: temporary) }
        // A process id that is gone: a finished child's.
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let stale = temporary.appendingPathComponent("magicinit-\(finished.processIdentifier)")
        let live = temporary.appendingPathComponent("magicinit-\(getpid())")
        for folder in [stale, live] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data().write(to: folder.appendingPathComponent("coordinator.sock"))
        }
        let process = Process()
        process.executableURL = coordinator
        process.arguments = ["--network", "small", "--images", SamplePhotos.folder, "--max-images", "4", "--local", "1",
                             "--output", temporary.appendingPathComponent("w.safetensors").path]
        process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": temporary.path]) { $1 }
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: stale.path), "the folder of a process that is gone is left")
        #expect(FileManager.default.fileExists(atPath: live.path), "the folder of a live process was removed")
        let own = temporary.appendingPathComponent("magicinit-\(process.processIdentifier)")
        #expect(!FileManager.default.fileExists(atPath: own.path), "the run did not remove its own socket folder")
    }

    /// SIGTERM while `--verify` checks the written weights: the workers are done and the
    /// files are written, so the process exits at once (143). It must still stop its worker
    /// processes and remove its socket folder (that exit used to skip them and leave
    /// `magicinit-<pid>` behind; so did one between the workers' last reply and the write).
    @Test func test_coordinatorProcess_SIGTERMWhileVerifying_cleansUp() async throws {
        let coordinator = try coordinatorExecutable()
        let temporary = try makeScratchFolder("late")
        let output = temporary.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: temporary) }
        let process = Process()
        process.executableURL = coordinator
        process.arguments = ["--network", "small", "--images", SamplePhotos.folder, "--chunk-size", "2", "--local", "2", "--verify",
                             "--output", output.appendingPathComponent("w.safetensors").path]
        process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": temporary.path]) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let pid = LockedBox<Int32>(0), signalled = LockedBox<Bool>(false)
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else { handle.readabilityHandler = nil; return }
            if String(decoding: data, as: UTF8.self).contains("wrote "), !signalled.value, pid.value > 0 {
                signalled.value = true
                kill(pid.value, SIGTERM)
            }
        }
        try process.run()
        pid.value = process.processIdentifier
        defer { if process.isRunning { process.terminate() } }
        process.waitUntilExit()
        try #require(signalled.value, "the run ended before writing")
        #expect(process.terminationReason == .exit && process.terminationStatus == 143, "exit \(process.terminationStatus)")
        let written = Set((try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? [])
        #expect(written == ["w.safetensors", "w.report.json"], "written: \(written)")
        let socketFolder = temporary.appendingPathComponent("magicinit-\(process.processIdentifier)")
        #expect(!FileManager.default.fileExists(atPath: socketFolder.path), "the socket folder is left")
        let marker = "magicinit-\(process.processIdentifier)/"
        let deadline = ContinuousClock.now + .seconds(10)
        while processes(withArgumentContaining: marker) > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(processes(withArgumentContaining: marker) == 0, "worker processes still running 10 s after the interrupt")
    }
}

/// The `mi-coordinator` built next to the tests.
/// A new empty folder `<tmp>/mi-<name>-<pid>-<random>` for one test (the caller removes it).
func makeScratchFolder(_ name: String) throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mi-\(name)-\(getpid())-\(UInt32.random(in: 0 ... .max))")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder
}

func coordinatorExecutable() throws -> URL {
    let coordinator = MultiProcessTests.workerExecutable.deletingLastPathComponent().appendingPathComponent("mi-coordinator")
    try #require(FileManager.default.isExecutableFile(atPath: coordinator.path), "mi-coordinator must be built next to the tests")
    return coordinator
}

/// Runs `executable` with `arguments` to the end: its exit status and standard error
/// (standard output is discarded).
func runToEnd(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, stderr: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let pipe = Pipe()
    process.standardError = pipe
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let message = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, message)
}

/// How many running processes have `marker` in their command line (a local worker names
/// its coordinator's socket folder there).
func processes(withArgumentContaining marker: String) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { pid in
        guard Int(pid) != nil, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: data, as: UTF8.self).contains(marker)
    }.count
}
