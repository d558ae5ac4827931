import MagicInitCore
import MagicInitReference
import MagicInitStatistics
import Testing

@Suite struct PatchWhiteningTests {
    /// 5×5 RGB patches of the 8 fixture photos, 500 per photo: D = 75, n = 4000.
    static let photo = try! PhotoPatches.patches(kernel: 5, perImage: 500)

    static func whitening(epsilon: Double) throws -> PatchWhitening {
        let cov = photo.values.withUnsafeBufferPointer { Covariance(accumulatingRows: $0, dimension: photo.dimension) }
        return try PatchWhitening(covariance: cov, epsilon: epsilon)
    }

    @Test func test_whitenedPhotoPatches_haveIdentityCovariance_epsilonZero() throws {
        let w = try Self.whitening(epsilon: 0)
        #expect(w.rank == 75 && w.droppedEigenvalues.isEmpty, "rank \(w.rank), dropped \(w.droppedEigenvalues)")
        let y = try Self.photo.values.withUnsafeBufferPointer { try w.whiten($0) }
        let (mean, cov) = PhotoPatches.naiveCovariance(y, dimension: w.rank)
        let (covDiff, at) = PhotoPatches.largestDifference(cov, PhotoPatches.diagonal(.init(repeating: 1, count: w.rank)))
        let meanDiff = mean.map(abs).max()!
        print("[PatchWhitening] photos 75-dim, n = 4000, λ \(w.retainedEigenvalues.first!) … \(w.retainedEigenvalues.last!): "
              + "largest |cov − I| \(covDiff) at \(at), largest |mean| \(meanDiff)")
        #expect(covDiff <= 1e-6 && meanDiff <= 1e-6)
    }

    @Test func test_whitenedPhotoPatches_epsilon_giveShrunkDiagonal() throws {
        let w = try Self.whitening(epsilon: 10)
        let y = try Self.photo.values.withUnsafeBufferPointer { try w.whiten($0) }
        let (_, cov) = PhotoPatches.naiveCovariance(y, dimension: w.rank)
        let expected = PhotoPatches.diagonal(w.retainedEigenvalues.map { $0 / ($0 + 10) })
        let (diff, _) = PhotoPatches.largestDifference(cov, expected)
        print("[PatchWhitening] ε = 10: largest |cov − diag(λ/(λ+ε))| \(diff), smallest ratio \(w.retainedEigenvalues.last! / (w.retainedEigenvalues.last! + 10))")
        #expect(diff <= 1e-6)
        #expect(w.retainedEigenvalues.last! / (w.retainedEigenvalues.last! + 10) < 0.99)  // ε really acts
    }

    @Test func test_pcaDirections_orthonormal_andFilters_decorrelateRawPatches() throws {
        let w = try Self.whitening(epsilon: PatchWhitening.defaultEpsilon)
        let r = w.rank, d = w.dimension
        var gram = [Double](repeating: 0, count: r * r)
        for i in 0..<r { for j in 0..<r { for k in 0..<d { gram[i * r + j] += w.directions[i * d + k] * w.directions[j * d + k] } } }
        let (orthoDiff, _) = PhotoPatches.largestDifference(gram, PhotoPatches.diagonal(.init(repeating: 1, count: r)))
        #expect(orthoDiff <= 1e-12, "largest |V Vᵀ − I| \(orthoDiff)")
        #expect(zip(w.retainedEigenvalues, w.retainedEigenvalues.dropFirst()).allSatisfy { $0 >= $1 })

        // The 32 PCA filters on raw patches: outputs zero-mean (bias folds the mean), covariance diag(λ/(λ+ε)).
        let pca = w.pca(outputs: 32, generator: Philox(seed: 1, stream: 2))
        #expect(pca.rowsFromData == 32 && pca.fill == .none)
        let x = Self.photo.values.map(Double.init), n = x.count / d
        var z = [Double](repeating: 0, count: n * 32)
        for p in 0..<n {
            for o in 0..<32 {
                var s = pca.biases[o]
                for k in 0..<d { s += pca.weights[o * d + k] * x[p * d + k] }
                z[p * 32 + o] = s
            }
        }
        let (mean, cov) = PhotoPatches.naiveCovariance(z, dimension: 32)
        let expected = PhotoPatches.diagonal(w.retainedEigenvalues.prefix(32).map { $0 / ($0 + w.epsilon) })
        let (covDiff, _) = PhotoPatches.largestDifference(cov, expected)
        let meanAbs = z.enumerated().reduce(into: [Double](repeating: 0, count: 32)) { $0[$1.offset % 32] += $1.element / Double(n) }
        print("[PatchWhitening] PCA: largest |V Vᵀ − I| \(orthoDiff), outputs |cov − diag| \(covDiff), |mean| \(meanAbs.map(abs).max()!), mean-of-mean check \(mean.map(abs).max()!)")
        #expect(covDiff <= 1e-6)
        #expect(meanAbs.map(abs).max()! <= 1e-6)
    }

