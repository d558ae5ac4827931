import CDNNL
import MagicInitCore

/// Runs a compiled ``Graph`` forward and backward on oneDNN (CPU, float32).
///
/// Every blob value of the graph is kept after ``forward()`` (in-place layers get their own
/// buffers unless ``Options/inPlaceActivations`` says otherwise), so any layer's input and
/// output can be read back; ``backward(weights:)`` fills the gradient of every blob (and,
/// on request, of every parameter) from the gradients set on the outputs. Activations are
/// stored in layouts oneDNN chooses; values crossing the API are row-major (`NCHW`)
/// ``Tensor``s.
///
/// Not thread-safe: one caller at a time (the owner of the engine, e.g. a worker actor).
/// oneDNN itself runs each primitive on ``Options/threads`` OpenMP threads.
public final class Engine {
    /// Engine settings.
    public struct Options: Sendable {
        /// OpenMP threads for oneDNN (process-wide setting); `nil` keeps the current value.
        public var threads: Int?
        public var convolutionAlgorithm: ConvolutionAlgorithm
        /// Whether ``backward(weights:)`` also computes the gradient of the input blobs.
        public var gradientToInputs: Bool
        /// Whether large buffers (and snapshots) are faulted in as they are mapped
        /// (`MAP_POPULATE`): faster for a lone engine, but it serialises engines of one
        /// process that allocate at the same time, so those turn it off.
        public var prefault: Bool
        /// Whether a ReLU (slope ≥ 0) writes its output over its input when nothing else
        /// reads that input (Caffe's in-place ReLU; saves a value and a gradient buffer per
        /// ReLU: VGG-16 at batch 4, 434 MB). Afterwards the input blob's value and the
        /// output blob's gradient are gone: read the input's value before the ReLU runs (as
        /// ``forward(nodes:)`` up to its producer allows); the input's gradient is kept.
        public var inPlaceActivations: Bool
        /// Weight keys (`conv1.weight`) whose forward primitive must take the weights in
        /// Caffe's layout instead of the layout oneDNN would choose (`format_tag any`), so
        /// ``plainParameterBuffer(_:)`` exposes them on every CPU. Which layout oneDNN picks
        /// depends on the ISA and cache sizes (an AVX2-only AMD EPYC keeps no weight plain
        /// where an AVX-512 Xeon keeps the inner products' plain); this pins it. Two engines
        /// built with the same set compute bit for bit alike.
        public var plainWeights: Set<String>
        /// Checked before every primitive: once cancelled, passes throw `CancellationError`
        /// (a signal stops a pass within one primitive). Default: ``Cancellation/process``.
        public var cancellation: Cancellation = .process

        public init(threads: Int? = nil, convolutionAlgorithm: ConvolutionAlgorithm = .direct, gradientToInputs: Bool = false,
                    prefault: Bool = true, inPlaceActivations: Bool = false, plainWeights: Set<String> = []) {
            self.threads = threads
            self.convolutionAlgorithm = convolutionAlgorithm
            self.gradientToInputs = gradientToInputs
            self.prefault = prefault
            self.inPlaceActivations = inPlaceActivations
            self.plainWeights = plainWeights
        }
    }

    public let graph: Graph
    public let options: Options
    let context: DNNLContext
    let kernels: [Kernel]
    /// Value of each blob (indexed like ``Graph/blobs``).
    let values: [Memory]
    /// Blobs whose value (and gradient) is another blob's buffer: the top of an in-place
    /// ReLU → its bottom (see ``Options/inPlaceActivations``).
    let inPlace: [Int: Int]
    /// Gradient of each blob, same layout as its value; built on the first backward pass.
    private var diffs: [Memory?] = []
    /// For blobs read by several nodes (or twice by one): per-edge gradients and the sum
    /// primitive that adds them into the blob's gradient.
    private var accumulators: [Int: (parts: [Memory], sum: Primitive)] = [:]
    private var kernelByName: [String: Kernel] = [:]
    /// The memories backward-to-data reads from the forward pass (deduplicated; raw wins
    /// over positivity when two readers disagree) and, per node, which of them it reads.
    let savedSlots: (memories: [(memory: Memory, encoding: SavedEncoding)], perNode: [[Int]])

