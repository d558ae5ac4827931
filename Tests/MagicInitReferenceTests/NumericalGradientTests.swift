import Foundation
import MagicInitCore
import MagicInitReference
import Testing

@Suite struct NumericalGradientTests {
    @Test func test_numericalGradients_innerProduct_matchAnalyticGradients() throws {
        // y = W x + b, L = ⟨g, y⟩: ∂L/∂x[n, i] = Σ_o g[n, o] W[o, i], ∂L/∂W[o, i] = Σ_n g[n, o] x[n, i],
        // ∂L/∂b[o] = Σ_n g[n, o]. L is linear, so central differences are exact up to rounding.
        let (n, i, o) = (3, 5, 4)
        let g = try graph(input: [i], batch: n, [
            Layer(name: "fc", kind: .innerProduct(.init(numOutput: o)), bottoms: ["data"], tops: ["fc"]),
        ])
        let x = pattern(n * i, divisor: 3)
        let w = pattern(o * i, multiplier: 5, modulus: 9, offset: 4, divisor: 2)
        let top = pattern(n * o, multiplier: 3, modulus: 7, offset: 3)
        let gradients = Reference.numericalGradients(g, inputs: [x], parameters: ["fc.weight": w, "fc.bias": [1, 2, 3, 4]],
                                                     topGradients: [g.blob(named: "fc")!: top])

        var dx = [Double](repeating: 0, count: n * i), dw = [Double](repeating: 0, count: o * i)
        var db = [Double](repeating: 0, count: o)
        for image in 0..<n {
            for out in 0..<o {
                db[out] += top[image * o + out]
                for f in 0..<i {
                    dx[image * i + f] += top[image * o + out] * w[out * i + f]
                    dw[out * i + f] += top[image * o + out] * x[image * i + f]
                }
            }
        }
        expectClose(gradients.inputs[0], dx, tolerance: 1e-8, "∂L/∂x")
        expectClose(gradients.parameters["fc.weight"]!, dw, tolerance: 1e-8, "∂L/∂W")
        expectClose(gradients.parameters["fc.bias"]!, db, tolerance: 1e-8, "∂L/∂b")
    }

    @Test(.timeLimit(.minutes(1)))
    func test_numericalGradients_convolutionInput_equalsDeconvolutionOfTopGradient() throws {
        // The input gradient of a convolution is the deconvolution (its adjoint) of the top
        // gradient with the same weights: the brief's size, (2, 4, 7, 7) → 6 outputs, k 3.
        let p = ConvolutionParameters(numOutput: 6, kernel: Size2(3), groups: 2)
        let g = try graph(input: [4, 7, 7], batch: 2, [Layer(name: "conv", kind: .convolution(p), bottoms: ["data"], tops: ["conv"])])
        let x = pattern(2 * 4 * 7 * 7, divisor: 4)
        let w = pattern(6 * 2 * 3 * 3, multiplier: 5, modulus: 9, offset: 4, divisor: 2)
        let top = pattern(2 * 6 * 5 * 5, multiplier: 3, modulus: 7, offset: 3)
        let start = Date()
        let gradients = Reference.numericalGradients(g, inputs: [x], parameters: ["conv.weight": w, "conv.bias": pattern(6)],
                                                     topGradients: [g.blob(named: "conv")!: top])
        print("[reference] conv numerical gradients (\(x.count) inputs, \(w.count + 6) parameters) took \(Date().timeIntervalSince(start)) s")

        var deconv = p
        deconv.numOutput = 4
        deconv.biasTerm = false
        let adjoint = Reference.deconvolution(top, shape: [2, 6, 5, 5], weight: w, bias: nil, deconv)
        expectClose(gradients.inputs[0], adjoint, tolerance: 1e-7, "∂L/∂x")
        // ∂L/∂b[o] = Σ over images and positions of the top gradient of channel o.
        let db = (0..<6).map { o in (0..<2).reduce(0.0) { sum, n in sum + top[((n * 6 + o) * 25)..<((n * 6 + o + 1) * 25)].reduce(0, +) } }
        expectClose(gradients.parameters["conv.bias"]!, db, tolerance: 1e-7, "∂L/∂b")
    }

    @Test func test_numericalGradients_smoothChain_matchesChainRule() throws {
        // y = tanh(s·x) per channel (Scale then TanH); ∂L/∂x = g·s·(1 − y²), ∂L/∂s = Σ g·x·(1 − y²).
        let g = try graph(input: [2, 3], [
            Layer(name: "scale", kind: .scale(bias: false), bottoms: ["data"], tops: ["scaled"]),
            Layer(name: "tanh", kind: .tanh, bottoms: ["scaled"], tops: ["out"]),
        ])
        let x: [Double] = [0.5, -1, 0.25, 2, -0.75, 0.1]
        let s: [Double] = [0.8, -0.3]
        let top: [Double] = [1, -2, 0.5, 1, 3, -1]
        let gradients = Reference.numericalGradients(g, inputs: [x], parameters: ["scale.weight": s],
                                                     topGradients: [g.blob(named: "out")!: top])
        var dx: [Double] = [], ds: [Double] = [0, 0]
        for j in 0..<6 {
            let c = j / 3
            let y = Foundation.tanh(s[c] * x[j])
            dx.append(top[j] * s[c] * (1 - y * y))
            ds[c] += top[j] * x[j] * (1 - y * y)
        }
        expectClose(gradients.inputs[0], dx, tolerance: 1e-9, "∂L/∂x")
        expectClose(gradients.parameters["scale.weight"]!, ds, tolerance: 1e-9, "∂L/∂s")
    }

    @Test func test_numericalGradients_blobsOutsideTopGradients_contributeNothing() throws {
        // Two heads on one input; only head `a` is weighted, so head `b`'s parameters get 0
        // and an input weighted directly gets its own top gradient added.
        let g = try graph(input: [2], [
            Layer(name: "a", kind: .innerProduct(.init(numOutput: 1, biasTerm: false)), bottoms: ["data"], tops: ["a"]),
            Layer(name: "b", kind: .innerProduct(.init(numOutput: 1, biasTerm: false)), bottoms: ["data"], tops: ["b"]),
        ])
        let gradients = Reference.numericalGradients(
            g, inputs: [[1, 2]], parameters: ["a.weight": [3, 4], "b.weight": [5, 6]],
            topGradients: [g.blob(named: "a")!: [2], g.inputs[0]: [10, 100]])
        expectClose(gradients.parameters["b.weight"]!, [0, 0], tolerance: 0, "∂L/∂W_b")
        expectClose(gradients.parameters["a.weight"]!, [2, 4], tolerance: 1e-9, "∂L/∂W_a")
        expectClose(gradients.inputs[0], [16, 108], tolerance: 1e-8, "∂L/∂x")
    }
}