    @Test func test_zca_fullRank_isSymmetricWhiteningMatrix() throws {
        let w = try Self.whitening(epsilon: 0)
        let d = w.dimension
        let zca = w.zca(outputs: d, generator: Philox(seed: 1, stream: 2))
        #expect(zca.rowsFromData == d && zca.fill == .none)
        var asymmetry = 0.0
        for i in 0..<d { for j in 0..<d { asymmetry = max(asymmetry, abs(zca.weights[i * d + j] - zca.weights[j * d + i])) } }
        let x = Self.photo.values.map(Double.init), n = x.count / d
        var z = [Double](repeating: 0, count: n * d)
        for p in 0..<n { for o in 0..<d {
            var s = zca.biases[o]
            for k in 0..<d { s += zca.weights[o * d + k] * x[p * d + k] }
            z[p * d + o] = s
        } }
        let (_, cov) = PhotoPatches.naiveCovariance(z, dimension: d)
        let (covDiff, _) = PhotoPatches.largestDifference(cov, PhotoPatches.diagonal(.init(repeating: 1, count: d)))
        let largestWeight = zca.weights.map(abs).max()!
        print("[PatchWhitening] ZCA 75×75: largest |Z − Zᵀ| \(asymmetry) (largest |Z| \(largestWeight)), |cov(Z x) − I| \(covDiff)")
        #expect(asymmetry <= 1e-9 * largestWeight)
        #expect(covDiff <= 1e-6)

        // Fewer outputs: rows ⌊o·D/O⌋ of the same matrix.
        let some = w.zca(outputs: 10, generator: Philox(seed: 1, stream: 2))
        for o in 0..<10 {
            let k = o * d / 10
            #expect(Array(some.weights[(o * d)..<((o + 1) * d)]) == Array(zca.weights[(k * d)..<((k + 1) * d)]))
        }
    }

    /// Patches with a duplicated half (x, x): rank D/2. PCA with O > rank fills the rest.
    @Test func test_rankDeficient_dropsEigenvalues_andPcaFillsRowsBeyondRank() throws {
        let small = try PhotoPatches.patches(kernel: 2, perImage: 200)  // D = 12
        let d = small.dimension, n = small.values.count / d
        var doubled = [Float]()
        for p in 0..<n { let row = small.values[(p * d)..<((p + 1) * d)]; doubled += row; doubled += row }
        let cov = doubled.withUnsafeBufferPointer { Covariance(accumulatingRows: $0, dimension: 2 * d) }
        let w = try PatchWhitening(covariance: cov)
        print("[PatchWhitening] (x, x) patches: rank \(w.rank) of \(2 * d), dropped eigenvalues \(w.droppedEigenvalues.map { abs($0) }.max()!)")
        #expect(w.rank == d && w.droppedEigenvalues.count == d)
        let pca = w.pca(outputs: 20, generator: Philox(seed: 5, stream: 6))
        #expect(pca.outputs == 20 && pca.rowsFromData == d && pca.fill == .randomWhitenedDirections)
        // Every row, including the random ones, lies in the data's span: the same weights on both copies.
        for o in 0..<20 { for k in 0..<d {
            #expect(abs(pca.weights[o * 2 * d + k] - pca.weights[o * 2 * d + d + k]) <= 1e-9 * pca.weights.map(abs).max()!)
        } }
    }

    @Test func test_dsyevd_matchesJacobiReference_onPhotoCovariance() throws {
        let small = try PhotoPatches.patches(kernel: 3, perImage: 300)  // D = 27
        let cov = small.values.withUnsafeBufferPointer { Covariance(accumulatingRows: $0, dimension: small.dimension) }
        let lapack = try SymmetricEigen(symmetric: cov.covariance, dimension: small.dimension)
        let jacobi = Reference.symmetricEigen(cov.covariance, dimension: small.dimension)
        let valueDiff = zip(lapack.values, jacobi.values).map { abs($0 - $1) / max(abs($1), 1e-300) }.max()!
        let (vectorDiff, _) = PhotoPatches.largestDifference(lapack.vectors, jacobi.vectors)
        print("[SymmetricEigen] 27×27 photo covariance: largest relative eigenvalue difference \(valueDiff), eigenvector \(vectorDiff); λ \(lapack.values.first!) … \(lapack.values.last!)")
        #expect(valueDiff <= 1e-9)
        #expect(vectorDiff <= 1e-7)
    }

    @Test func test_errors_nameTheProblem() throws {
        #expect(throws: PatchStatisticsError.noPatches) { try PatchWhitening(covariance: Covariance(dimension: 4)) }
        let constant = [Float](repeating: 3, count: 40)
        let cov = constant.withUnsafeBufferPointer { Covariance(accumulatingRows: $0, dimension: 4) }
        #expect(throws: PatchStatisticsError.noEigenvalueAboveFloor(largest: 0, floor: 1e-6)) { try PatchWhitening(covariance: cov) }
        #expect(throws: PatchStatisticsError.self) { try PatchWhitening(covariance: cov, epsilon: -1) }
        #expect(throws: PatchStatisticsError.dimensionTooLarge(dimension: 9000, limit: 8192)) {
            try SymmetricEigen(symmetric: [], dimension: 9000)
        }
        #expect(throws: PatchStatisticsError.nonFiniteCovariance) { try SymmetricEigen(symmetric: [1, .nan, .nan, 1], dimension: 2) }
    }
}
