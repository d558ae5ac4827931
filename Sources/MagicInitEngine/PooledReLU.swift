import CDNNL
import Dispatch
import MagicInitCore

// Algorithm 1 can keep a chunk's cache after max pooling instead of before it: for an affine
// output `z` read only by an in-place ReLU whose output only a max pooling reads,
// `pool(relu(a·z + b)) = relu(a·pool(z) + b)` bit for bit whenever every `a ≥ 0` (Float32
// rounding of `a·z + b` and `max(·, 0)` never reverse an order, and max pooling returns one
// of its inputs). The cache is then a quarter of `z` (2×2 windows). What the backward pass
// reads is rebuilt from the pooled values: the argmax workspace comes from pooling `z`, and
// the ReLU's positivity bits from that workspace and the pooled values (below).

extension Engine {
    /// Whether node `relu` (a ReLU with slope 0 run in place over its bottom) and node
    /// `pool` (max pooling of the ReLU's output, with an argmax workspace stored in the
    /// layout of its output) can be cached after the pooling (see ``positivity(ofReLU:pooledBy:workspace:)``).
    public func supportsPooledReLU(relu: Int, pool: Int) -> Bool { pooledReLU(relu: relu, pool: pool) != nil }

    /// For a supported pair (see ``supportsPooledReLU(relu:pool:)``): the pooling kernel and
    /// the layouts of the ReLU's values and of the pooling's output.
    private func pooledReLU(relu: Int, pool: Int) -> (kernel: PoolingKernel, src: ChannelBlockedLayout, dst: ChannelBlockedLayout)? {
        guard relu >= 0, relu < graph.nodes.count, pool >= 0, pool < graph.nodes.count,
              case .relu(let slope) = graph.nodes[relu].kind, slope == 0,
              let reluKernel = kernels[relu] as? ActivationKernel, reluKernel.tops[0] === reluKernel.bottoms[0],
              let kernel = kernels[pool] as? PoolingKernel, kernel.algorithm == dnnl_pooling_max, let workspace = kernel.workspace,
              graph.nodes[pool].bottoms == [graph.nodes[relu].tops[0]],
              savedSlots.perNode[relu].count == 1, savedSlots.memories[savedSlots.perNode[relu][0]].encoding == .positivity,
              savedSlots.perNode[pool].count == 1,
              let src = channelBlockedLayout(of: values[graph.nodes[relu].tops[0]], blob: graph.nodes[relu].tops[0]),
              let dst = channelBlockedLayout(of: kernel.tops[0], blob: graph.nodes[pool].tops[0]), src.block == dst.block,
              Engine.sameBlocking(workspace.desc, kernel.tops[0].desc, bytes: 1) else { return nil }
        return (kernel, src, dst)
    }