    /// Wall time per layer, accumulated over passes while ``profiling`` is on.
    public struct LayerTiming: Sendable {
        public var layer: String
        public var type: String
        /// Seconds spent in forward passes.
        public var forward: Double = 0
        /// Seconds spent in backward passes (data and, when asked, weights).
        public var backward: Double = 0
    }

    /// When on, ``forward()`` and ``backward(weights:)`` record per-layer wall times in
    /// ``timings`` (costs two clock reads per layer).
    public var profiling = false
    /// Per-layer times in node order (see ``profiling``).
    public private(set) var timings: [LayerTiming] = []

    /// Clears ``timings``.
    public func resetTimings() {
        timings = graph.nodes.map { LayerTiming(layer: $0.name, type: $0.kind.caffeType) }
    }

    private func timed(_ index: Int, forward: Bool, _ body: () throws -> Void) throws {
        try options.cancellation.check()
        guard profiling else { return try body() }
        if timings.isEmpty { resetTimings() }
        let start = ContinuousClock.now
        try body()
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        if forward { timings[index].forward += seconds } else { timings[index].backward += seconds }
    }

    /// Builds every primitive for `graph` (its batch size included).
    /// - Parameter sharingWeightsOf: an engine built for the same graph and options whose
    ///   convolution and inner-product weight and bias buffers this one uses instead of its
    ///   own (a second engine of one process: VGG-16 saves 553 MB). Setting a parameter
    ///   through either engine sets it for both. Passes may run on both at once; setting
    ///   parameters must not overlap a pass on either.
    /// - Throws: ``EngineError/dnnl(status:context:)`` naming the layer oneDNN rejected.
    public init(graph: Graph, options: Options = Options(), sharingWeightsOf other: Engine? = nil) throws {
        if let threads = options.threads { setEngineThreadCount(threads) }
        self.graph = graph
        self.options = options
        let context = try DNNLContext(prefault: options.prefault)
        self.context = context
        var values = [Memory?](repeating: nil, count: graph.blobs.count)
        for id in graph.inputs { values[id] = try Memory(plainDesc(graph.blobs[id].shape), context) }
        var kernels: [Kernel] = []
        var inPlace: [Int: Int] = [:]
        for node in graph.nodes {
            let bottoms = node.bottoms.map { values[$0]! }
            let kernel: Kernel
            switch node.kind {
            case .convolution, .deconvolution, .innerProduct:
                kernel = try AffineKernel(node: node, graph: graph, bottoms: bottoms, context: context, algorithm: options.convolutionAlgorithm,
                                          plainWeights: node.parameters.first.map { options.plainWeights.contains($0.key) } ?? false,
                                          sharing: other?.kernelByName[node.name] as? AffineKernel)
            case .relu(let slope) where slope >= 0 && options.inPlaceActivations && Engine.mayOverwrite(node.bottoms[0], graph: graph, values: values):
                kernel = try ActivationKernel(node: node, graph: graph, bottoms: bottoms, context: context, inPlace: true)
                if kernel.tops[0] === bottoms[0] { inPlace[node.tops[0]] = node.bottoms[0] }
            case .relu, .sigmoid, .tanh:
                kernel = try ActivationKernel(node: node, graph: graph, bottoms: bottoms, context: context)
            case .lrn: kernel = try LRNKernel(node: node, graph: graph, bottoms: bottoms, context: context)
            case .pooling: kernel = try PoolingKernel(node: node, graph: graph, bottoms: bottoms, context: context)
            case .batchNorm: kernel = try BatchNormKernel(node: node, graph: graph, bottoms: bottoms, context: context)
            case .scale: kernel = try ScaleKernel(node: node, graph: graph, bottoms: bottoms, context: context)
            case .concat: kernel = try ConcatKernel(node: node, graph: graph, bottoms: bottoms, context: context)
            case .eltwise: kernel = try EltwiseLayerKernel(node: node, graph: graph, bottoms: bottoms, context: context)
            case .softmax: kernel = try SoftmaxKernel(node: node, graph: graph, bottoms: bottoms, context: context)
            case .dropout, .flatten, .reshape: kernel = try IdentityKernel(node: node, graph: graph, bottoms: bottoms, context: context)
            }
            for (id, memory) in zip(node.tops, kernel.tops) { values[id] = memory }
            kernels.append(kernel)
        }
        self.kernels = kernels
        self.values = values.map { $0! }
        self.inPlace = inPlace
        var slotOf: [UnsafeMutableRawPointer: Int] = [:]
        var memories: [(memory: Memory, encoding: SavedEncoding)] = []
        var perNode: [[Int]] = []
        for kernel in kernels {
            perNode.append(kernel.backwardReads.map { memory, encoding in
                if let slot = slotOf[memory.dataPointer] {
                    if encoding == .raw { memories[slot].encoding = .raw }
                    if memory.byteCount > memories[slot].memory.byteCount { memories[slot].memory = memory }
                    return slot
                }
                slotOf[memory.dataPointer] = memories.count
                memories.append((memory, encoding))
                return memories.count - 1
            })
        }
        savedSlots = (memories, perNode)
        for kernel in kernels { kernelByName[kernel.name] = kernel }
    }

