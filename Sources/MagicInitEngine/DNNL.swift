import CDNNL
import Foundation

/// Errors of the engine boundary. Each names the layer or blob involved.
public enum EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A oneDNN call failed; `context` says what was being built or run.
    case dnnl(status: Int, context: String)
    case unknownParameter(String)
    case parameterShape(key: String, expected: [Int], actual: [Int])
    case missingParameter(String)
    case blobShape(blob: String, expected: [Int], actual: [Int])
    case inputCount(expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .dnnl(let status, let context): "oneDNN error \(status) (\(EngineError.statusName(status))) while \(context)"
        case .unknownParameter(let key): "no parameter '\(key)' in this network"
        case .parameterShape(let key, let expected, let actual):
            "parameter '\(key)': expected shape \(describeShapeE(expected)), got \(describeShapeE(actual))"
        case .missingParameter(let key): "parameter '\(key)' was never set"
        case .blobShape(let blob, let expected, let actual):
            "blob '\(blob)': expected shape \(describeShapeE(expected)), got \(describeShapeE(actual))"
        case .inputCount(let expected, let actual): "the network has \(expected) input blob(s), got \(actual)"
        }
    }

    static func statusName(_ status: Int) -> String {
        switch status {
        case 1: "out of memory"
        case 2: "invalid arguments"
        case 3: "unimplemented"
        case 4: "iterator ends"
        case 5: "runtime error"
        case 6: "not required"
        default: "unknown status"
        }
    }
}

private func describeShapeE(_ shape: [Int]) -> String {
    "(" + shape.map(String.init).joined(separator: ", ") + ")"
}

/// Throws ``EngineError/dnnl(status:context:)`` unless `status` is `dnnl_success`.
@inline(__always)
func check(_ status: dnnl_status_t, _ context: @autoclosure () -> String) throws {
    if status != dnnl_success { throw EngineError.dnnl(status: Int(status.rawValue), context: context()) }
}

/// Calls `body` with a `dnnl_dims_t`-compatible pointer to `dims`.
func withDims<R>(_ dims: [Int], _ body: (UnsafePointer<Int64>) throws -> R) rethrows -> R {
    var padded = dims.map(Int64.init)
    while padded.count < Int(DNNL_MAX_NDIMS) { padded.append(0) }
    return try padded.withUnsafeBufferPointer { try body($0.baseAddress!) }
}

/// A memory descriptor for float32 data of `dims` in layout `tag` (`dnnl_format_tag_any`
/// lets the consuming primitive choose).
func memoryDesc(_ dims: [Int], _ tag: dnnl_format_tag_t) throws -> dnnl_memory_desc_t {
    var md = dnnl_memory_desc_t()
    try withDims(dims) { try check(dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), $0, dnnl_f32, tag), "describing \(dims)") }
    return md
}

/// The plain row-major tag for `rank` dimensions (`a`, `ab`, `abc`, `abcd`, `abcde`).
func plainTag(rank: Int) -> dnnl_format_tag_t {
    switch rank {
    case 1: dnnl_a
    case 2: dnnl_ab
    case 3: dnnl_abc
    case 4: dnnl_abcd
    case 5: dnnl_abcde
    default: dnnl_abcdef
    }
}

/// A plain row-major descriptor of `dims`.
func plainDesc(_ dims: [Int]) throws -> dnnl_memory_desc_t { try memoryDesc(dims, plainTag(rank: dims.count)) }

func descEqual(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
    var a = a, b = b
    return dnnl_memory_desc_equal(&a, &b) != 0
}

func descBytes(_ md: dnnl_memory_desc_t) -> Int {
    var md = md
    return dnnl_memory_desc_get_size(&md)
}

/// The oneDNN CPU engine and its in-order stream.
///
/// `@unchecked Sendable`: the handles are immutable after creation and oneDNN engines may
/// be shared; streams are only used by the one ``Engine`` that owns this context.
final class DNNLContext: @unchecked Sendable {
    let engine: dnnl_engine_t
    let stream: dnnl_stream_t
    /// Primitive attributes with a user-managed scratchpad: each primitive gets its own
    /// scratch buffer, so engines in one process may run concurrently (the library-managed
    /// scratchpad is shared between primitives).
    let attributes: dnnl_primitive_attr_t
    /// Whether large buffers are faulted in when mapped (see ``Memory/map(_:prefault:for:)``).
    let prefault: Bool

    init(prefault: Bool = true) throws {
        self.prefault = prefault
        var engine: dnnl_engine_t?
        try check(dnnl_engine_create(&engine, dnnl_cpu, 0), "creating the CPU engine")
        var stream: dnnl_stream_t?
        try check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "creating a stream")
        var attributes: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attributes), "creating primitive attributes")
        try check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "setting the scratchpad mode")
        self.engine = engine!
        self.stream = stream!
        self.attributes = attributes!
    }

    deinit {
        dnnl_primitive_attr_destroy(attributes)
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }
}

