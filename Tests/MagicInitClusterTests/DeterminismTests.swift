import Foundation
import Testing
import MagicInitAlgorithms
import MagicInitCluster
import MagicInitCollector
import MagicInitCore
import MagicInitImages
import MagicInitSamples
import MagicInitTransport
import MagicInitWire

/// The same run over the in-process transport with 1, 2 and 3 workers, against the
/// single-process result: the weights must be bitwise identical (docs/DESIGN.md §3).
@Suite(.serialized) struct DeterminismTests {
    static let chunkSize = 3

    static func plan() throws -> ImageChunks.Plan {
        let loader = try ImageLoader(inputShape: [3, 32, 32], preprocessing: .caffe)
        let paths = Array(try ImageCollection.listImages(in: SamplePhotos.folder).prefix(10))
        return try ImageChunks.plan(paths: paths, chunkSize: chunkSize, loader: loader) { _ in }
    }

    static var options: InitOptions {
        var o = InitOptions()
        o.seed = 42
        return o
    }

    /// As the coordinator configures workers (Algorithm 1 keeps the affine inputs for the
    /// default weight-gradient measure).
    static func configuration() -> RunConfiguration {
        RunConfiguration(model: .builtin(name: "small"), chunkSize: chunkSize, seed: options.seed, inputShape: [3, 32, 32],
                         bgr: true, mean: [104, 117, 123], std: [1, 1, 1], centerCrop: true, keepAffineInputs: options.keepsAffineInputs)
    }