    // MARK: data in and out

    /// Sets network input `index` (``Graph/inputs`` order) from a row-major `(N, C, H, W)` tensor.
    /// - Throws: ``EngineError/blobShape(blob:expected:actual:)`` when the shape differs from the graph's.
    public func setInput(_ tensor: Tensor, at index: Int = 0) throws {
        guard graph.inputs.indices.contains(index) else { throw EngineError.inputCount(expected: graph.inputs.count, actual: index + 1) }
        let id = graph.inputs[index]
        try write(tensor, into: values[id], blob: id)
    }

    /// The value of blob `id` after the last ``forward()``, row-major.
    public func value(of id: Int) throws -> Tensor {
        try Engine.download(values[id], shape: graph.blobs[id].shape, userDesc: nil, context: context, label: graph.blobs[id].label)
    }

    /// Calls `body` with blob `id`'s value in row-major order, without allocating: the
    /// blob's own buffer when its layout is already plain, else a reorder into one scratch
    /// buffer the engine reuses (valid only during `body`; do not nest these calls).
    public func withValue<R>(of id: Int, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        try withPlain(values[id], blob: id, slot: "value", body)
    }

    /// Like ``withValue(of:_:)`` for blob `id`'s gradient (after ``backward(weights:)``).
    public func withGradient<R>(of id: Int, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard diffs.indices.contains(id), let diff = diffs[id] else {
            throw EngineError.missingParameter("gradient of blob \(graph.blobs[id].label) (run backward first)")
        }
        return try withPlain(diff, blob: id, slot: "gradient", body)
    }

    /// Blob `id`'s gradient memory, once a backward pass has allocated it.
    func gradientMemory(_ id: Int) -> Memory? {
        diffs.indices.contains(id) ? diffs[id] : nil
    }

    private var plainScratch: (buffer: UnsafeMutableRawPointer, bytes: Int)?
    private var plainReorders: [String: (Reorder, Memory)] = [:]