/// A oneDNN memory object that owns its buffer (allocated by oneDNN, 64-byte aligned), or
/// a view sharing another memory's buffer with a different descriptor.
final class Memory {
    let handle: dnnl_memory_t
    let desc: dnnl_memory_desc_t
    /// Keeps the owner of a shared buffer alive.
    private let owner: Memory?

    init(_ desc: dnnl_memory_desc_t, _ context: DNNLContext) throws {
        let bytes = descBytes(desc)
        guard bytes > 0 else { throw EngineError.dnnl(status: 2, context: "allocating an empty memory descriptor") }
        var md = desc
        var memory: dnnl_memory_t?
        if bytes >= Memory.mappedThreshold {
            // Large buffers (activations, weights): zero pages, mapped directly (no zero-fill),
            // faulted in by the same call when the context says so.
            let region = try Memory.map(bytes, prefault: context.prefault, for: "a oneDNN buffer")
            do {
                try check(dnnl_memory_create(&memory, &md, context.engine, region), "wrapping \(bytes) mapped bytes")
            } catch {
                munmap(region, bytes)
                throw error
            }
            mapped = (region, bytes)
        } else {
            try check(dnnl_memory_create(&memory, &md, context.engine, mi_dnnl_memory_allocate()), "allocating \(bytes) bytes")
        }
        handle = memory!
        self.desc = desc
        owner = nil
        // Zero-fill: padded blocked layouts must hold zeros in their padding (mapped pages
        // already do).
        if mapped == nil { memset(dataPointer, 0, bytes) }
    }

    /// Buffers at least this large are mapped directly (see ``init(_:_:)``).
    static let mappedThreshold = 1 << 20

    /// `bytes` of zero pages, mapped directly; release with `munmap`.
    ///
    /// Mappings of 2 MiB or more start on a 2 MiB boundary and ask for transparent huge
    /// pages (`MADV_HUGEPAGE`; this kernel's default is `madvise`): one fault per 2 MiB
    /// instead of per 4 KiB, and fewer TLB misses in the kernels that stream activations and
    /// VGG-16's 411 MB `fc6` weights. Interleaved runs of `scripts/bench-init`'s command: 2.9 s
    /// faster on average (8 of 8 pairs), same output bits.
    ///
    /// With `prefault` they are faulted in by the same call (`MAP_POPULATE`, or
    /// `MADV_POPULATE_WRITE` for huge pages): on one thread that costs about half as much as
    /// faulting them in a page at a time on first write. But the kernel holds the process's
    /// address-space lock while it populates, so two threads that map memory at once (two
    /// engines of one collector) wait for each other; without `prefault` each faults its own
    /// pages in on first write, concurrently.
    /// - Throws: ``EngineError/dnnl(status:context:)`` naming `purpose` when mapping fails.
    static func map(_ bytes: Int, prefault: Bool, for purpose: String) throws -> UnsafeMutableRawPointer {
        let huge = 2 << 20
        let aligning = bytes >= huge
        // For alignment, a huge page more than asked; the slack on either side is unmapped.
        let total = aligning ? bytes + huge : bytes
        let flags = MAP_PRIVATE | MAP_ANONYMOUS | (prefault && !aligning ? MAP_POPULATE : 0)
        guard let raw = mmap(nil, total, PROT_READ | PROT_WRITE, flags, -1, 0), raw != MAP_FAILED else {
            throw EngineError.dnnl(status: 1, context: "mapping \(bytes) bytes for \(purpose): \(String(cString: strerror(errno)))")
        }
        guard aligning else { return raw }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = Int(bitPattern: raw), aligned = (start + huge - 1) & ~(huge - 1)
        let end = (aligned + bytes + page - 1) & ~(page - 1)
        if aligned > start { munmap(raw, aligned - start) }
        if start + total > end { munmap(UnsafeMutableRawPointer(bitPattern: end), start + total - end) }
        let region = UnsafeMutableRawPointer(bitPattern: aligned)!
        // Advice only: without huge pages (or on kernels before 5.14 for the populate), the
        // memory is the same, faulted in 4 KiB at a time.
        _ = madvise(region, bytes, MADV_HUGEPAGE)
        if prefault { _ = madvise(region, bytes, 23 /* MADV_POPULATE_WRITE, Linux 5.14 */) }
        return region
    }
    /// The mapping this memory owns, unmapped with it.
    private var mapped: (pointer: UnsafeMutableRawPointer, bytes: Int)?

    /// A view of `base`'s buffer described by `desc` (same byte size or smaller).
    init(viewing base: Memory, as desc: dnnl_memory_desc_t, _ context: DNNLContext) throws {
        var md = desc
        var memory: dnnl_memory_t?
        try check(dnnl_memory_create(&memory, &md, context.engine, base.dataPointer), "creating a view")
        handle = memory!
        self.desc = desc
        owner = base
    }

    /// Wraps a caller-owned buffer (valid only while the caller keeps it alive).
    init(wrapping pointer: UnsafeMutableRawPointer, desc: dnnl_memory_desc_t, _ context: DNNLContext) throws {
        var md = desc
        var memory: dnnl_memory_t?
        try check(dnnl_memory_create(&memory, &md, context.engine, pointer), "wrapping a user buffer")
        handle = memory!
        self.desc = desc
        owner = nil
    }

