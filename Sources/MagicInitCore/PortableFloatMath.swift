/// Float32 `log`, `sincos` and `√` that give the same bits on every machine.
///
/// Only IEEE-754 operations that are correctly rounded everywhere are used (`+`, `−`, `×`,
/// conversions of exactly representable integers, bit manipulation), each written out in
/// a fixed order: no libm call (its results differ between glibc versions and CPUs), and
/// no fused multiply-add (Swift never contracts `a * b + c`; an explicit FMA would be a
/// slow library call on the baseline x86-64 target, which has no FMA instruction). So a
/// coordinator and its workers on different hardware draw bitwise-identical weights.
///
/// The functions are written per lane and inlined into the loops of
/// ``Philox/fillGaussians(_:startingAt:mean:std:)``, which LLVM's loop vectoriser turns
/// into 4-lane SSE2 (x86-64) or NEON (arm64) code: lane-wise, the same IEEE operations, so
/// vectorising never changes a bit. (`SIMD16<Float>` arithmetic was partly scalarised by
/// the compiler, and `Float.squareRoot()` is an `errno`-setting `sqrtf` call on Linux that
/// blocks vectorisation, hence ``squareRoot(_:)``.)
///
/// The polynomials are Cephes' `logf`, `sinf` and `cosf` (S. L. Moshier, *Methods and
/// Programs for Mathematical Functions*, 1989); the range reductions are exact.
public enum PortableFloatMath {
    /// Natural logarithm of a positive normal float.
    ///
    /// `x = 2ᵉ · m` with `m ∈ [√½, √2)` (split by integer arithmetic on the bit pattern, as
    /// musl's `logf`; exact), `f = m − 1` (exact, Sterbenz), then Cephes' `logf`:
    /// `ln x = e · ln 2 + f − f²/2 + f³ · P(f)`, `P` of degree 8 evaluated by Estrin's
    /// scheme (shorter dependency chains than Horner's), and `ln 2 = 0.693359375 −
    /// 2.12194440 · 10⁻⁴` split so `e · 0.693359375` is exact (Cody–Waite).
    /// - Precondition: `x` positive and normal (not checked: zero, negative, subnormal,
    ///   infinite and NaN inputs give meaningless values). The Box–Muller uniforms
    ///   `k · 2⁻²⁴`, `1 ≤ k ≤ 2²⁴`, all are.
    /// - Returns: `ln x` within 1.5 · 10⁻⁷ · max(|ln x|, 2⁻²⁴) on `[2⁻²⁴, 1]` (largest
    ///   relative error 8.1 · 10⁻⁸ over all `k · 2⁻²⁴`; see `PortableFloatMathTests`).
    @inline(__always)
    public static func log(_ x: Float) -> Float {
        // Adding 1 − √½ to the mantissa bits carries mantissas ≥ √½ into the next exponent.
        let bits = x.bitPattern &+ (0x3F80_0000 &- 0x3F35_04F3)
        let e = Float(Int32(bitPattern: bits >> 23) &- 0x7F)
        let f = Float(bitPattern: (bits & 0x007F_FFFF) &+ 0x3F35_04F3) - 1
        let f2 = f * f, f4 = f2 * f2
        let p01: Float = 3.3333331174e-1 - 2.4999993993e-1 * f
        let p23: Float = 2.0000714765e-1 - 1.6668057665e-1 * f
        let p45: Float = 1.4249322787e-1 - 1.2420140846e-1 * f
        let p67: Float = 1.1676998740e-1 - 1.1514610310e-1 * f
        let p = (p01 + f2 * p23) + f4 * ((p45 + f2 * p67) + f4 * 7.0376836292e-2)
        let y = (p * f * f2 + e * -2.12194440e-4) - 0.5 * f2
        return (f + y) + e * 0.693359375
    }

    /// `sin θ` and `cos θ` of `θ = 2π · turns · 2⁻²⁴`, for a 24-bit integer `turns`
    /// (`θ ∈ [0, 2π)`).
    ///
    /// The angle comes as an integer, so the range reduction is exact: quadrant
    /// `q = ⌊turns / 2²² + ½⌋`, `x = (turns − q · 2²²) · (π/2) · 2⁻²² ∈ [−π/4, π/4)`, then
    /// Cephes' minimax polynomials for `sin x` and `cos x` and the quadrant's swap and
    /// signs (all branch-free, so the loops vectorise).
    /// - Precondition: `turns < 2²⁴` (not checked: higher bits give meaningless values).
    /// - Returns: both within 1.2 · 10⁻⁷ of the exact values (largest error 9.1 · 10⁻⁸ over
    ///   all 2²⁴ angles; see `PortableFloatMathTests`).
    @inline(__always)
    public static func sinCos(turns: UInt32) -> (sin: Float, cos: Float) {
        let quadrant = (turns &+ (1 << 21)) >> 22  // 0 … 4; 4 is the last half quadrant
        let x = Float(Int32(bitPattern: turns &- (quadrant << 22))) * Float(Double.pi / 2 / 4_194_304)
        let z = x * x
        let s = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * x + x
        let c = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1
        // Quadrant q: (sin, cos) = (s, c), (c, −s), (−s, −c), (−c, s).
        let swap = quadrant & 1 != 0
        let sinMagnitude = swap ? c : s, cosMagnitude = swap ? s : c
        return (Float(bitPattern: sinMagnitude.bitPattern ^ ((quadrant & 2) << 30)),
                Float(bitPattern: cosMagnitude.bitPattern ^ (((quadrant &+ 1) & 2) << 30)))
    }

    /// `√x` for `x = 0` or positive normal `x`.
    ///
    /// `y ≈ 1/√x` from the bit pattern (`0x5F375A86 − bits/2`, relative error < 3.5 %), two
    /// Newton steps `y ← y (3/2 − x y²/2)` (error < 5 · 10⁻⁶), then `s = x y` corrected
    /// once by `s + (y/2)(x − s²)` (error squared again, so only rounding remains).
    /// - Returns: `√x` within 1.2 · 10⁻⁷ relative, about 1 ulp (largest error 8.8 · 10⁻⁸
    ///   over all of `[1, 4)`, which stands for every exponent: the steps commute with
    ///   scaling `x` by 4); `0` for `0`.
    @inline(__always)
    public static func squareRoot(_ x: Float) -> Float {
        var y = Float(bitPattern: 0x5F37_5A86 &- (x.bitPattern >> 1))
        let half = 0.5 * x
        y = y * (1.5 - half * y * y)
        y = y * (1.5 - half * y * y)
        let s = x * y
        let root = s + (0.5 * y) * (x - s * s)
        return x == 0 ? 0 : root
    }
}
