import Dispatch
import MagicInitCore

/// How a forward value that a backward pass reads is kept by ``Engine/saveForward(nodes:)``.
enum SavedEncoding: Sendable {
    /// One bit per float, set where the value is `> 0`; restored as `1` or `0`. Enough for
    /// ReLU (and leaky ReLU): its backward only asks whether its input is positive.
    case positivity
    /// The bytes as they are.
    case raw
}

/// What the backward-to-data pass of a range of nodes reads from their forward pass (ReLU
/// input signs, max-pooling argmax workspaces, LRN inputs, …), saved so that pass can run
/// again later without running the forward pass: Algorithm 2's first measurement reuses
/// Algorithm 1's single forward pass this way (docs/DESIGN.md §2). Weight gradients are not
/// covered (they need the affine layers' full inputs).
///
/// Size: 1 bit per ReLU input element, the workspace bytes of max pooling (1 byte per
/// output element for windows under 256), full floats for everything else.
public struct SavedForward: Sendable {
    enum Payload: Sendable {
        case bits([UInt64])
        case bytes([UInt8])
    }

    /// Slot in the engine's list of saved memories, and its content.
    var entries: [(slot: Int, payload: Payload)] = []

    /// Bytes held.
    public var byteCount: Int {
        entries.reduce(0) { total, entry in
            switch entry.payload {
            case .bits(let words): total + words.count * 8
            case .bytes(let bytes): total + bytes.count
            }
        }
    }
}

extension Engine {
    /// Saves what the backward-to-data pass of `nodes` reads from the values they hold now
    /// (after a forward pass over them).
    /// - Complexity: O(bytes of those values); bit packing runs on the engine's threads.
    public func saveForward(nodes: Range<Int>) -> SavedForward {
        var saved = SavedForward()
        var seen = Set<Int>()
        for node in nodes {
            for slot in savedSlots.perNode[node] where seen.insert(slot).inserted {
                let (memory, encoding) = savedSlots.memories[slot]
                switch encoding {
                case .raw:
                    let bytes = [UInt8](UnsafeRawBufferPointer(start: memory.dataPointer, count: memory.byteCount))
                    saved.entries.append((slot, .bytes(bytes)))
                case .positivity:
                    saved.entries.append((slot, .bits(Engine.packPositive(memory.floats, count: memory.byteCount / 4))))
                }
            }
        }
        return saved
    }

    /// Writes saved values back, so that ``backward(weights:)`` with `weights: false` over
    /// the nodes they were saved from computes what it would have right after that forward
    /// pass. Memories saved with positivity hold `1`/`0` afterwards, not their old values.
    public func restoreForward(_ saved: SavedForward) {
        restore([saved]) { slot, words in
            let memory = savedSlots.memories[slot].memory
            Engine.unpackPositive(words, into: memory.floats, count: memory.byteCount / 4)
        }
    }

