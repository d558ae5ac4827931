import Foundation
import Testing
import MagicInitAlgorithms
import MagicInitCluster
import MagicInitCore
import MagicInitTransport

/// Real `mi-worker` processes over ZeroMQ (ipc://): one is killed with SIGKILL mid-run; the
/// run completes and the weights are bitwise identical to an undisturbed run.
@Suite(.serialized) struct MultiProcessTests {
    static var workerExecutable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("mi-worker")
    }

    /// Starts a worker process whose stderr lines are passed to `onLine`.
    static func startWorker(endpoint: String, name: String, onLine: @escaping @Sendable (String) -> Void) throws -> Process {
        let process = Process()
        process.executableURL = workerExecutable
        process.arguments = ["--connect", endpoint, "--threads", "1", "--name", name, "--die-with-parent", "--coordinator-timeout", "20"]
        let pipe = Pipe()
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else { handle.readabilityHandler = nil; return }
            String(decoding: data, as: UTF8.self).split(separator: "\n").forEach { onLine(String($0)) }
        }
        try process.run()
        return process
    }

    @Test func test_workerKilledWithSIGKILL_runCompletes_weightsBitwiseIdentical() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.workerExecutable.path), "mi-worker must be built next to the tests")
        let undisturbed = try await DeterminismTests.localRun()

        let directory = try makeScratchFolder("test")
        defer { try? FileManager.default.removeItem(at: directory) }
        let router = try ZMQRouter(bind: "ipc://" + directory.appendingPathComponent("c.sock").path)
        defer { router.close() }
        var settings = ClusterStatisticsSource.Settings()
        settings.heartbeatInterval = .milliseconds(100)
        settings.livenessInHeartbeats = 10
        let plan = try DeterminismTests.plan()
        let source = try ClusterStatisticsSource(transport: router, network: BuiltinNetworks.small(), configuration: DeterminismTests.configuration(),
                                                 chunks: plan.assignments, runID: 99, settings: settings, log: { _ in })

        // Worker 0 is killed right after it reports its second computed step.
        let victim = LockedBox<Process?>(nil)
        let killed = LockedBox(false)
        let steps = LockedBox(0)
        let first = try Self.startWorker(endpoint: router.endpoint, name: "victim") { line in
            guard line.contains("] step ") else { return }
            let n = steps.update { $0 += 1; return $0 }
            if n == 2, let p = victim.value, !killed.value {
                kill(p.processIdentifier, SIGKILL)
                killed.value = true
            }
        }
        victim.value = first
        let second = try Self.startWorker(endpoint: router.endpoint, name: "survivor") { _ in }
        defer {
            for p in [first, second] where p.isRunning { p.terminate() }
        }
        try await source.start(expectedWorkers: 2)
        let (parameters, _) = try await Initializer(options: DeterminismTests.options).run(source, images: plan.loaded.count)
        await source.shutdown(reason: "test finished", wait: .seconds(2))
        second.waitUntilExit()

        #expect(killed.value, "the victim worker was never killed")
        #expect(await !source.traffic.lostWorkers.isEmpty, "the coordinator did not notice the lost worker")
        #expect(DeterminismTests.differingKeys(undisturbed, parameters).isEmpty,
                "parameters differ from the undisturbed run: \(DeterminismTests.differingKeys(undisturbed, parameters))")
    }
}

/// A value shared with pipe callbacks.
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
    func update<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&stored) } }
}
