import Dispatch
import MagicInitEngine
import Synchronization

/// Spreads per-chunk work over a collector's engines.
enum ChunkScheduler {
    /// `body(chunk, engine)` for every chunk of `list`, the engines working in parallel
    /// (each on one chunk at a time, chunks taken in list order); results in list order.
    /// `chunkDone` is called once per chunk as it finishes, one call at a time. The first
    /// error thrown stops the remaining chunks and is rethrown; so does a cancellation
    /// (``Engine/Options/cancellation``), checked before each chunk as before each primitive.
    ///
    /// A chunk's result depends only on the chunk and the engine's state as `body` leaves
    /// it, never on which engine or thread ran it (the engines are built alike).
    static func forEach<T>(_ list: [Chunk], on engines: [Engine], chunkDone: (Chunk) -> Void,
                           _ body: (Chunk, Engine) throws -> T) throws -> [T] {
        if engines.count == 1 || list.count <= 1 {
            return try list.map { chunk in
                try engines[0].options.cancellation.check()
                let result = try body(chunk, engines[0])
                chunkDone(chunk)
                return result
            }
        }
        let shared = Mutex<(next: Int, failure: Error?)>((0, nil))
        // One slot per chunk, each written by the one thread that computed it.
        let slots = UnsafeMutableBufferPointer<T?>.allocate(capacity: list.count)
        slots.initialize(repeating: nil)
        defer { slots.deinitialize().deallocate() }
        nonisolated(unsafe) let body = body, chunkDone = chunkDone, engines = engines, output = slots
        DispatchQueue.concurrentPerform(iterations: engines.count) { lane in
            while true {
                let index: Int? = shared.withLock { state in
                    guard state.failure == nil, state.next < list.count else { return nil }
                    defer { state.next += 1 }
                    return state.next
                }
                guard let index else { return }
                do {
                    try engines[lane].options.cancellation.check()
                    output[index] = try body(list[index], engines[lane])
                    shared.withLock { _ in chunkDone(list[index]) }
                } catch {
                    shared.withLock { state in if state.failure == nil { state.failure = error } }
                }
            }
        }
        if let failure = shared.withLock({ $0.failure }) { throw failure }
        return slots.map { $0! }
    }
}