    /// Runs the whole initialisation over `workers` in-process workers. With `killAfter`,
    /// once worker 0 (any worker, when `countingAll`) has sent that many replies, workers
    /// `0..<victims` stop together (``WorkerFault``: killed, or muted so only the liveness
    /// check notices); `lateJoiner` starts a new worker then.
    static func clusterRun(workers: Int, killAfter: Int? = nil, countingAll: Bool = false, victims: Int = 1, fault: WorkerFault.Kind = .kill,
                           lateJoiner: Bool = false) async throws -> (parameters: ParameterSet, lost: [String]) {
        let hub = InProcessHub()
        let plan = try plan()
        var settings = ClusterStatisticsSource.Settings()
        settings.heartbeatInterval = .milliseconds(50)
        settings.livenessInHeartbeats = 6
        let source = try ClusterStatisticsSource(transport: hub.makeRouter(), network: BuiltinNetworks.small(), configuration: configuration(),
                                                 chunks: plan.assignments, runID: 7, settings: settings, log: { _ in })
        let faults = WorkerFault(hub: hub, trigger: countingAll ? nil : "worker-0", afterReplies: killAfter ?? .max,
                                 victims: (0..<victims).map { "worker-\($0)" }, kind: fault)
        @Sendable func startWorker(_ name: String) {
            let dealer = FaultyDealer(hub.makeDealer(identity: Array(name.utf8)), name: name, fault: faults)
            var workerSettings = WorkerSession.Settings(threads: 1, host: "in-process \(name)")
            workerSettings.coordinatorTimeout = .seconds(30)
            let session = WorkerSession(transport: dealer, settings: workerSettings, log: { _ in })
            Thread { _ = try? session.run() }.start()
        }
        if lateJoiner { faults.whenStruck { startWorker("worker-late") } }
        for i in 0..<workers { startWorker("worker-\(i)") }
        try await source.start(expectedWorkers: workers)
        let (parameters, _) = try await Initializer(options: options).run(source, images: plan.loaded.count)
        await source.shutdown(reason: "test finished")
        if let killAfter { #expect(faults.struck, "the fault never struck: at most \(killAfter) replies were sent") }
        return (parameters, await source.traffic.lostWorkers)
    }

    static func localRun() async throws -> ParameterSet {
        let plan = try plan()
        let source = try LocalStatisticsSource(network: BuiltinNetworks.small(), images: plan.tensor, chunkSize: chunkSize, seed: options.seed, threads: 2,
                                               keepAffineInputs: options.keepsAffineInputs)
        return try await Initializer(options: options).run(source, images: plan.loaded.count).0
    }

    static func differingKeys(_ a: ParameterSet, _ b: ParameterSet) -> [String] {
        a.keys.sorted().filter { key in
            guard let x = a[key], let y = b[key], x.shape == y.shape else { return true }
            return !zip(x.data, y.data).allSatisfy { $0.bitPattern == $1.bitPattern }
        }
    }

    @Test func test_oneTwoThreeWorkers_weightsBitwiseIdenticalToSingleProcess() async throws {
        let local = try await Self.localRun()
        for workers in 1...3 {
            let cluster = try await Self.clusterRun(workers: workers).parameters
            #expect(Self.differingKeys(local, cluster).isEmpty, "\(workers) worker(s): parameters differ: \(Self.differingKeys(local, cluster))")
        }
    }

    /// Worker 0 holds 2 of the 4 chunks and answers 2 replies per request: it disappears
    /// after 5 replies (in Algorithm 1's third layer) or after 11 (during Algorithm 2's first
    /// measurement, which reuses Algorithm 1's forward pass: the adopting worker replays
    /// Algorithm 1 for the chunk).
    @Test(arguments: [5, 11])
    func test_workerVanishesMidRun_chunksReassigned_weightsBitwiseIdentical(killAfter: Int) async throws {
        let local = try await Self.localRun()
        let cluster = try await Self.clusterRun(workers: 2, killAfter: killAfter).parameters
        #expect(Self.differingKeys(local, cluster).isEmpty, "parameters differ: \(Self.differingKeys(local, cluster))")
    }

    /// Every worker vanishes mid-run: the run ends with the cluster's own error (nothing to
    /// write), not with the transport's complaint about a peer that is gone.
    @Test func test_everyWorkerVanishes_runFailsWithAllWorkersLost() async throws {
        do {
            _ = try await Self.clusterRun(workers: 2, killAfter: 3, victims: 2)
            Issue.record("the run finished without workers")
        } catch let error as ClusterError {
            guard case .allWorkersLost = error else { Issue.record("unexpected error: \(error)"); return }
        } catch {
            Issue.record("not a ClusterError: \(error)")
        }
    }

    /// As above, with a new worker joining as worker 0 vanishes: it holds the weights but
    /// not Algorithm 1's history, so the chunks go to the worker present from the start
    /// (given to the newcomer they crashed it in Algorithm 2, or changed the last bits).
    @Test(arguments: [5, 11])
    func test_workerVanishesAndANewOneJoins_weightsBitwiseIdentical(killAfter: Int) async throws {
        let local = try await Self.localRun()
        let cluster = try await Self.clusterRun(workers: 2, killAfter: killAfter, lateJoiner: true).parameters
        #expect(Self.differingKeys(local, cluster).isEmpty, "parameters differ: \(Self.differingKeys(local, cluster))")
    }

    /// Two of three workers stop in the same moment, at five points of the run (after 0, 6,
    /// 13, 21 and 25 replies of the 4 chunks: Algorithm 1's first, second and fourth of five
    /// layers, Algorithm 2's first measurement, which reuses Algorithm 1's forward pass, and
    /// its verification pass): both are lost in
    /// one liveness check and every chunk of both goes to the one live worker. Killed (their
    /// connections close) or muted (only silence tells). Before the machine chose heirs
    /// among live workers only, the first loss handed chunks to the second dead worker and the
    /// run hung for ever (issue 19).
    @Test(.timeLimit(.minutes(3)), arguments: [WorkerFault.Kind.kill, .mute])
    func test_twoWorkersLostTogether_chunksGoToTheLiveOne_weightsBitwiseIdentical(fault: WorkerFault.Kind) async throws {
        let local = try await Self.localRun()
        for killAfter in [0, 6, 13, 21, 25] {
            let cluster = try await Self.clusterRun(workers: 3, killAfter: killAfter, countingAll: true, victims: 2, fault: fault)
            #expect(Self.differingKeys(local, cluster.parameters).isEmpty,
                    "\(fault) after \(killAfter) replies: parameters differ: \(Self.differingKeys(local, cluster.parameters))")
            #expect(cluster.lost.count == 2, "\(fault) after \(killAfter) replies: lost \(cluster.lost)")
        }
    }
}
