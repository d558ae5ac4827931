import MagicInitCore
import MagicInitReference
import MagicInitStatistics
import Testing

@Suite struct SphericalKMeansTests {
    /// 3×3 RGB patches of the 8 fixture photos, 300 per photo (D = 27, n = 2400), whitened
    /// with the default ε.
    static let setup: (whitening: PatchWhitening, whitened: [Double], raw: [Float]) = {
        let photo = try! PhotoPatches.patches(kernel: 3, perImage: 300)
        let cov = photo.values.withUnsafeBufferPointer { Covariance(accumulatingRows: $0, dimension: photo.dimension) }
        let w = try! PatchWhitening(covariance: cov)
        let y = try! photo.values.withUnsafeBufferPointer { try w.whiten($0) }
        return (w, y, photo.values)
    }()

    /// Runs k-means to the end with the patches cut at `cuts` (chunk c = patches
    /// `cuts[c] ..< cuts[c+1]`), each pass's partials merged in `order`.
    static func run(_ kmeans: SphericalKMeans, cuts: [Int], order: [Int]? = nil) throws -> SphericalKMeans {
        var km = kmeans
        let r = km.dimension, y = setup.whitened
        while !km.isFinished {
            var parts = [SphericalKMeansPartial]()
            for c in 0..<(cuts.count - 1) {
                let chunk = Array(y[(cuts[c] * r)..<(cuts[c + 1] * r)])
                parts.append(try chunk.withUnsafeBufferPointer { try km.partial(whitenedPatches: $0, firstPatchIndex: Int64(cuts[c])) })
            }
            var merged = km.emptyPartial()
            for c in order ?? Array(parts.indices) { try merged.merge(parts[c]) }
            try km.update(with: merged)
        }
        return km
    }

    @Test func test_objective_nonIncreasing_andCentroids_unitNorm_onPhotoPatches() throws {
        let r = Self.setup.whitening.rank, n = Self.setup.whitened.count / r
        let settings = SphericalKMeans.Settings(centroidCount: 16, maxIterations: 20, tolerance: 0)
        let km = try Self.run(try SphericalKMeans(settings: settings, dimension: r, seed: 7, layer: 0), cuts: [0, n])
        #expect(km.stopReason == .iterationCap && km.objectives.count == 20)
        // 2⁻⁴¹ rounding per term: n · 2⁻⁴⁰ bounds the rounding in J and in the step.
        let slack = Double(n) * 0x1p-40
        let increases = zip(km.objectives, km.objectives.dropFirst()).map { $1 - $0 }
        print("[SphericalKMeans] 16 centroids, r = \(r), n = \(n): J = \(km.objectives.map { ($0 * 1000).rounded() / 1000 }), "
              + "largest step \(increases.max()!), re-seeded \(km.reseeded.map(\.count))")
        #expect(increases.allSatisfy { $0 <= slack })
        #expect(km.objectives.last! < km.objectives.first!)
        for j in 0..<16 {
            let norm = (0..<r).reduce(0.0) { $0 + km.centroids[j * r + $1] * km.centroids[j * r + $1] }.squareRoot()
            #expect(abs(norm - 1) <= 1e-12, "centroid \(j) has norm \(norm)")
        }
        #expect(km.patchCount == Int64(n) && km.skippedPatches == 0)
    }