    /// Writes the raw entries of `saved` (in order) back into their memories and hands each
    /// positivity entry to `positivity(slot, words)`.
    private func restore(_ saved: [SavedForward], positivity: (Int, [UInt64]) -> Void) {
        for one in saved {
            for (slot, payload) in one.entries {
                switch payload {
                case .bytes(let bytes):
                    let memory = savedSlots.memories[slot].memory
                    bytes.withUnsafeBytes { memory.dataPointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                case .bits(let words):
                    positivity(slot, words)
                }
            }
        }
    }

    /// Backward over a forward pass saved earlier: what ``restoreForward(_:)`` for each of
    /// `saved` (in order) followed by ``backward(weights:)`` computes, bit for bit, with one
    /// pass less per ReLU: a ReLU whose backward reads only the saved signs of its output
    /// takes them straight from the bits (`diff_src = bit ? diff_dst : diff_dst · 0`,
    /// oneDNN's arithmetic) instead of having them unpacked to floats for oneDNN's eltwise
    /// backward. Afterwards the memories saved with positivity hold unspecified values
    /// (restore again before another backward pass).
    /// - Parameter weights: also the weight gradients; the caller must first have written
    ///   every affine layer's input back into its blob (the saved values do not hold them).
    ///   A positivity memory that is also an affine layer's input is rewritten only when the
    ///   ReLU below that layer runs its backward, after the layer's own.
    public func backward(restoring saved: [SavedForward], weights: Bool = false) throws {
        // A slot's encoding is fixed, so a later entry for a slot replaces an earlier one.
        var held: [Int: [UInt64]] = [:]
        restore(saved) { slot, words in held[slot] = words }
        let readers = savedSlotReaders
        try backward(weights: weights) { index, kernel in
            let slots = savedSlots.perNode[index].filter { held[$0] != nil }
            if slots.count == 1, let slot = slots.first, readers[slot] == 1, let relu = kernel as? ActivationKernel,
               try relu.backward(positivity: held[slot]!, of: savedSlots.memories[slot].memory) {
                return true
            }
            for slot in slots {
                let memory = savedSlots.memories[slot].memory
                Engine.unpackPositive(held.removeValue(forKey: slot)!, into: memory.floats, count: memory.byteCount / 4)
            }
            return false
        }
    }

    /// How many nodes' backward passes read each saved slot.
    private var savedSlotReaders: [Int] {
        savedSlots.perNode.reduce(into: [Int](repeating: 0, count: savedSlots.memories.count)) { counts, slots in
            for slot in Set(slots) { counts[slot] += 1 }
        }
    }

    /// `out[i] = diff[i]` where bit `i` of `words` is set, `diff[i] · 0` elsewhere (so a
    /// negative gradient gives −0, as oneDNN's ReLU backward computes `diff · 0`).
    static func maskPositive(_ words: [UInt64], diff: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        nonisolated(unsafe) let out = out, diff = diff
        forEachBit(of: words, count: count) { i, bits in
            // All-ones or all-zeros lane masks, then a bitwise select (integer lanes: the
            // compiler keeps these in vector registers; a float select came out scalar).
            let mask = SIMD16<UInt32>(repeating: 0) &- bits
            let d = UnsafeRawPointer(diff + i).loadUnaligned(as: SIMD16<Float>.self)
            let kept = unsafeBitCast(d, to: SIMD16<UInt32>.self), zeroed = unsafeBitCast(d * 0, to: SIMD16<UInt32>.self)
            UnsafeMutableRawPointer(out + i).storeBytes(of: (kept & mask) | (zeroed & ~mask), as: SIMD16<UInt32>.self)
        } element: { j, set in
            out[j] = set ? diff[j] : diff[j] * 0
        }
    }

    /// Calls `lanes(i, bits)` for each run of 16 of the `count` elements whose bits `words`
    /// hold (lane `b` of `bits` is 1 when bit `i + b` is set, else 0), and `element(j, set)`
    /// for the elements after the last whole word. Blocks of ``packBlock`` elements run in
    /// parallel.
    @inline(__always)
    private static func forEachBit(of words: [UInt64], count: Int, lanes: @Sendable (Int, SIMD16<UInt32>) -> Void, element: @Sendable (Int, Bool) -> Void) {
        words.withUnsafeBufferPointer { w in
            nonisolated(unsafe) let w = w
            let blocks = (count + packBlock - 1) / packBlock
            DispatchQueue.concurrentPerform(iterations: blocks) { block in
                let start = block * packBlock, end = min(count, start + packBlock)
                let shifts = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
                var i = start
                while i + 64 <= end {
                    let word = w[i / 64]
                    for quarter in 0..<4 {
                        let group = SIMD16<UInt32>(repeating: UInt32(truncatingIfNeeded: word >> UInt64(quarter * 16)))
                        lanes(i + quarter * 16, (group &>> shifts) & 1)
                    }
                    i += 64
                }
                if i < end {
                    let word = w[i / 64]
                    for j in i..<end { element(j, (word >> UInt64(j - i)) & 1 == 1) }
                }
            }
        }
    }

    /// Elements per parallel block of the bit packing (a multiple of 64).
    private static let packBlock = 1 << 20

    /// Bit `i` of the result is set when `values[i] > 0` (NaN counts as not positive).
    static func packPositive(_ values: UnsafePointer<Float>, count: Int) -> [UInt64] {
        let wordCount = (count + 63) / 64
        return [UInt64](unsafeUninitializedCapacity: wordCount) { words, initialized in
            let base = words.baseAddress!
            nonisolated(unsafe) let out = base
            nonisolated(unsafe) let values = values
            let blocks = (count + packBlock - 1) / packBlock
            DispatchQueue.concurrentPerform(iterations: blocks) { block in
                let start = block * packBlock, end = min(count, start + packBlock)
                var i = start
                let lanes = SIMD16<UInt32>(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
                while i + 64 <= end {
                    var word: UInt64 = 0
                    for quarter in 0..<4 {
                        let v = UnsafeRawPointer(values + i + quarter * 16).loadUnaligned(as: SIMD16<Float>.self)
                        let bits = SIMD16<UInt32>(repeating: 0).replacing(with: lanes, where: v .> 0).wrappedSum()
                        word |= UInt64(bits) << (quarter * 16)
                    }
                    (out + i / 64).initialize(to: word)
                    i += 64
                }
                if i < end {
                    var word: UInt64 = 0
                    for j in i..<end where values[j] > 0 { word |= 1 << UInt64(j - i) }
                    (out + i / 64).initialize(to: word)
                }
            }
            initialized = wordCount
        }
    }

    /// Writes `1` where bit `i` of `words` is set and `0` elsewhere.
    static func unpackPositive(_ words: [UInt64], into values: UnsafeMutablePointer<Float>, count: Int) {
        nonisolated(unsafe) let out = values
        let one = SIMD16<UInt32>(repeating: Float(1).bitPattern)
        forEachBit(of: words, count: count) { i, bits in
            // 1 becomes 1.0f's bits.
            UnsafeMutableRawPointer(out + i).storeBytes(of: bits &* one, as: SIMD16<UInt32>.self)
        } element: { j, set in
            out[j] = set ? 1 : 0
        }
    }
}
