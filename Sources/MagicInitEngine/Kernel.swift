import CDNNL
import MagicInitCore

/// Runtime state of one graph node: its oneDNN primitives, parameter memories and the
/// reorders between the layouts its neighbours chose.
///
/// Lifecycle (driven by ``Engine``): `init` receives the bottoms' value memories and
/// allocates the tops; ``forward()`` fills the tops; ``backward(weights:)`` reads the tops'
/// gradients from ``diffs`` and writes one gradient per bottom into ``sinks``.
class Kernel {
    let context: DNNLContext
    let node: Graph.Node
    let bottomShapes: [[Int]]
    let topShapes: [[Int]]
    /// Values of the bottoms (owned by their producers or the engine's inputs).
    let bottoms: [Memory]
    /// Values of the tops, allocated by the subclass.
    var tops: [Memory] = []
    /// Gradients of the tops (set by the engine before ``backward(weights:)``); each has
    /// the same descriptor as the matching top.
    var diffs: [Memory] = []
    /// Where the gradient with respect to each bottom goes (same descriptor as that
    /// bottom's value; `nil` when that bottom needs no gradient).
    var sinks: [Memory?] = []

    private var adapters: [String: (Reorder, Memory)] = [:]

    init(base node: Graph.Node, graph: Graph, bottoms: [Memory], context: DNNLContext) {
        self.context = context
        self.node = node
        self.bottoms = bottoms
        self.bottomShapes = node.bottoms.map { graph.blobs[$0].shape }
        self.topShapes = node.tops.map { graph.blobs[$0].shape }
    }

    var name: String { node.name }

    func forward() throws { fatalError("subclass") }
    /// The forward-pass memories ``backward(weights:)`` reads when `weights` is false, and
    /// how little of each suffices (see ``SavedForward``). Default: every bottom and top.
    var backwardReads: [(Memory, SavedEncoding)] { (bottoms + tops).map { ($0, .raw) } }
    func backward(weights: Bool) throws { fatalError("subclass") }

    /// Parameters of this node in user layout (Caffe blob order); empty for parameter-free layers.
    func setParameter(_ role: ParameterRole, _ value: Tensor) throws {
        throw EngineError.unknownParameter("\(name).\(role.rawValue)")
    }
    func parameter(_ role: ParameterRole) throws -> Tensor {
        throw EngineError.unknownParameter("\(name).\(role.rawValue)")
    }
    func parameterGradient(_ role: ParameterRole) throws -> Tensor {
        throw EngineError.unknownParameter("\(name).\(role.rawValue)")
    }
    /// The parameter's own buffer when it is held in the user (Caffe) layout; default none.
    func plainParameterBuffer(_ role: ParameterRole) -> UnsafeMutableBufferPointer<Float>? { nil }
    /// The parameter's buffer was written directly: drop anything derived from it.
    func parameterWritten(_ role: ParameterRole) {}

    /// `memory` in layout `desc`: itself when it already is, else a reordered copy kept in a
    /// per-`slot` buffer (the reorder primitive and buffer are built once).
    func adapt(_ memory: Memory, to desc: dnnl_memory_desc_t, slot: String) throws -> Memory {
        if descEqual(memory.desc, desc) { return memory }
        let (reorder, buffer) = try adapter(slot: slot, from: memory.desc, to: desc)
        try reorder.run(memory, buffer, context)
        return buffer
    }

    /// Runs `compute` with a destination in layout `desc` and makes sure the result ends up
    /// in `target` (directly when the layouts agree, else through a buffer and a reorder).
    func produce(into target: Memory, as desc: dnnl_memory_desc_t, slot: String,
                 _ compute: (Memory) throws -> Void) throws {
        if descEqual(target.desc, desc) { return try compute(target) }
        let (_, buffer) = try adapter(slot: slot + ".buffer", from: desc, to: desc)
        try compute(buffer)
        let (reorder, _) = try adapter(slot: slot, from: desc, to: target.desc, buffer: target)
        try reorder.run(buffer, target, context)
    }

    private func adapter(slot: String, from: dnnl_memory_desc_t, to: dnnl_memory_desc_t,
                         buffer: Memory? = nil) throws -> (Reorder, Memory) {
        if let cached = adapters[slot] { return cached }
        let made = (try Reorder(from: from, to: to, context, "\(name) \(slot)"), try buffer ?? Memory(to, context))
        adapters[slot] = made
        return made
    }

    /// Copies `source` into `target` (a cached reorder when their layouts differ).
    func copy(_ source: Memory, into target: Memory, slot: String) throws {
        if descEqual(source.desc, target.desc) {
            target.dataPointer.copyMemory(from: source.dataPointer, byteCount: source.byteCount)
            return
        }
        let (reorder, _) = try adapter(slot: slot + ".copy", from: source.desc, to: target.desc, buffer: target)
        try reorder.run(source, target, context)
    }

    /// A zero-filled scratch memory for `slot`, allocated once.
    func scratch(_ desc: dnnl_memory_desc_t, slot: String) throws -> Memory {
        try adapter(slot: slot + ".scratch", from: desc, to: desc).1
    }

    // MARK: plain-layout helpers for user-facing tensors

    /// Copies `tensor` (row-major, or as `userDesc` describes it) into `memory`.
    func upload(_ tensor: Tensor, into memory: Memory, userDesc: dnnl_memory_desc_t? = nil, slot: String) throws {
        try Engine.upload(tensor, into: memory, userDesc: userDesc, context: context, label: "\(slot) of \(name)")
    }

    /// Copies `memory` out as a row-major tensor of `shape`.
    func download(_ memory: Memory, shape: [Int], userDesc: dnnl_memory_desc_t? = nil) throws -> Tensor {
        try Engine.download(memory, shape: shape, userDesc: userDesc, context: context, label: name)
    }
}
