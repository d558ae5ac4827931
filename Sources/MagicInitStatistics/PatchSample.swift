import MagicInitCore

/// A deterministic uniform sample of k patches without replacement, mergeable in any order:
/// bottom-k sampling. Patch g (its global index: image index × patches per image + position)
/// gets the key `Philox(seed, stream).block(g)` (first two words, 64 bits); the sample holds
/// the k patches of smallest (key, g). The merge of two samples keeps the k smallest of their
/// union, so the result depends only on the set of patches offered, never on how they were cut
/// into chunks or in which order the parts were merged.
///
/// Used for the §3.3 random-patch filters (Krähenbühl et al. 2016, §3.3, the reference's
/// `rand`) and to re-seed empty k-means clusters (Coates & Ng 2012, §3).
public struct PatchSample: Sendable, Equatable {
    /// Patch dimension (r for whitened patches).
    public let dimension: Int
    /// Most patches kept, k.
    public let capacity: Int
    /// The generator whose block of a patch index is that patch's key.
    public let sampler: Philox
    /// Keys of the kept patches, ascending by (key, index).
    public private(set) var keys: [UInt64] = []
    /// Global indices of the kept patches, in the same order.
    public private(set) var indices: [Int64] = []
    /// Kept patches, `(keys.count, dimension)` row-major, in the same order.
    public private(set) var values: [Double] = []

    /// An empty sample: the identity of ``merge(_:)``.
    public init(dimension: Int, capacity: Int, sampler: Philox) {
        precondition(dimension >= 0 && capacity >= 0, "negative dimension \(dimension) or capacity \(capacity)")
        self.dimension = dimension
        self.capacity = capacity
        self.sampler = sampler
    }

    /// Number of patches kept, `≤ capacity`.
    public var count: Int { keys.count }

    /// The key of patch `index`.
    public func key(of index: Int64) -> UInt64 {
        let (a, b, _, _) = sampler.block(UInt64(bitPattern: index))
        return UInt64(a) << 32 | UInt64(b)
    }

    /// Offers patch `index` with its values `(dimension)`; kept when among the k smallest.
    /// - Complexity: O(k + dimension) when kept, O(1) otherwise.
    public mutating func offer(index: Int64, patch: UnsafeBufferPointer<Double>) {
        precondition(patch.count == dimension, "a \(dimension)-dimensional sample offered \(patch.count) values")
        guard capacity > 0 else { return }
        let key = key(of: index)
        if count == capacity, let lastKey = keys.last, !Self.precedes(key, index, lastKey, indices[count - 1]) { return }
        var at = count
        while at > 0, Self.precedes(key, index, keys[at - 1], indices[at - 1]) { at -= 1 }
        keys.insert(key, at: at)
        indices.insert(index, at: at)
        values.insert(contentsOf: patch, at: at * dimension)
        if count > capacity {
            keys.removeLast()
            indices.removeLast()
            values.removeLast(dimension)
        }
    }

    /// Merges `other` (the same dimension, capacity and sampler) into `self`: the k smallest
    /// of the union. Commutative and associative, bit for bit.
    /// - Complexity: O((k₁ + k₂) · dimension).
    public mutating func merge(_ other: PatchSample) {
        precondition(other.dimension == dimension && other.capacity == capacity && other.sampler == sampler,
                     "merging samples of different dimension, capacity or generator")
        var merged = PatchSample(dimension: dimension, capacity: capacity, sampler: sampler)
        var i = 0, j = 0
        while merged.count < capacity, i < count || j < other.count {
            let takeSelf = j == other.count
                || (i < count && Self.precedes(keys[i], indices[i], other.keys[j], other.indices[j]))
            if takeSelf {
                merged.append(keys[i], indices[i], values[(i * dimension)..<((i + 1) * dimension)])
                i += 1
            } else {
                if i < count && indices[i] == other.indices[j] { i += 1 }  // the same patch offered twice
                merged.append(other.keys[j], other.indices[j], other.values[(j * dimension)..<((j + 1) * dimension)])
                j += 1
            }
        }
        self = merged
    }

    private mutating func append(_ key: UInt64, _ index: Int64, _ patch: ArraySlice<Double>) {
        keys.append(key)
        indices.append(index)
        values.append(contentsOf: patch)
    }

    private static func precedes(_ keyA: UInt64, _ indexA: Int64, _ keyB: UInt64, _ indexB: Int64) -> Bool {
        keyA != keyB ? keyA < keyB : indexA < indexB
    }
}
