import Foundation
import Testing
import MagicInitCore

/// The Float32 functions behind the Gaussian draws against Foundation's Float64 `log`,
/// `sin`, `cos` and `sqrt`, over every third input the draws can give them and the ends of
/// each range. (Every input, checked once in a release build: largest errors 8.1e-8
/// relative for `log`, 9.1e-8 for `sin` and `cos`, 8.8e-8 relative for `√`.)
@Suite struct PortableFloatMathTests {
    /// The Box–Muller uniforms `u = k · 2⁻²⁴`, `k = 1, 4, 7, … , 2²⁴` (from 2⁻²⁴ to exactly 1).
    @Test func test_log_denseSweepOfRadiusUniforms_within1point5e7Relative() {
        var worst = 0.0, worstU: Float = 0
        for k in stride(from: 1, through: 1 << 24, by: 3) {
            let u = Float(k) * 0x1p-24
            let exact = Foundation.log(Double(u))
            let error = abs(Double(PortableFloatMath.log(u)) - exact) / max(abs(exact), 0x1p-24)
            if error > worst { (worst, worstU) = (error, u) }
        }
        #expect(worst <= 1.5e-7, "largest relative error \(worst) at u = \(worstU)")
        #expect(PortableFloatMath.log(1) == 0)
        #expect(abs(Double(PortableFloatMath.log(0x1p-24)) + 24 * M_LN2) <= 1.5e-7 * 24 * M_LN2)
    }

    /// The angles `θ = 2π · t · 2⁻²⁴`, `t = 0, 3, 6, … , 2²⁴ − 1` (from 0 to 2π − 3.7 · 10⁻⁷).
    @Test func test_sinCos_denseSweepOfAngles_within1point2e7() {
        var worstSin = 0.0, worstCos = 0.0, worstSinTurns: UInt32 = 0, worstCosTurns: UInt32 = 0
        for t in stride(from: UInt32(0), through: (1 << 24) - 1, by: 3) {
            let theta = 2 * Double.pi * Double(t) * 0x1p-24
            let (sin, cos) = PortableFloatMath.sinCos(turns: t)
            let sinError = abs(Double(sin) - Foundation.sin(theta)), cosError = abs(Double(cos) - Foundation.cos(theta))
            if sinError > worstSin { (worstSin, worstSinTurns) = (sinError, t) }
            if cosError > worstCos { (worstCos, worstCosTurns) = (cosError, t) }
        }
        #expect(worstSin <= 1.2e-7, "largest |sin error| \(worstSin) at turns \(worstSinTurns)")
        #expect(worstCos <= 1.2e-7, "largest |cos error| \(worstCos) at turns \(worstCosTurns)")
        #expect(PortableFloatMath.sinCos(turns: 0) == (0, 1))
        #expect(PortableFloatMath.sinCos(turns: 1 << 22) == (1, 0))  // θ = π/2
    }

    /// Every third float in `[1, 4)` (both exponent parities: the steps commute with scaling
    /// by 4, so this stands for every normal input), plus 0 and the largest Box–Muller
    /// argument `−2 ln 2⁻²⁴`.
    @Test func test_squareRoot_denseSweepOf1To4_within1point2e7Relative() {
        var worst = 0.0, worstX: Float = 0
        for bits in stride(from: Float(1).bitPattern, to: Float(4).bitPattern, by: 3) {
            let x = Float(bitPattern: bits)
            let exact = Double(x).squareRoot()
            let error = abs(Double(PortableFloatMath.squareRoot(x)) - exact) / exact
            if error > worst { (worst, worstX) = (error, x) }
        }
        #expect(worst <= 1.2e-7, "largest relative error \(worst) at x = \(worstX)")
        #expect(PortableFloatMath.squareRoot(0) == 0)
        let largest = -2 * PortableFloatMath.log(0x1p-24)
        #expect(abs(Double(PortableFloatMath.squareRoot(largest)) - Double(largest).squareRoot()) <= 1.2e-7 * 5.77)
    }
}