    @Test func test_chunkings_1_2_3_andAnyMergeOrder_giveBitwiseSameCentroids() throws {
        let r = Self.setup.whitening.rank, n = Self.setup.whitened.count / r
        // 40 Gaussian centroids, the last 5 copies of centroid 0: those start empty (ties go to
        // centroid 0), and with 4 candidates per pass 35 … 38 are re-seeded in the first.
        let settings = SphericalKMeans.Settings(centroidCount: 40, maxIterations: 8, tolerance: 1e-6, reseedCandidates: 4)
        var initial = Philox(seed: 11, stream: 12).gaussians(count: 40 * r).map(Double.init)
        for j in 35..<40 { initial.replaceSubrange((j * r)..<((j + 1) * r), with: initial[0..<r]) }
        let start = try SphericalKMeans(settings: settings, initialCentroids: initial, dimension: r, seed: 11, layer: 3, group: 1)
        let one = try Self.run(start, cuts: [0, n])
        let two = try Self.run(start, cuts: [0, 1111, n])
        let three = try Self.run(start, cuts: [0, 17, 1500, n], order: [2, 0, 1])
        let uneven = try Self.run(start, cuts: [0, 0, 800, 800, n], order: [3, 1, 2, 0])
        print("[SphericalKMeans] chunkings: \(one.objectives.count) passes, re-seeded per pass \(one.reseeded)")
        #expect(one.reseeded.first == [35, 36, 37, 38], "the case should exercise re-seeding")
        for other in [two, three, uneven] {
            #expect(other.centroids.map(\.bitPattern) == one.centroids.map(\.bitPattern))
            #expect(other.objectives.map(\.bitPattern) == one.objectives.map(\.bitPattern))
            #expect(other.reseeded == one.reseeded)
        }
    }

    @Test func test_emptyCluster_reseeded_fromDeterministicPatchDraw() throws {
        let r = Self.setup.whitening.rank, y = Self.setup.whitened, n = y.count / r
        // Centroids 0 and 1 identical: ties go to 0, so 1 is empty in the first pass.
        var initial = Array(y[0..<(r * 3)])
        initial.replaceSubrange(r..<(2 * r), with: y[0..<r])
        let settings = SphericalKMeans.Settings(centroidCount: 3, maxIterations: 1, reseedCandidates: 2)
        let km = try Self.run(try SphericalKMeans(settings: settings, initialCentroids: initial, dimension: r, seed: 5, layer: 2),
                              cuts: [0, 700, n])
        #expect(km.reseeded == [[1]])
        // The new centroid is the unit patch of smallest key under ("kmeans.reseed", 2, 0, 0).
        let sampler = Philox(seed: 5, stream: Philox.stream("kmeans.reseed", 2, 0, 0))
        let sample = PatchSample(dimension: r, capacity: 1, sampler: sampler)
        let first = (0..<n).min { sample.key(of: Int64($0)) < sample.key(of: Int64($1)) }!
        let norm = (0..<r).reduce(0.0) { $0 + y[first * r + $1] * y[first * r + $1] }.squareRoot()
        let expected = (0..<r).map { y[first * r + $0] / norm }
        #expect(Array(km.centroids[r..<(2 * r)]) == expected, "re-seeded from patch \(first)")
    }

    @Test func test_matchesReferenceImplementation_onSmallCase() throws {
        // Independent pipeline: Jacobi whitening and a plain k-means loop in MagicInitReference.
        let small = try PhotoPatches.patches(kernel: 2, perImage: 60)  // D = 12, n = 480
        let d = small.dimension, epsilon = 1e-3
        let cov = small.values.withUnsafeBufferPointer { Covariance(accumulatingRows: $0, dimension: d) }
        let w = try PatchWhitening(covariance: cov, epsilon: epsilon)
        let y = try small.values.withUnsafeBufferPointer { try w.whiten($0) }
        let reference = Reference.whitening(patches: small.values.map(Double.init), dimension: d, epsilon: epsilon, floor: 1e-6)
        #expect(reference.eigenvalues.count == w.rank)
        let (whitenedDiff, _) = PhotoPatches.largestDifference(y, reference.whitened)
        let r = w.rank, o = 6, iterations = 6
        // Start from patches 0, 80, 160, …: one per photo region, so no cluster empties.
        var initial = [Double](), referenceInitial = [Double]()
        for j in 0..<o {
            let first: Int = j * 80 * r
            initial += y[first..<(first + r)]
            referenceInitial += reference.whitened[first..<(first + r)]
        }
        let settings = SphericalKMeans.Settings(centroidCount: o, maxIterations: iterations, tolerance: 0)
        var km = try SphericalKMeans(settings: settings, initialCentroids: initial, dimension: r, seed: 1, layer: 0)
        while !km.isFinished {
            let part = try y.withUnsafeBufferPointer { try km.partial(whitenedPatches: $0, firstPatchIndex: 0) }
            var merged = km.emptyPartial()
            try merged.merge(part)
            try km.update(with: merged)
        }
        let ref = Reference.sphericalKMeans(patches: reference.whitened, dimension: r, initialCentroids: referenceInitial,
                                            iterations: iterations, damping: 1)
        let (centroidDiff, at) = PhotoPatches.largestDifference(km.centroids, ref.centroids)
        let objectiveDiff = zip(km.objectives, ref.objectives).map { abs($0 - $1) }.max()!
        print("[SphericalKMeans] vs reference (r = \(r), O = \(o), n = 480): whitened patches \(whitenedDiff), "
              + "centroids \(centroidDiff) at \(at), objectives \(objectiveDiff); J = \(ref.objectives)")
        #expect(km.reseeded.allSatisfy { (row: [Int]) in row.isEmpty })
        #expect(whitenedDiff <= 1e-8)
        #expect(centroidDiff <= 1e-8)
        #expect(objectiveDiff <= 1e-6)
    }