    /// `base`'s buffer, same layout, for use by another engine's primitives (`context`);
    /// keeps `base` alive.
    init(sharing base: Memory, _ context: DNNLContext) throws {
        var md = base.desc
        var memory: dnnl_memory_t?
        try check(dnnl_memory_create(&memory, &md, context.engine, base.dataPointer), "sharing a buffer between engines")
        handle = memory!
        desc = base.desc
        owner = base
    }

    deinit {
        dnnl_memory_destroy(handle)
        if let mapped { munmap(mapped.pointer, mapped.bytes) }
    }

    var dataPointer: UnsafeMutableRawPointer {
        var pointer: UnsafeMutableRawPointer?
        dnnl_memory_get_data_handle(handle, &pointer)
        return pointer!
    }

    var floats: UnsafeMutablePointer<Float> { dataPointer.assumingMemoryBound(to: Float.self) }

    /// Writes `values` at the start of a plain-layout buffer.
    func write(_ values: [Float]) {
        precondition(values.count * 4 <= byteCount, "writing \(values.count) floats into \(byteCount) bytes")
        values.withUnsafeBufferPointer { floats.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// The first `count` floats of a plain-layout buffer.
    func read(_ count: Int) -> [Float] { Array(UnsafeBufferPointer(start: floats, count: count)) }
    var byteCount: Int { descBytes(desc) }
}

/// A primitive descriptor plus its primitive.
final class Primitive {
    let pd: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    let name: String

    /// Creates the primitive from an initialised op descriptor (`opDesc` points at a
    /// `dnnl_*_desc_t`).
    convenience init(opDesc: UnsafeRawPointer, hint: Primitive?, _ context: DNNLContext, _ name: String) throws {
        var pd: dnnl_primitive_desc_t?
        try check(dnnl_primitive_desc_create(&pd, opDesc, context.attributes, context.engine, hint?.pd), "creating \(name)")
        try self.init(pd: pd!, name: name, context)
    }

    /// The primitive's own scratch buffer (user scratchpad mode), if it needs one.
    private var scratchpad: Memory?

    init(pd: dnnl_primitive_desc_t, name: String, _ context: DNNLContext) throws {
        var primitive: dnnl_primitive_t?
        let status = dnnl_primitive_create(&primitive, pd)
        if status != dnnl_success {
            dnnl_primitive_desc_destroy(pd)
            throw EngineError.dnnl(status: Int(status.rawValue), context: "creating \(name)")
        }
        self.pd = pd
        self.primitive = primitive!
        self.name = name
        let scratch = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).pointee
        scratchpad = descBytes(scratch) > 0 ? try Memory(scratch, context) : nil
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(pd)
    }

    /// The descriptor the primitive chose for `query` (e.g. `dnnl_query_src_md`).
    func md(_ query: dnnl_query_t, _ index: Int32 = 0) -> dnnl_memory_desc_t {
        dnnl_primitive_desc_query_md(pd, query, index).pointee
    }

    /// The implementation oneDNN picked (e.g. `jit:avx512_core`), for benchmarks.
    var implementation: String {
        var name: UnsafePointer<CChar>?
        withUnsafeMutablePointer(to: &name) { pointer in
            _ = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, pointer)
        }
        return name.map { String(cString: $0) } ?? "?"
    }

    /// Runs the primitive on `args` (`DNNL_ARG_*` → memory) and waits for it.
    func execute(_ args: [(Int32, Memory)], _ context: DNNLContext) throws {
        var list = args.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.handle) }
        if let scratchpad { list.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: scratchpad.handle)) }
        try list.withUnsafeBufferPointer {
            try check(dnnl_primitive_execute(primitive, context.stream, Int32($0.count), $0.baseAddress), "running \(name)")
        }
        try check(dnnl_stream_wait(context.stream), "waiting for \(name)")
    }
}

/// Copies between two layouts of the same logical tensor.
final class Reorder {
    let primitive: Primitive
    init(from src: dnnl_memory_desc_t, to dst: dnnl_memory_desc_t, _ context: DNNLContext, _ name: String) throws {
        var s = src, d = dst
        var pd: dnnl_primitive_desc_t?
        try check(dnnl_reorder_primitive_desc_create(&pd, &s, context.engine, &d, context.engine, context.attributes), "creating reorder for \(name)")
        primitive = try Primitive(pd: pd!, name: "reorder for \(name)", context)
    }

    func run(_ src: Memory, _ dst: Memory, _ context: DNNLContext) throws {
        try primitive.execute([(DNNL_ARG_FROM, src), (DNNL_ARG_TO, dst)], context)
    }
}

/// Sets the number of OpenMP threads oneDNN uses (process-wide).
public func setEngineThreadCount(_ threads: Int) {
    omp_set_num_threads(Int32(max(1, threads)))
}

/// The number of OpenMP threads oneDNN will use.
public func engineThreadCount() -> Int { Int(omp_get_max_threads()) }
