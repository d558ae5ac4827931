extension ChunkCollector {
    /// A collector's switches, fixed when it is made.
    public struct Options: Sendable {
        /// Threads to compute on (`nil`: every core). With two or more, two engines of
        /// `threads / 2` oneDNN threads each work on different chunks at once, so the
        /// single-threaded parts (inner products, kept on one thread for determinism, see
        /// `AffineKernel`; the statistics between layers) no longer leave a core idle:
        /// `scripts/bench-init` with one 2-thread worker went from 97.9 s to 89.9 s. Each
        /// engine holds its own activations and weights (VGG-16 at chunk size 4: about
        /// 1.4 GB more peak memory).
        public var threads: Int?
        /// Weights of at least this many bytes that oneDNN keeps in the Caffe layout are
        /// held only in the engine (see `WeightReplica`); the default keeps VGG-16's and
        /// CaffeNet's `fc6.weight` (411 MB and 151 MB) there.
        public var engineResidentBytes = 16 << 20
        /// Weight keys the engines keep in the Caffe layout whatever oneDNN would choose on
        /// this CPU (`Engine.Options.plainWeights`); such a weight of at least
        /// ``engineResidentBytes`` is engine-resident on every CPU.
        public var plainWeights: Set<String> = []
        /// Whether Algorithm 1 keeps every affine layer's input `x_k` per chunk, so that
        /// Algorithm 2's first measurement with weight gradients also needs only the backward
        /// pass (backward to the data and to the weights) instead of a second forward pass.
        /// Costs the memory of every affine input over every image held (VGG-16: about 23 MB
        /// per image; the inputs a cheap first layer rebuilds from the images are not kept).
        public var keepsAffineInputs = false
        /// ReLUs write over their inputs (`Engine.Options.inPlaceActivations`). Off only in
        /// tests that compare the two ways bit for bit.
        public var inPlaceActivations = true
        /// Whether Algorithm 1 caches an affine output after the max pooling that follows
        /// its ReLU (``Algorithm1CachePlan/pooled``). Off only in tests that compare with
        /// the full cache bit for bit.
        public var cachesAfterPooling = true
        /// Whether Algorithm 1 runs a cheap first convolution again from the images instead
        /// of caching its output (``Algorithm1CachePlan/recomputedFromInput``). Off only in
        /// tests that compare with the full cache.
        public var recomputesFirstLayer = true
        /// Whether restoring a cached output folds a following ReLU into Algorithm 1's map
        /// (one pass instead of two). Off only in tests that compare the two ways bit for bit.
        public var fusesReLU = true

        public init(threads: Int? = nil, keepsAffineInputs: Bool = false) {
            self.threads = threads
            self.keepsAffineInputs = keepsAffineInputs
        }
    }
}
