import Foundation
import Testing
import MagicInitAlgorithms
import MagicInitCluster
import MagicInitCore
import MagicInitTransport
import MagicInitZeroMQ

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
        try await Self.runKilling(victims: 1, of: 2, afterSteps: 2)
    }

    /// Two of three worker processes SIGKILLed in the same instant (issue 19: the first loss
    /// handed chunks to the second dead worker and the run hung for ever): both are lost and
    /// the survivor computes every chunk, bitwise as undisturbed. After the victim's first
    /// and third computed step: Algorithm 1's first layer, and a later one.
    @Test(.timeLimit(.minutes(3)), arguments: [1, 3])
    func test_twoWorkersKilledTogether_runCompletes_weightsBitwiseIdentical(afterSteps: Int) async throws {
        try await Self.runKilling(victims: 2, of: 3, afterSteps: afterSteps)
    }

    /// Starts `count` worker processes; once the first has logged `afterSteps` computed
    /// steps, the first `victims` of them are SIGKILLed together. The run must complete with
    /// the weights of the undisturbed single-process run, and the coordinator must have
    /// declared every victim lost.
    static func runKilling(victims: Int, of count: Int, afterSteps: Int) async throws {
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

        let targets = LockedBox<[Process]>([])
        let killed = LockedBox(false)
        let steps = LockedBox(0)
        var processes: [Process] = []
        for i in 0..<count {
            let isFirst = i == 0
            let process = try Self.startWorker(endpoint: router.endpoint, name: i < victims ? "victim-\(i)" : "survivor-\(i)") { line in
                guard isFirst, line.contains("] step ") else { return }
                let n = steps.update { $0 += 1; return $0 }
                guard n == afterSteps, !killed.value else { return }
                for p in targets.value { kill(p.processIdentifier, SIGKILL) }
                killed.value = true
            }
            processes.append(process)
        }
        targets.value = Array(processes.prefix(victims))
        defer {
            for p in processes where p.isRunning { p.terminate() }
        }
        try await source.start(expectedWorkers: count)
        let (parameters, _) = try await Initializer(options: DeterminismTests.options).run(source, images: plan.loaded.count)
        await source.shutdown(reason: "test finished", wait: .seconds(2))
        for p in processes.dropFirst(victims) { p.waitUntilExit() }

        #expect(killed.value, "the victims were never killed")
        let lost = await source.traffic.lostWorkers
        #expect(lost.count == victims, "lost: \(lost)")
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
