import Foundation
import Testing
import MagicInitCore

@Suite struct PhiloxTests {
    @Test func test_block_matchesRandom123KnownAnswers() {
        // Random123 `tests/kat_vectors`, philox4x32 10: counter words 0–3, key words 0–1 →
        // output. Counter = (word 1 << 32) | word 0, stream = (word 3 << 32) | word 2,
        // seed = (key 1 << 32) | key 0.
        let zero = Philox(seed: 0, stream: 0).block(0)
        #expect([zero.0, zero.1, zero.2, zero.3] == [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        let ones = Philox(seed: .max, stream: .max).block(.max)
        #expect([ones.0, ones.1, ones.2, ones.3] == [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        let pi = Philox(seed: 0x299f_31d0_a409_3822, stream: 0x0370_7344_1319_8a2e).block(0x85a3_08d3_243f_6a88)
        #expect([pi.0, pi.1, pi.2, pi.3] == [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    @Test func test_sameSeedStreamCounter_givesSameNumbers() {
        let a = Philox(seed: 42, stream: Philox.stream("init", 3, 7))
        let b = Philox(seed: 42, stream: Philox.stream("init", 3, 7))
        #expect(a.gaussians(count: 101) == b.gaussians(count: 101))
        #expect(a.uniforms(count: 50) == b.uniforms(count: 50))
        // Element i depends only on i: a longer draw extends a shorter one.
        #expect(Array(a.gaussians(count: 1000).prefix(101)) == a.gaussians(count: 101))
    }

    @Test func test_differentStreamsOrSeeds_giveDifferentNumbers() {
        let base = Philox(seed: 42, stream: Philox.stream("init", 3, 7)).gaussians(count: 64)
        for other in [Philox(seed: 42, stream: Philox.stream("init", 3, 8)),
                      Philox(seed: 42, stream: Philox.stream("init", 7, 3)),
                      Philox(seed: 42, stream: Philox.stream("data", 3, 7)),
                      Philox(seed: 43, stream: Philox.stream("init", 3, 7))] {
            let draws = other.gaussians(count: 64)
            #expect(zip(base, draws).filter { $0 == $1 }.count == 0, "stream \(other.stream), seed \(other.seed)")
        }
        #expect(Philox.stream("init", 1) != Philox.stream("init1"))
    }

    @Test func test_gaussians_haveUnitMomentsOver100kDraws() {
        let draws = Philox(seed: 2016, stream: Philox.stream("moments")).gaussians(count: 100_000)
        let mean = draws.reduce(0.0) { $0 + Double($1) } / Double(draws.count)
        let variance = draws.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(draws.count - 1)
        #expect(abs(mean) < 0.01, "mean \(mean)")
        #expect(abs(variance.squareRoot() - 1) < 0.01, "std \(variance.squareRoot())")
        let shifted = Philox(seed: 2016, stream: Philox.stream("moments")).gaussians(count: 10, mean: 5, std: 2)
        #expect(zip(shifted, draws).allSatisfy { abs($0 - (5 + 2 * $1)) < 1e-5 })
    }

    /// The documented recipe, recomputed from ``Philox/block(_:)`` with Foundation's
    /// Float64 `log`, `cos`, `sin`: draws 256G + j (r · cos θ) and 256G + 128 + j (r · sin θ)
    /// from words (w₀, w₁) of counter 64G + j (j < 64) or (w₂, w₃) of counter 64G + j − 64.
    static func referenceDraw(_ philox: Philox, _ index: Int) -> Double {
        let group = index / 256, j = index % 256 % 128
        let words = philox.block(UInt64(64 * group + j % 64))
        let (radius, angle) = j < 64 ? (words.0, words.1) : (words.2, words.3)
        let u = Double((radius >> 8) + 1) * 0x1p-24, theta = 2 * Double.pi * Double(angle >> 8) * 0x1p-24
        let r = (-2 * Foundation.log(u)).squareRoot()
        return index % 256 < 128 ? r * Foundation.cos(theta) : r * Foundation.sin(theta)
    }