    @Test func test_randomPatchFilters_areSampledWhitenedPatches() throws {
        let w = Self.setup.whitening, r = w.rank, y = Self.setup.whitened, n = y.count / r
        var sample = PatchSample(dimension: r, capacity: 8, sampler: Philox(seed: 3, stream: Philox.stream("patches.sample", 0, 0)))
        var unit = [Double](repeating: 0, count: r)
        for p in 0..<n {
            let norm = (0..<r).reduce(0.0) { $0 + y[p * r + $1] * y[p * r + $1] }.squareRoot()
            for k in 0..<r { unit[k] = y[p * r + k] / norm }
            unit.withUnsafeBufferPointer { sample.offer(index: Int64(p), patch: $0) }
        }
        let filters = w.randomPatches(outputs: 10, sample: sample, generator: Philox(seed: 3, stream: 4))
        #expect(filters.rowsFromData == 8 && filters.fill == .randomWhitenedDirections && filters.outputs == 10)
        // Each sampled row, applied to its own raw patch, gives ‖y‖ (= u · y).
        let d = w.dimension
        for (o, index) in sample.indices.enumerated() {
            let p = Int(index)
            var z = filters.biases[o]
            for k in 0..<d { z += filters.weights[o * d + k] * Double(Self.setup.raw[p * d + k]) }
            let norm = (0..<r).reduce(0.0) { $0 + y[p * r + $1] * y[p * r + $1] }.squareRoot()
            #expect(abs(z - norm) <= 1e-9 * norm, "row \(o), patch \(p): \(z) vs ‖y‖ \(norm)")
        }
    }

    @Test func test_settings_andShapes_areChecked() throws {
        #expect(throws: PatchStatisticsError.self) { try SphericalKMeans(settings: .init(centroidCount: 0), dimension: 3, seed: 0, layer: 0) }
        #expect(throws: PatchStatisticsError.self) { try SphericalKMeans(settings: .init(centroidCount: 2, tolerance: -1), dimension: 3, seed: 0, layer: 0) }
        var km = try SphericalKMeans(settings: .init(centroidCount: 2), dimension: 3, seed: 0, layer: 0)
        #expect(throws: PatchStatisticsError.shapeMismatch(what: "whitened patch values (a multiple of r = 3)", expected: 6, actual: 4)) {
            try [1.0, 2, 3, 4].withUnsafeBufferPointer { try km.partial(whitenedPatches: $0, firstPatchIndex: 0) }
        }
        let empty = km.emptyPartial()
        #expect(throws: PatchStatisticsError.noPatches) { try km.update(with: empty) }
        let other = try SphericalKMeans(settings: .init(centroidCount: 3), dimension: 3, seed: 0, layer: 0)
        var merged = km.emptyPartial()
        #expect(throws: PatchStatisticsError.shapeMismatch(what: "k-means partial centroids", expected: 2, actual: 3)) {
            try merged.merge(other.emptyPartial())
        }
        // A zero patch is skipped, not assigned.
        let part = try [0.0, 0, 0, 1, 0, 0].withUnsafeBufferPointer { try km.partial(whitenedPatches: $0, firstPatchIndex: 0) }
        #expect(part.patchCount == 1 && part.skippedPatches == 1)
        try km.update(with: part)
    }
}
