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

    @Test func test_uniforms_stayInHalfOpenRange() {
        let draws = Philox(seed: 1, stream: 2).uniforms(count: 10_000, low: -3, high: 5)
        #expect(draws.allSatisfy { $0 >= -3 && $0 < 5 })
        let mean = draws.reduce(0.0) { $0 + Double($1) } / Double(draws.count)
        #expect(abs(mean - 1) < 0.1, "mean \(mean)")
    }
}