    @Test func test_gaussians_matchFloat64ReferenceOfTheDocumentedRecipe() {
        let philox = Philox(seed: 0x299f_31d0_a409_3822, stream: Philox.stream("reference"))
        // The start, a group edge, and the counter's low word wrapping (counter 2³² is draw 2³⁴).
        var worst = 0.0, worstIndex = 0
        for start in [0, 250, (1 << 34) - 300] {
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: 600)
            defer { buffer.deallocate() }
            philox.fillGaussians(buffer, startingAt: start)
            for k in 0..<buffer.count {
                let difference = abs(Double(buffer[k]) - Self.referenceDraw(philox, start + k))
                if difference > worst { (worst, worstIndex) = (difference, start + k) }
            }
        }
        #expect(worst <= 1e-6, "largest difference \(worst) at draw \(worstIndex)")
    }

    /// Any offset and count, across group (256) and parallel block (2¹⁶) edges, gives the same
    /// values as one draw from 0: element i depends only on i.
    @Test func test_fillGaussians_anyOffsetAndCount_matchesOneDrawFromZero() {
        let philox = Philox(seed: 9, stream: Philox.stream("split"))
        let whole = philox.gaussians(count: 3 * 65_536 + 777)  // four parallel blocks
        for (start, count) in [(0, 1), (1, 255), (255, 2), (13, 70_001), (65_535, 2), (2 * 65_536 - 5, 65_536 + 9), (3 * 65_536 + 700, 77)] {
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
            defer { buffer.deallocate() }
            buffer.initialize(repeating: .nan)
            philox.fillGaussians(buffer, startingAt: start)
            let mismatches = (0..<count).filter { buffer[$0] != whole[start + $0] }
            #expect(mismatches.isEmpty, "start \(start), count \(count): first mismatch at \(mismatches.first ?? -1)")
        }
        #expect(Array(philox.gaussians(count: 70_001).suffix(1)) == [whole[70_000]])
        // mean + std · g: Float(std) · g + Float(mean), rounded once each.
        let shifted = philox.gaussians(count: 1000, mean: 0.25, std: 0.1)
        #expect((0..<1000).allSatisfy { shifted[$0] == Float(0.1) * whole[$0] + Float(0.25) })
    }

    @Test func test_gaussians_oneMillionDraws_unitMomentsNormalTails() {
        let draws = Philox(seed: 2016, stream: Philox.stream("moments")).gaussians(count: 1_000_000)
        let mean = draws.reduce(0.0) { $0 + Double($1) } / Double(draws.count)
        let variance = draws.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(draws.count - 1)
        #expect(abs(mean) <= 0.005, "mean \(mean)")
        #expect(abs(variance.squareRoot() - 1) <= 0.005, "std \(variance.squareRoot())")
        // P(|g| > 3) = erfc(3/√2) ≈ 0.0026998; binomial standard error 5.2e-5, allow 6 of them.
        let tail = Double(draws.filter { abs($0) > 3 }.count) / Double(draws.count)
        #expect(abs(tail - erfc(3 / 2.0.squareRoot())) <= 3e-4, "fraction beyond |3|: \(tail)")
        // 24-bit uniforms bound every draw by √(2 ln 2²⁴) ≈ 5.7686.
        let largest = draws.map { abs($0) }.max() ?? 0
        #expect(largest <= 5.7687, "largest |draw| \(largest)")
    }

    @Test func test_uniforms_stayInHalfOpenRange() {
        let draws = Philox(seed: 1, stream: 2).uniforms(count: 10_000, low: -3, high: 5)
        #expect(draws.allSatisfy { $0 >= -3 && $0 < 5 })
        let mean = draws.reduce(0.0) { $0 + Double($1) } / Double(draws.count)
        #expect(abs(mean - 1) < 0.1, "mean \(mean)")
    }
}
