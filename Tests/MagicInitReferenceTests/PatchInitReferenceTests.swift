import MagicInitCore
import MagicInitReference
import Testing

@Suite struct PatchInitReferenceTests {
    /// A symmetric matrix `B Bᵀ + diag` from Philox draws, `(d, d)`.
    static func symmetric(_ d: Int, trial: Int) -> [Double] {
        let g = Philox(seed: 9, stream: Philox.stream("jacobi", trial)).gaussians(count: d * d).map(Double.init)
        var a = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for j in 0..<d { for k in 0..<d { a[i * d + j] += g[i * d + k] * g[j * d + k] } } }
        for i in 0..<d { a[i * d + i] += Double(i) * 0.1 }
        return a
    }

    @Test(arguments: [1, 2, 5, 12, 30])
    func test_jacobi_reconstructsMatrix_withOrthonormalVectors(dimension d: Int) {
        let a = Self.symmetric(d, trial: d)
        let (values, vectors) = Reference.symmetricEigen(a, dimension: d)
        var reconstruction = 0.0, orthogonality = 0.0
        for i in 0..<d {
            for j in 0..<d {
                var s = 0.0, dot = 0.0
                for k in 0..<d {
                    s += vectors[k * d + i] * values[k] * vectors[k * d + j]
                    dot += vectors[i * d + k] * vectors[j * d + k]
                }
                reconstruction = max(reconstruction, abs(s - a[i * d + j]))
                orthogonality = max(orthogonality, abs(dot - (i == j ? 1 : 0)))
            }
        }
        let scale = a.map(abs).max()!
        print("[Reference.symmetricEigen] \(d)×\(d): largest |V Λ Vᵀ − A| \(reconstruction) (|A| ≤ \(scale)), |V Vᵀ − I| \(orthogonality)")
        #expect(reconstruction <= 1e-12 * scale)
        #expect(orthogonality <= 1e-12)
        #expect(zip(values, values.dropFirst()).allSatisfy { $0 >= $1 })
    }

    @Test func test_jacobi_knownEigenvalues() {
        // [[2, 1], [1, 2]]: λ = 3, 1 with vectors (1, 1)/√2, (−1, 1)/√2 signed to a positive largest entry.
        let (values, vectors) = Reference.symmetricEigen([2, 1, 1, 2], dimension: 2)
        #expect(abs(values[0] - 3) <= 1e-15 && abs(values[1] - 1) <= 1e-15)
        let h = 0.5.squareRoot()
        #expect(abs(vectors[0] - h) <= 1e-15 && abs(vectors[1] - h) <= 1e-15)
        #expect(abs(abs(vectors[2]) - h) <= 1e-15 && abs(abs(vectors[3]) - h) <= 1e-15)
    }

    @Test func test_referenceWhitening_givesIdentityCovariance() {
        let d = 6, n = 500
        let g = Philox(seed: 4, stream: 5).gaussians(count: n * d).map(Double.init)
        var x = [Double](repeating: 0, count: n * d)  // correlated: x_i = Σ_{k ≤ i} g_k + i
        for p in 0..<n { for i in 0..<d { for k in 0...i { x[p * d + i] += g[p * d + k] }; x[p * d + i] += Double(i) } }
        let w = Reference.whitening(patches: x, dimension: d, epsilon: 0, floor: 1e-6)
        #expect(w.eigenvalues.count == d)
        var largest = 0.0
        for i in 0..<d { for j in 0..<d {
            let c = (0..<n).reduce(0.0) { $0 + w.whitened[$1 * d + i] * w.whitened[$1 * d + j] } / Double(n)
            largest = max(largest, abs(c - (i == j ? 1 : 0)))
        } }
        print("[Reference.whitening] 6-dim correlated: largest |cov − I| \(largest)")
        #expect(largest <= 1e-10)
    }

    @Test func test_referenceKMeans_objectiveNonIncreasing_unitCentroids() {
        let r = 4, n = 300
        let y = Philox(seed: 8, stream: 1).gaussians(count: n * r).map(Double.init)
        let initial = Array(y[0..<(5 * r)])
        let run = Reference.sphericalKMeans(patches: y, dimension: r, initialCentroids: initial, iterations: 10, damping: 1)
        #expect(zip(run.objectives, run.objectives.dropFirst()).allSatisfy { $1 <= $0 + 1e-9 })
        #expect(run.objectives.last! < run.objectives.first!)
        for j in 0..<5 {
            let norm = (0..<r).reduce(0.0) { $0 + run.centroids[j * r + $1] * run.centroids[j * r + $1] }.squareRoot()
            #expect(abs(norm - 1) <= 1e-12)
        }
    }
}