    /// The saved forward value of in-place ReLU `relu` (what ``saveForward(nodes:)`` would
    /// have kept after it ran), rebuilt after max pooling `pool` of the raw input: bit `i`
    /// is set where input element `i` is the argmax of a window (from `workspace`, saved from
    /// `pool` run over the ReLU's input) whose pooled value, now restored into `pool`'s output
    /// as `relu(a·max + b)`, is positive. Every other bit is clear. The backward pass reads
    /// the ReLU's bits only where the pooling's backward put a gradient, that is at argmax
    /// positions, so it computes what the uncached pass computes there; elsewhere both give
    /// `+0`. (A window whose elements tie after `a·z + b` keeps the argmax of `z`.)
    /// - Throws: ``EngineError/missingParameter(_:)`` when `workspace` holds no workspace
    ///   of `pool`, or the pair is not supported (see ``supportsPooledReLU(relu:pool:)``).
    public func positivity(ofReLU relu: Int, pooledBy pool: Int, workspace: SavedForward) throws -> SavedForward {
        guard let (kernel, src, dst) = pooledReLU(relu: relu, pool: pool) else {
            throw EngineError.missingParameter("pooled cache for \(graph.nodes[relu].name) and \(graph.nodes[pool].name)")
        }
        let wsSlot = savedSlots.perNode[pool][0], bitSlot = savedSlots.perNode[relu][0]
        guard let entry = workspace.entries.last(where: { $0.slot == wsSlot }), case .bytes(let argmax) = entry.payload,
              argmax.count == kernel.workspace?.byteCount else {
            throw EngineError.missingParameter("argmax workspace of \(graph.nodes[pool].name)")
        }
        let input = graph.nodes[relu].tops[0], output = graph.nodes[pool].tops[0]
        let inShape = graph.blobs[input].shape, outShape = graph.blobs[output].shape
        let (inH, inW) = (inShape[2], inShape.count > 3 ? inShape[3] : 1)
        let (outH, outW) = (outShape[2], outShape.count > 3 ? outShape[3] : 1)
        let g = kernel.geometry
        let kernelW = g.kernel[1], strideH = g.strides[0], strideW = g.strides[1], padT = g.padL[0], padL = g.padL[1]
        let count = savedSlots.memories[bitSlot].memory.byteCount / 4
        let wordCount = (count + 63) / 64
        let pooled = UnsafePointer(kernel.tops[0].floats)
        // Images own disjoint words when an image's stride is a whole number of words;
        // otherwise one pass over all of them.
        let perImage = src.imageStride % 64 == 0
        // Per kernel index of the workspace (row-major in the window): its row and column in
        // the window, and its offset from the window's first element in the input layout.
        let kernelH = g.kernel[0], taps = kernelH * kernelW
        let tapRows = (0..<taps).map { $0 / kernelW }, tapColumns = (0..<taps).map { $0 % kernelW }
        let tapOffsets = (0..<taps).map { (tapRows[$0] * inW + tapColumns[$0]) * src.block }
        let block = dst.block, blocks = (dst.channels + block - 1) / block
        let words = [UInt64](unsafeUninitializedCapacity: wordCount) { buffer, initialized in
            buffer.initialize(repeating: 0)
            initialized = wordCount
            nonisolated(unsafe) let bits = buffer.baseAddress!
            nonisolated(unsafe) let pooled = pooled
            argmax.withUnsafeBufferPointer { ws in
                nonisolated(unsafe) let ws = ws.baseAddress!
                let images = { @Sendable (range: Range<Int>) in
                    tapOffsets.withUnsafeBufferPointer { offsets in
                        for n in range {
                            for cb in 0..<blocks {
                                let lanes = min(block, dst.channels - cb * block)
                                let dBlock = n * dst.imageStride + cb * dst.blockStride
                                let sBlock = n * src.imageStride + cb * src.blockStride
                                for oh in 0..<outH {
                                    let h0 = oh * strideH - padT
                                    for ow in 0..<outW {
                                        let w0 = ow * strideW - padL
                                        let d = dBlock + (oh * outW + ow) * block
                                        let origin = sBlock + (h0 * inW + w0) * src.block
                                        let inside = h0 >= 0 && h0 + kernelH <= inH && w0 >= 0 && w0 + kernelW <= inW
                                        for lane in 0..<lanes {
                                            // Branch-free on the sign (about half the windows are positive).
                                            let positive: UInt64 = pooled[d + lane] > 0 ? 1 : 0
                                            let k = Int(ws[d + lane])
                                            precondition(k < taps, "argmax workspace index \(k) outside a window of \(taps)")
                                            if !inside {
                                                // Max pooling never picks padding; a border window is checked anyway.
                                                let ih = h0 + tapRows[k], iw = w0 + tapColumns[k]
                                                guard ih >= 0, ih < inH, iw >= 0, iw < inW else { continue }
                                            }
                                            let i = origin + offsets[k] + lane
                                            bits[i >> 6] |= positive << UInt64(i & 63)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                if perImage {
                    DispatchQueue.concurrentPerform(iterations: dst.images) { images($0..<($0 + 1)) }
                } else {
                    images(0..<dst.images)
                }
            }
        }
        var saved = SavedForward()
        saved.entries.append((bitSlot, .bits(words)))
        return saved
    }

    /// Whether `a` (elements of `bytes` bytes) and `b` (float32) have the same dims and the
    /// same blocking, element for element.
    static func sameBlocking(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t, bytes: Int) -> Bool {
        guard a.format_kind == dnnl_blocked, b.format_kind == dnnl_blocked, a.ndims == b.ndims, a.offset0 == 0, b.offset0 == 0,
              descBytes(a) * 4 == descBytes(b) * bytes else { return false }
        let n = Int(a.ndims)
        func dims(_ t: dnnl_dims_t) -> [Int64] { withUnsafeBytes(of: t) { Array($0.bindMemory(to: Int64.self).prefix(n)) } }
        let (x, y) = (a.format_desc.blocking, b.format_desc.blocking)
        guard dims(a.dims) == dims(b.dims), dims(a.padded_dims) == dims(b.padded_dims), dims(x.strides) == dims(y.strides),
              x.inner_nblks == y.inner_nblks else { return false }
        return dims(x.inner_blks).prefix(Int(x.inner_nblks)) == dims(y.inner_blks).prefix(Int(y.inner_nblks))
            && dims(x.inner_idxs).prefix(Int(x.inner_nblks)) == dims(y.inner_idxs).prefix(Int(y.inner_nblks))
    }
}