    func withPlain<R>(_ memory: Memory, blob id: Int, slot: String, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        let shape = graph.blobs[id].shape
        let count = shape.reduce(1, *)
        let plain = try plainDesc(shape)
        if descEqual(plain, memory.desc) { return try body(UnsafeBufferPointer(start: memory.floats, count: count)) }
        if plainScratch == nil || plainScratch!.bytes < count * 4 {
            plainScratch.map { $0.buffer.deallocate() }
            let largest = graph.blobs.map { $0.shape.reduce(1, *) }.max()! * 4
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: largest, alignment: 64)
            plainScratch = (buffer, largest)
            plainReorders = [:]
        }
        let key = "\(id) \(slot)"
        if plainReorders[key] == nil {
            let target = try Memory(wrapping: plainScratch!.buffer, desc: plain, context)
            plainReorders[key] = (try Reorder(from: memory.desc, to: plain, context, "\(slot) of \(graph.blobs[id].label)"), target)
        }
        let (reorder, target) = plainReorders[key]!
        try reorder.run(memory, target, context)
        return try body(UnsafeBufferPointer(start: target.floats, count: count))
    }

    deinit {
        plainReorders = [:]
        plainScratch.map { $0.buffer.deallocate() }
    }

    /// Sets the gradient of blob `id` (normally an output: the top gradient η of the paper's
    /// random linear loss `ℓ = η · z_N`, Krähenbühl et al. 2016 §3).
    public func setGradient(_ tensor: Tensor, of id: Int) throws {
        try prepareBackward()
        guard let diff = diffs[id] else { throw EngineError.missingParameter("gradient of input blob \(graph.blobs[id].label)") }
        try write(tensor, into: diff, blob: id)
    }

    /// The gradient of blob `id` after the last ``backward(weights:)``, row-major.
    public func gradient(of id: Int) throws -> Tensor {
        guard diffs.indices.contains(id), let diff = diffs[id] else {
            throw EngineError.missingParameter("gradient of blob \(graph.blobs[id].label) (run backward first; inputs need gradientToInputs)")
        }
        return try Engine.download(diff, shape: graph.blobs[id].shape, userDesc: nil, context: context, label: graph.blobs[id].label)
    }

    /// Sets parameters by key (`conv1.weight`, …; Caffe layouts). Keys not in the set keep
    /// their values (zero after creation; BatchNorm starts as the identity, Scale as γ = 1).
    /// - Throws: ``EngineError/unknownParameter(_:)`` or ``EngineError/parameterShape(key:expected:actual:)``.
    public func setParameters(_ parameters: ParameterSet) throws {
        let specs = Dictionary(uniqueKeysWithValues: graph.parameters.map { ($0.key, $0) })
        for (key, tensor) in parameters {
            guard let spec = specs[key], let kernel = kernelByName[spec.layer] else { throw EngineError.unknownParameter(key) }
            guard tensor.shape == spec.shape else { throw EngineError.parameterShape(key: key, expected: spec.shape, actual: tensor.shape) }
            try kernel.setParameter(spec.role, tensor)
        }
    }

    /// Parameter `key`'s spec and the kernel of its layer; `nil` for an unknown key.
    private func parameterKernel(_ key: String) -> (spec: ParameterSpec, kernel: Kernel)? {
        guard let spec = graph.parameters.first(where: { $0.key == key }), let kernel = kernelByName[spec.layer] else { return nil }
        return (spec, kernel)
    }

    /// The engine's own buffer of parameter `key` when oneDNN keeps it in the Caffe layout
    /// (row-major, the shape of the parameter spec), e.g. VGG-16's `fc6.weight` (411 MB):
    /// a caller that keeps its copy of these weights here instead of in a second array
    /// writes through this pointer and then calls ``parameterWritten(_:)``. `nil` for other
    /// layouts and unknown keys. Valid while the engine lives; not thread-safe with passes.
    /// A new engine's buffers hold zeros (large ones are fresh mapped pages, possibly not
    /// yet faulted in).
    public func plainParameterBuffer(_ key: String) -> UnsafeMutableBufferPointer<Float>? {
        parameterKernel(key).flatMap { $0.kernel.plainParameterBuffer($0.spec.role) }
    }

    /// Whether parameter `key` lives in another engine's buffer (see `sharingWeightsOf`).
    public func sharesParameter(_ key: String) -> Bool {
        (parameterKernel(key)?.kernel as? AffineKernel)?.sharesWeights ?? false
    }

    /// Tells the engine that parameter `key` was written through ``plainParameterBuffer(_:)``:
    /// copies derived from it (the backward-data layout of the weights) are rebuilt.
    public func parameterWritten(_ key: String) {
        guard let (spec, kernel) = parameterKernel(key) else { return }
        kernel.parameterWritten(spec.role)
    }

    /// Sets parameter `key` from `values` in the Caffe layout (as ``setParameters(_:)``,
    /// without a `Tensor`).
    /// - Throws: ``EngineError/unknownParameter(_:)``, ``EngineError/parameterShape(key:expected:actual:)``.
    public func setParameter(_ key: String, from values: UnsafeBufferPointer<Float>) throws {
        guard let (spec, kernel) = parameterKernel(key) else { throw EngineError.unknownParameter(key) }
        guard values.count == spec.count else { throw EngineError.parameterShape(key: key, expected: spec.shape, actual: [values.count]) }
        if let own = kernel.plainParameterBuffer(spec.role) {
            if UnsafePointer(own.baseAddress) != values.baseAddress { own.baseAddress!.update(from: values.baseAddress!, count: values.count) }
            kernel.parameterWritten(spec.role)
        } else {
            try kernel.setParameter(spec.role, Tensor(shape: spec.shape, data: Array(values)))
        }
    }

    /// Every parameter, by key, in Caffe layouts.
    public func parameters() throws -> ParameterSet {
        var out: ParameterSet = [:]
        for spec in graph.parameters { out[spec.key] = try kernelByName[spec.layer]!.parameter(spec.role) }
        return out
    }

    /// The current value of parameter `key`, Caffe layout.
    /// - Throws: ``EngineError/unknownParameter(_:)``.
    public func parameterValue(_ key: String) throws -> Tensor {
        guard let (spec, kernel) = parameterKernel(key) else { throw EngineError.unknownParameter(key) }
        return try kernel.parameter(spec.role)
    }

    /// The gradient of parameter `key` from the last ``backward(weights:)`` with `weights: true`.
    public func parameterGradient(_ key: String) throws -> Tensor {
        guard let (spec, kernel) = parameterKernel(key) else { throw EngineError.unknownParameter(key) }
        return try kernel.parameterGradient(spec.role)
    }

    // MARK: passes

    /// Runs every layer forward (inference semantics: dropout is the identity).
    public func forward() throws {
        try forward(nodes: kernels.indices)
    }

    /// Runs the nodes `nodes` (indices into ``Graph/nodes``, topological order) forward,
    /// reading whatever their bottoms hold: results of earlier passes or values restored
    /// with ``setValue(_:of:)``. Lets a caller advance a network layer by layer.
    public func forward(nodes: Range<Int>) throws {
        applyThreadCount()
        for index in nodes { try timed(index, forward: true) { try kernels[index].forward() } }
    }

    /// Overwrites the value of blob `id` (any blob, e.g. a cached activation) from a
    /// row-major tensor of the blob's shape.
    /// - Throws: ``EngineError/blobShape(blob:expected:actual:)``.
    public func setValue(_ tensor: Tensor, of id: Int) throws {
        try write(tensor, into: values[id], blob: id)
    }

    /// Backpropagates the gradients set on the outputs (unset ones are zero) through every
    /// layer, filling every blob's gradient; with `weights`, also every parameter gradient.
    public func backward(weights: Bool) throws {
        try backward(weights: weights) { _, _ in false }
    }

    /// The backward pass, with `override(index, kernel)` asked first for each node: it
    /// returns `true` when it ran that node's backward itself.
    func backward(weights: Bool, override: (Int, Kernel) throws -> Bool) throws {
        applyThreadCount()
        try prepareBackward()
        for (index, kernel) in kernels.enumerated().reversed() {
            try timed(index, forward: false) {
                for top in graph.nodes[index].tops { try accumulate(top) }
                if try !override(index, kernel) { try kernel.backward(weights: weights) }
            }
        }
        for input in graph.inputs { try accumulate(input) }
    }

    /// Adds the per-edge gradients of a blob read several times into its gradient.
    private func accumulate(_ blob: Int) throws {
        guard let accumulator = accumulators[blob] else { return }
        var args: [(Int32, Memory)] = [(DNNL_ARG_DST, diffs[blob]!)]
        for (i, part) in accumulator.parts.enumerated() { args.append((DNNL_ARG_MULTIPLE_SRC + Int32(i), part)) }
        try accumulator.sum.execute(args, context)
    }

    /// Allocates gradients and wires each node's gradient sinks (once).
    private func prepareBackward() throws {
        guard diffs.isEmpty else { return }
        let inputs = Set(graph.inputs)
        diffs = try graph.blobs.indices.map { id in
            (inputs.contains(id) && !options.gradientToInputs) || inPlace[id] != nil ? nil : try Memory(values[id].desc, context)
        }
        for (top, bottom) in inPlace { diffs[top] = diffs[bottom] }
        var edges: [Int: Int] = [:]
        for node in graph.nodes { for b in node.bottoms { edges[b, default: 0] += 1 } }
        var parts: [Int: [Memory]] = [:]
        for (index, node) in graph.nodes.enumerated() {
            let kernel = kernels[index]
            kernel.diffs = node.tops.map { diffs[$0]! }
            kernel.sinks = try node.bottoms.map { b in
                guard let diff = diffs[b] else { return nil }
                if edges[b] == 1 { return diff }
                let part = try Memory(values[b].desc, context)
                parts[b, default: []].append(part)
                return part
            }
        }
        for (blob, list) in parts {
            var dst = values[blob].desc
            let scales = [Float](repeating: 1, count: list.count)
            var pd: dnnl_primitive_desc_t?
            try list.map(\.desc).withUnsafeBufferPointer { sources in
                try check(dnnl_sum_primitive_desc_create(&pd, &dst, Int32(sources.count), scales, sources.baseAddress, context.attributes, context.engine),
                          "creating the gradient sum of blob \(graph.blobs[blob].label)")
            }
            accumulators[blob] = (list, try Primitive(pd: pd!, name: "gradient sum of \(graph.blobs[blob].label)", context))
        }
    }

    // MARK: helpers

    /// Whether a node may write its output over blob `id`: produced by a node (not an input
    /// or output of the graph), read by exactly one edge, and its buffer no other blob's.
    private static func mayOverwrite(_ id: Int, graph: Graph, values: [Memory?]) -> Bool {
        guard !graph.inputs.contains(id), !graph.outputs.contains(id), let buffer = values[id]?.dataPointer else { return false }
        let reads = graph.nodes.reduce(0) { $0 + $1.bottoms.filter { $0 == id }.count }
        return reads == 1 && values.indices.allSatisfy { $0 == id || values[$0]?.dataPointer != buffer }
    }

    /// OpenMP's thread count is a per-thread setting: apply ours on the calling thread.
    private func applyThreadCount() {
        if let threads = options.threads { setEngineThreadCount(threads) }
    }

    private func write(_ tensor: Tensor, into memory: Memory, blob id: Int) throws {
        guard tensor.shape == graph.blobs[id].shape else {
            throw EngineError.blobShape(blob: graph.blobs[id].label, expected: graph.blobs[id].shape, actual: tensor.shape)
        }
        try Engine.upload(tensor, into: memory, userDesc: nil, context: context, label: graph.blobs[id].label)
    }

    static func upload(_ tensor: Tensor, into memory: Memory, userDesc: dnnl_memory_desc_t?, context: DNNLContext, label: String) throws {
        let source = try userDesc ?? plainDesc(tensor.shape)
        if descEqual(source, memory.desc) {
            tensor.data.withUnsafeBufferPointer { memory.floats.update(from: $0.baseAddress!, count: $0.count) }
            return
        }
        // Read-only: the reorder only reads its source (no copy of the tensor's storage).
        try tensor.data.withUnsafeBytes { raw in
            let user = try Memory(wrapping: UnsafeMutableRawPointer(mutating: raw.baseAddress!), desc: source, context)
            try Reorder(from: source, to: memory.desc, context, "upload of \(label)").run(user, memory, context)
        }
    }

    static func download(_ memory: Memory, shape: [Int], userDesc: dnnl_memory_desc_t?, context: DNNLContext, label: String) throws -> Tensor {
        let target = try userDesc ?? plainDesc(shape)
        let count = shape.reduce(1, *)
        // Filled by a copy or a reorder that writes every element: no zero-fill first.
        var failure: Error?
        let data = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            do {
                try copyOut(memory, into: buffer.baseAddress!, count: count, as: target, context: context, label: label)
            } catch {
                failure = error
                buffer.baseAddress!.initialize(repeating: 0, count: count)
            }
            initialized = count
        }
        if let failure { throw failure }
        return Tensor(shape: shape, data: data)
    }

    /// Writes `memory`'s `count` values into `pointer` in layout `target`: a copy when the
    /// layouts agree, else a reorder.
    static func copyOut(_ memory: Memory, into pointer: UnsafeMutablePointer<Float>, count: Int, as target: dnnl_memory_desc_t,
                        context: DNNLContext, label: String) throws {
        if descEqual(target, memory.desc) {
            pointer.update(from: memory.floats, count: count)
        } else {
            let user = try Memory(wrapping: UnsafeMutableRawPointer(pointer), desc: target, context)
            try Reorder(from: memory.desc, to: target, context, "download of \(label)").run(memory, user, context)
        }
    }
}
