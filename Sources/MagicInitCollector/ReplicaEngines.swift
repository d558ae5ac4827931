import Foundation
import MagicInitAlgorithms
import MagicInitCore
import MagicInitEngine

/// A collector's weights: its ``WeightReplica`` and the oneDNN engines that compute with
/// them, kept in step. Every directive goes through ``apply(_:)``, which changes the replica
/// and uploads what changed to every engine.
///
/// Large weights that oneDNN keeps in the Caffe layout live only in the first engine's
/// buffer (*engine-resident*): the replica changes them there, so a worker holds one copy of
/// VGG-16's `fc6.weight`, not two; the other engines copy them after each change.
///
/// Not thread-safe: owned by its collector.
struct ReplicaEngines {
    /// Replicas of the network on oneDNN, each used by one thread at a time; chunks are
    /// spread over them and run in parallel (a chunk's result does not depend on which
    /// engine computed it: they are built alike and convolutions give the same bits for
    /// any thread count). The second engine uses the first one's weight buffers where it can.
    let engines: [Engine]
    /// The weights as a value, changed only by directives.
    private(set) var replica: WeightReplica

    /// Engines per collector at most (each costs a copy of the activations and weights).
    static let maxEngines = 2

    /// Builds `min(threads, maxEngines)` engines for `graph` and a replica holding the
    /// starting weights (zero, see `WeightReplica`), uploaded to every engine.
    /// - Throws: `EngineError` when oneDNN cannot build the network.
    init(graph: Graph, options: ChunkCollector.Options) throws {
        let total = max(1, options.threads ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let count = min(total, ReplicaEngines.maxEngines)
        // Two engines allocate at the same time (first snapshots, first backward pass): no
        // prefaulting, which would make them take turns (see `Engine.Options.prefault`).
        // ReLUs run in place: no step reads an affine output after its ReLU has run (the
        // statistics are taken as each affine layer finishes, see `measure`).
        let engineOptions = Engine.Options(threads: max(1, total / count), prefault: count == 1,
                                           inPlaceActivations: options.inPlaceActivations, plainWeights: options.plainWeights)
        let first = try Engine(graph: graph, options: engineOptions)
        engines = try [first] + (1..<count).map { _ in try Engine(graph: graph, options: engineOptions, sharingWeightsOf: first) }
        var external: [String: WeightReplica.ExternalWeights] = [:]
        for spec in graph.parameters where spec.role == .weight && spec.count * 4 >= options.engineResidentBytes {
            if let buffer = first.plainParameterBuffer(spec.key) { external[spec.key] = .init(buffer, zeroed: true) }
        }
        replica = WeightReplica(graph: graph, external: external)
    }

    /// Uploads the replica's starting values: a new engine already holds them wherever they
    /// are zero.
    func uploadStartingValues() throws {
        try setParameters(replica.parameters.filter { $0.value.data.contains { $0 != 0 } })
        try syncEngineResident(replica.externalKeys)
    }

    /// Weights held only in the first engine's buffer.
    var engineResidentKeys: Set<String> { replica.externalKeys }

    /// Every weight the replica holds, engine-resident ones copied in.
    var parameters: ParameterSet { replica.allParameters }

    /// Applies `directive` to the replica and uploads what it changed to every engine.
    /// - Throws: the replica's error for a bad directive (unknown layer, wrong sizes), or
    ///   `EngineError` from an upload.
    mutating func apply(_ directive: WeightDirective) throws {
        let changed = try replica.apply(directive)
        let resident = replica.externalKeys
        try setParameters(changed.filter { !resident.contains($0) }.reduce(into: ParameterSet()) { $0[$1] = replica.parameters[$1] })
        try syncEngineResident(Set(changed).intersection(resident))
    }

    /// Runs `body`, which may write other weights into the first engine (a replay runs each
    /// step with the weights it had), then puts the replica's weights back into every
    /// engine, engine-resident ones included (kept aside first: a rare path, one more copy
    /// of them while it runs).
    func withScratchWeights<T>(_ body: () throws -> T) throws -> T {
        let resident = replica.externalKeys.reduce(into: ParameterSet()) { $0[$1] = replica.value(of: $1) }
        defer {
            try? setParameters(replica.parameters)
            for (key, value) in resident {
                value.data.withUnsafeBufferPointer { try? engines[0].setParameter(key, from: $0) }
            }
            try? syncEngineResident(Set(resident.keys))
        }
        return try body()
    }

    /// Sets parameters on every engine (once for weights the engines share).
    private func setParameters(_ parameters: ParameterSet) throws {
        try engines[0].setParameters(parameters)
        for engine in engines.dropFirst() {
            try engine.setParameters(parameters.filter { !engine.sharesParameter($0.key) })
        }
    }

    /// After the replica changed engine-resident weights `keys` in the first engine's
    /// buffer: that engine rebuilds what it derives from them, the others copy them.
    private func syncEngineResident(_ keys: Set<String>) throws {
        for key in keys {
            engines[0].parameterWritten(key)
            guard engines.count > 1, let buffer = engines[0].plainParameterBuffer(key) else { continue }
            for engine in engines.dropFirst() { try engine.setParameter(key, from: UnsafeBufferPointer(buffer)) }
        }
    }
}
