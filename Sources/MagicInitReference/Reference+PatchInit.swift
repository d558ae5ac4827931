/// The §3.3 patch math, written independently of `MagicInitStatistics` to test it against
/// (Krähenbühl et al. 2016, §3.3; Coates & Ng 2012, §3): a cyclic Jacobi eigen-solver, the
/// whitening built on it, and a spherical k-means loop over all patches held in memory, all in
/// plain Float64 loops.
extension Reference {
    /// Eigen-decomposition of a symmetric `(D, D)` row-major matrix by cyclic Jacobi rotations
    /// (Golub & Van Loan, §8.5), sweeping until the off-diagonal mass is below
    /// `1e-15 ·` the Frobenius norm or 100 sweeps.
    /// - Returns: eigenvalues descending `(D)` and unit eigenvectors as rows `(D, D)`, each
    ///   signed so that its entry of largest magnitude (the first on a tie) is positive.
    /// - Complexity: O(D³) per sweep.
    public static func symmetricEigen(_ matrix: [Double], dimension d: Int) -> (values: [Double], vectors: [Double]) {
        requireCount(matrix, [d, d], "symmetric matrix")
        var a = matrix
        var v = [Double](repeating: 0, count: d * d)
        for i in 0..<d { v[i * d + i] = 1 }
        let frobenius = a.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<d { for q in 0..<d where p != q { off += a[p * d + q] * a[p * d + q] } }
            if off.squareRoot() <= 1e-15 * frobenius { break }
            for p in 0..<d {
                for q in (p + 1)..<max(p + 1, d) where a[p * d + q] != 0 {
                    let theta = (a[q * d + q] - a[p * d + p]) / (2 * a[p * d + q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<d {  // A ← A J (columns p, q)
                        let akp = a[k * d + p], akq = a[k * d + q]
                        a[k * d + p] = c * akp - s * akq
                        a[k * d + q] = s * akp + c * akq
                    }
                    for k in 0..<d {  // A ← Jᵀ A (rows p, q)
                        let apk = a[p * d + k], aqk = a[q * d + k]
                        a[p * d + k] = c * apk - s * aqk
                        a[q * d + k] = s * apk + c * aqk
                    }
                    for k in 0..<d {  // V ← V J: columns of V are the eigenvectors
                        let vkp = v[k * d + p], vkq = v[k * d + q]
                        v[k * d + p] = c * vkp - s * vkq
                        v[k * d + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        let order = (0..<d).sorted { a[$0 * d + $0] > a[$1 * d + $1] }
        var vectors = [Double]()
        for i in order {
            var column = (0..<d).map { v[$0 * d + i] }
            var largest = 0.0, sign = 1.0
            for x in column where abs(x) > largest {
                largest = abs(x)
                sign = x < 0 ? -1 : 1
            }
            column = column.map { $0 * sign }
            vectors += column
        }
        return (order.map { a[$0 * d + $0] }, vectors)
    }

    /// Population mean `(D)` and covariance `Σ (x − mean)(x − mean)ᵀ / n` `(D, D)` of rows
    /// `(n, D)`, by two plain passes.
    public static func covariance(rows x: [Double], dimension d: Int) -> (mean: [Double], covariance: [Double]) {
        precondition(d > 0 && x.count % d == 0 && !x.isEmpty, "covariance: \(x.count) values are not whole \(d)-dimensional rows")
        let n = x.count / d
        var mean = [Double](repeating: 0, count: d)
        for p in 0..<n { for j in 0..<d { mean[j] += x[p * d + j] } }
        mean = mean.map { $0 / Double(n) }
        var cov = [Double](repeating: 0, count: d * d)
        for p in 0..<n {
            for i in 0..<d {
                for j in 0..<d { cov[i * d + j] += (x[p * d + i] - mean[i]) * (x[p * d + j] - mean[j]) }
            }
        }
        return (mean, cov.map { $0 / Double(n) })
    }

    /// Whitening of raw patches `(n, D)`: population covariance (two passes), Jacobi
    /// eigen-decomposition, eigenvalues below `floor` dropped, `s_i = 1/sqrt(λ_i + epsilon)`.
    /// - Returns: the mean `(D)`, retained eigenvalues `(r)`, directions as rows `(r, D)`,
    ///   scales `(r)`, and the whitened patches `y = S Vᵀ (x − μ)`, `(n, r)`.
    public static func whitening(patches x: [Double], dimension d: Int, epsilon: Double, floor: Double)
        -> (mean: [Double], eigenvalues: [Double], directions: [Double], scales: [Double], whitened: [Double]) {
        precondition(d > 0 && x.count % d == 0 && !x.isEmpty, "whitening: \(x.count) values are not whole \(d)-dimensional patches")
        let n = x.count / d
        let (mean, cov) = covariance(rows: x, dimension: d)
        let (values, vectors) = symmetricEigen(cov, dimension: d)
        let r = values.prefix { $0 >= floor }.count
        let scales = values.prefix(r).map { 1 / ($0 + epsilon).squareRoot() }
        var y = [Double](repeating: 0, count: n * r)
        for p in 0..<n {
            for i in 0..<r {
                var dot = 0.0
                for j in 0..<d { dot += vectors[i * d + j] * (x[p * d + j] - mean[j]) }
                y[p * r + i] = scales[i] * dot
            }
        }
        return (mean, Array(values.prefix(r)), Array(vectors.prefix(r * d)), scales, y)
    }

    /// Spherical k-means (Coates & Ng 2012, §3) on patches `(n, r)`, normalised here, from the
    /// given centroids `(O, r)`, for exactly `iterations` passes: assign each patch to
    /// `argmax_j |c_j · u|` (first on a tie), then `c_j ← normalise(Σ s u + damping · c_j)`;
    /// an empty centroid is kept as it is (no re-seeding here).
    /// - Returns: the centroids `(O, r)` and the objective `Σ (1 − s²)` of every pass.
    public static func sphericalKMeans(patches y: [Double], dimension r: Int, initialCentroids: [Double],
                                       iterations: Int, damping: Double) -> (centroids: [Double], objectives: [Double]) {
        precondition(r > 0 && y.count % r == 0 && initialCentroids.count % r == 0, "sphericalKMeans: sizes are not whole rows")
        let n = y.count / r, o = initialCentroids.count / r
        func unit(_ v: ArraySlice<Double>) -> [Double] {
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return norm > 0 ? v.map { $0 / norm } : Array(v)
        }
        let u = (0..<n).map { unit(y[($0 * r)..<(($0 + 1) * r)]) }.filter { $0.contains { $0 != 0 } }
        var c = (0..<o).map { unit(initialCentroids[($0 * r)..<(($0 + 1) * r)]) }
        var objectives = [Double]()
        for _ in 0..<iterations {
            var sums = [[Double]](repeating: [Double](repeating: 0, count: r), count: o)
            var counts = [Int](repeating: 0, count: o)
            var objective = 0.0
            for patch in u {
                let dots = c.map { centroid in zip(centroid, patch).reduce(0) { $0 + $1.0 * $1.1 } }
                var best = 0
                for j in 1..<max(1, o) where abs(dots[j]) > abs(dots[best]) { best = j }
                let s = dots[best]
                counts[best] += 1
                for k in 0..<r { sums[best][k] += s * patch[k] }
                objective += 1 - s * s
            }
            objectives.append(objective)
            for j in 0..<o where counts[j] > 0 {
                c[j] = unit(ArraySlice((0..<r).map { sums[j][$0] + damping * c[j][$0] }))
            }
        }
        return (c.flatMap { $0 }, objectives)
    }
}
