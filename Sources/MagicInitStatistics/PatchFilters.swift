import MagicInitCore

/// O convolution rows for one group, computed from patch statistics (Krähenbühl et al. 2016,
/// §3.3): what the §3.3 initialisations hand to Algorithm 1, which then rescales each row and
/// sets the bias to β − μ/σ.
///
/// Each row maps **raw** input patches: `z_o = weights[o] · x + biases[o]`, the patch mean
/// folded into the bias (see ``PatchWhitening/filter(whitened:)``).
public struct PatchFilters: Sendable, Equatable {
    /// How the rows beyond what the data supports were filled.
    public enum Fill: String, Sendable, Equatable {
        /// Every row comes from the data.
        case none
        /// Rows `rowsFromData ..< O` are random unit directions in the whitened space
        /// (Gaussian, normalised), mapped back like every other row.
        case randomWhitenedDirections
    }

    /// Output channels O.
    public let outputs: Int
    /// Patch dimension D.
    public let dimension: Int
    /// `(O, D)` row-major.
    public let weights: [Double]
    /// `(O)`.
    public let biases: [Double]
    /// Rows taken from the data, `≤ O`; the rest were filled as ``fill`` says.
    public let rowsFromData: Int
    /// What fills rows `rowsFromData ..< O`.
    public let fill: Fill

    /// Rows from filters in whitened coordinates, `(O, r)` row-major, mapped by
    /// ``PatchWhitening/filter(whitened:)``.
    public init(whitening: PatchWhitening, whitenedRows c: [Double], rowsFromData: Int? = nil, fill: Fill = .none) {
        let r = whitening.rank
        precondition(c.count % r == 0, "\(c.count) values are not whole \(r)-dimensional whitened rows")
        let o = c.count / r
        var w = [Double](), b = [Double]()
        w.reserveCapacity(o * whitening.dimension)
        for row in 0..<o {
            let (weights, bias) = whitening.filter(whitened: c[(row * r)..<((row + 1) * r)])
            w += weights
            b.append(bias)
        }
        outputs = o
        dimension = whitening.dimension
        weights = w
        biases = b
        self.rowsFromData = rowsFromData ?? o
        self.fill = fill
    }
}

extension PatchWhitening {
    /// **PCA** filters: row o < r is the o-th principal direction scaled to unit output
    /// variance on the patches, `s_o v_o` (the reference's `S Vᵀ`). Rows are mutually
    /// orthogonal; on the patches their outputs are uncorrelated with variance
    /// `λ_o / (λ_o + ε)`.
    ///
    /// O > r (more outputs than directions the data spans — e.g. a first convolution with
    /// O = 96 on 3·3·3 = 27-dimensional patches): rows r ..< O are random unit directions of the
    /// whitened space (``randomWhitenedRows(_:generator:)``); ``PatchFilters/rowsFromData`` is r.
    /// - Parameters:
    ///   - outputs: O ≥ 1.
    ///   - generator: the stream for the fill rows (key it by seed, layer and group).
    public func pca(outputs: Int, generator: Philox) -> PatchFilters {
        precondition(outputs >= 1, "PCA needs at least one output, got \(outputs)")
        let r = rank, fromData = min(outputs, r)
        var c = [Double](repeating: 0, count: fromData * r)
        for o in 0..<fromData { c[o * r + o] = 1 }
        c += randomWhitenedRows(outputs - fromData, generator: generator)
        return PatchFilters(whitening: self, whitenedRows: c, rowsFromData: fromData,
                            fill: fromData < outputs ? .randomWhitenedDirections : .none)
    }

    /// **ZCA** filters: O rows of the ZCA whitening matrix `Z = V S Vᵀ` `(D, D)`. Row k of Z
    /// is the filter whose output is the k-th coordinate of the ZCA-whitened patch; in
    /// whitened coordinates it is column k of Vᵀ, `(v_0[k], …, v_{r−1}[k])`. The rows taken
    /// are `k_o = ⌊o · D / O⌋`, `o < min(O, D)` — evenly spread over the patch's (channel, y, x)
    /// positions, all of them when O = D.
    ///
    /// O > D: rows D ..< O are random unit directions of the whitened space, as for PCA;
    /// ``PatchFilters/rowsFromData`` is D. (Z has rank r: when r < D its rows are linearly
    /// dependent, but every row is still a filter of the data.)
    public func zca(outputs: Int, generator: Philox) -> PatchFilters {
        precondition(outputs >= 1, "ZCA needs at least one output, got \(outputs)")
        let r = rank, d = dimension, fromData = min(outputs, d)
        var c = [Double](repeating: 0, count: fromData * r)
        for o in 0..<fromData {
            let k = o * d / outputs
            for i in 0..<r { c[o * r + i] = directions[i * d + k] }
        }
        c += randomWhitenedRows(outputs - fromData, generator: generator)
        return PatchFilters(whitening: self, whitenedRows: c, rowsFromData: fromData,
                            fill: fromData < outputs ? .randomWhitenedDirections : .none)
    }

    /// `count` unit vectors of the whitened space, `(count, r)` row-major: row o is draws
    /// `o·r ..< (o+1)·r` of `generator`'s Gaussian stream, normalised (a zero draw row, of
    /// probability 0, stays zero).
    public func randomWhitenedRows(_ count: Int, generator: Philox) -> [Double] {
        guard count > 0 else { return [] }
        let r = rank
        let g = generator.gaussians(count: count * r).map(Double.init)
        var out = [Double](repeating: 0, count: count * r)
        for o in 0..<count {
            var norm = 0.0
            for i in 0..<r { norm += g[o * r + i] * g[o * r + i] }
            norm = norm.squareRoot()
            guard norm > 0 else { continue }
            for i in 0..<r { out[o * r + i] = g[o * r + i] / norm }
        }
        return out
    }
}

extension PatchWhitening {
    /// **Random-patch** filters (the reference's `rand`): the O sampled unit-norm whitened
    /// patches of `sample` (a ``PatchSample`` of capacity O over all patches), in sample
    /// order. Fewer patches than O (a tiny data set): the rest are random unit directions
    /// of the whitened space, and ``PatchFilters/rowsFromData`` says how many came from data.
    public func randomPatches(outputs: Int, sample: PatchSample, generator: Philox) -> PatchFilters {
        precondition(outputs >= 1, "random patches need at least one output, got \(outputs)")
        precondition(sample.dimension == rank, "a \(sample.dimension)-dimensional sample for a rank-\(rank) whitening")
        let fromData = min(outputs, sample.count)
        let c = Array(sample.values[..<(fromData * rank)]) + randomWhitenedRows(outputs - fromData, generator: generator)
        return PatchFilters(whitening: self, whitenedRows: c, rowsFromData: fromData,
                            fill: fromData < outputs ? .randomWhitenedDirections : .none)
    }
}
