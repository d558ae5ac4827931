import ArgumentParser
import CProcess
import Foundation
import MagicInitCluster
import MagicInitEngine
import MagicInitTransport
import MagicInitZeroMQ

/// `mi-worker`: connects to a coordinator, receives the network, its chunks of images and
/// weight directives, and returns LZ4-compressed partial statistics per chunk.
@main
struct MIWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mi-worker",
        abstract: "Compute partial statistics for a MagicInit coordinator.",
        discussion: """
            Start the coordinator first (it prints its endpoint), then one worker per machine or \
            per group of cores:
              mi-worker --connect tcp://10.0.0.5:5555 --threads 8
            The worker needs no files: the coordinator sends the network and the images. It exits \
            when the coordinator says the run is over, or when the coordinator stays silent for \
            --coordinator-timeout seconds.
            """)

    @Option(help: "The coordinator's endpoint, e.g. tcp://127.0.0.1:5555 or ipc:///tmp/mi.sock.")
    var connect = "tcp://127.0.0.1:5555"

    @Option(help: "Threads for this worker (default: all cores). With two or more, they are split between two oneDNN engines working on different chunks side by side (8 threads: two engines of 4).")
    var threads: Int?

    @Option(help: "A name for logs (default: host name and process id).")
    var name: String?

    @Option(help: "Give up after the coordinator has been silent this many seconds.")
    var coordinatorTimeout = 60

    @Flag(help: "Exit when the parent process exits (used by mi-coordinator --local).")
    var dieWithParent = false

    @Flag(help: "Log only errors (used by mi-coordinator --local).")
    var quiet = false

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard coordinatorTimeout >= 1 else { throw ValidationError("--coordinator-timeout must be at least 1 second") }
    }

    func run() throws {
        mi_reset_signals()
        if dieWithParent { _ = mi_die_with_parent() }
        ProcessTuning.keepFreedMemory()
        let host = name ?? "\(ProcessInfo.processInfo.hostName):\(getpid())"
        let quiet = self.quiet
        let log: @Sendable (String) -> Void = { line in
            if !quiet { FileHandle.standardError.write(Data("[\(host)] \(line)\n".utf8)) }
        }
        let transport = try ZMQDealer(connect: connect)
        defer { transport.close() }
        var settings = WorkerSession.Settings(threads: threads ?? ProcessInfo.processInfo.activeProcessorCount, host: host)
        settings.coordinatorTimeout = .seconds(coordinatorTimeout)
        log("connecting to \(connect) with \(settings.threads) thread(s)")
        do {
            try WorkerSession(transport: transport, settings: settings, log: log).run()
        } catch {
            FileHandle.standardError.write(Data("[\(host)] stopped: \(error)\n".utf8))
            throw ExitCode(1)
        }
        log(String(format: "done; peak resident memory %.2f GB", Double(peakResidentBytes()) / 1e9))
    }
}
