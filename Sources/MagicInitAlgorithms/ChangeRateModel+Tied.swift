import CLapacke
import Foundation

extension ChangeRateModel {
    /// Balances the model's change rates when residual sums tie factors together
    /// (``ChannelScales/tiedClass``): Levenberg–Marquardt on the log-factors of the free
    /// classes, minimising `Σ_k (log C_k − mean_k log C_k)²` (docs/DESIGN.md §2, "Residual
    /// sums and normalisation"). In log space a layer's rate is linear in the factors when
    /// each of its inputs carries one factor (`log C_k = b_k + 2 log s_k − 2 log R_k`), so a
    /// step is exact up to the per-channel mixing of a concat; the Jacobian is taken by
    /// central differences on the model (two rate evaluations per class) and each damped
    /// least-squares step solved with LAPACK `dgels`.
    ///
    /// Steps until every `|C_k / C̄ − 1| ≤ tolerance`, `maxSteps` accepted steps, or no step
    /// lowers the residual; returns the factors of the smallest spread seen (tied; pinned
    /// classes stay 1).
    /// - Throws: ``AlgorithmError/vanishingChangeRate(layer:)`` when a rate at the start is
    ///   0 or not finite.
    func solveTied(from start: [Double], tolerance: Double, maxSteps: Int) throws -> Solution {
        let tied = scales.tiedClass
        let classes = Array(Set(tied.compactMap { $0 })).sorted()
        let column = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        let layers = tied.count
        // Log-factors of the free classes, from the (tied) start.
        let tiedStart = scales.tie(start)
        var x = classes.map { log(tiedStart[$0]) }
        func factors(_ x: [Double]) -> [Double] { tied.map { $0.map { exp(x[column[$0]!]) } ?? 1 } }
        func residuals(_ x: [Double]) -> [Double]? {
            let c = rates(factors: factors(x))
            guard c.allSatisfy({ $0 > 0 && $0.isFinite }) else { return nil }
            let logs = c.map { log($0) }
            let mean = logs.reduce(0, +) / Double(layers)
            return logs.map { $0 - mean }
        }
        let startRates = rates(factors: factors(x))
        if let bad = startRates.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw AlgorithmError.vanishingChangeRate(layer: measurement.layers[bad].layer)
        }
        func solution(_ x: [Double], steps: Int) -> Solution {
            let f = factors(x), c = rates(factors: f)
            let mean = ChangeRateModel.geometricMean(c)
            return Solution(factors: f, steps: steps, converged: c.allSatisfy { abs($0 / mean - 1) <= tolerance }, rates: c)
        }
        var best = solution(x, steps: 0)
        guard !classes.isEmpty else { return best }
        var r = residuals(x)!
        var cost = r.reduce(0) { $0 + $1 * $1 }
        var lambda = 1e-3
        var steps = 0
        let h = 1e-4
        while steps < maxSteps && !best.converged {
            // Jacobian (layers × classes), row-major, by central differences.
            var jacobian = [Double](repeating: 0, count: layers * classes.count)
            for g in classes.indices {
                var up = x, down = x
                up[g] += h
                down[g] -= h
                guard let ru = residuals(up), let rd = residuals(down) else { return best }
                for k in 0..<layers { jacobian[k * classes.count + g] = (ru[k] - rd[k]) / (2 * h) }
            }
            var improved = false
            while lambda < 1e12 {
                guard let delta = ChangeRateModel.dampedLeastSquares(jacobian, rows: layers, columns: classes.count,
                                                                     rhs: r.map { -$0 }, damping: lambda) else { return best }
                let candidate = zip(x, delta).map(+)
                if let rc = residuals(candidate), case let c = rc.reduce(0, { $0 + $1 * $1 }), c < cost {
                    (x, r, cost) = (candidate, rc, c)
                    lambda = max(lambda / 10, 1e-12)
                    improved = true
                    break
                }
                lambda *= 10
            }
            guard improved else { break }
            steps += 1
            let next = solution(x, steps: steps)
            let spread = (next.rates.max() ?? 1) / (next.rates.min() ?? 1)
            if spread < (best.rates.max() ?? 1) / (best.rates.min() ?? 1) || next.converged { best = next }
        }
        best.steps = steps
        return best
    }

    /// `argmin_δ ‖J δ − rhs‖² + damping ‖δ‖²` for a row-major `rows × columns` `J`, by LAPACK
    /// `dgels` on `[J; √damping I]`; `nil` if LAPACK reports a rank-deficient system.
    static func dampedLeastSquares(_ jacobian: [Double], rows: Int, columns: Int, rhs: [Double], damping: Double) -> [Double]? {
        let m = rows + columns
        var a = jacobian + [Double](repeating: 0, count: columns * columns)
        for i in 0..<columns { a[(rows + i) * columns + i] = damping.squareRoot() }
        var b = rhs + [Double](repeating: 0, count: columns)
        let info = LAPACKE_dgels(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), Int32(m), Int32(columns), 1,
                                 &a, Int32(columns), &b, 1)
        guard info == 0 else { return nil }
        return Array(b.prefix(columns))
    }
}
