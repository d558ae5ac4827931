import Foundation
import Synchronization
import Testing
import MagicInitAlgorithms
import MagicInitCluster
import MagicInitCore
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
}
