import Foundation
import MagicInitCore
import MagicInitReference
import Testing

/// ``Reference/backward(_:values:parameters:topGradients:)`` against central differences.
@Suite struct BackwardReferenceTests {
    /// A small network of every kind the backward pass covers: a grouped, strided, padded
    /// convolution, ReLU (leaky and plain), max pooling with ceil overhang, a dilated
    /// convolution, average pooling with padding, dropout, flatten and an inner product.
    /// Inputs are irregular (no ties in the max windows, no ReLU input at 0), so the
    /// network is differentiable at them and the differences are exact up to O(h²).
    @Test func test_backward_convReluPoolingInnerProduct_matchesNumericalGradients() throws {
        let g = try graph(input: [4, 9, 9], batch: 2, [
            Layer(name: "conv1", kind: .convolution(.init(numOutput: 6, kernel: Size2(3), stride: Size2(2), pad: Size2(1), groups: 2)),
                  bottoms: ["data"], tops: ["conv1"]),
            Layer(name: "relu1", kind: .relu(negativeSlope: 0.1), bottoms: ["conv1"], tops: ["conv1"]),
            Layer(name: "pool1", kind: .pooling(.init(method: .max, kernel: Size2(2), stride: Size2(2))), bottoms: ["conv1"], tops: ["pool1"]),
            Layer(name: "conv2", kind: .convolution(.init(numOutput: 5, kernel: Size2(2), pad: Size2(1), dilation: Size2(2))),
                  bottoms: ["pool1"], tops: ["conv2"]),
            Layer(name: "relu2", kind: .relu(negativeSlope: 0), bottoms: ["conv2"], tops: ["conv2"]),
            Layer(name: "pool2", kind: .pooling(.init(method: .average, kernel: Size2(2), stride: Size2(1), pad: Size2(1))),
                  bottoms: ["conv2"], tops: ["pool2"]),
            Layer(name: "drop", kind: .dropout(ratio: 0.5), bottoms: ["pool2"], tops: ["pool2"]),
            Layer(name: "flat", kind: .flatten(axis: 1, endAxis: -1), bottoms: ["pool2"], tops: ["flat"]),
            Layer(name: "fc", kind: .innerProduct(.init(numOutput: 3)), bottoms: ["flat"], tops: ["fc"]),
        ])
        // Irrational-ish values: no two window entries tie, no ReLU input is 0.
        func irregular(_ count: Int, _ seed: Double) -> [Double] {
            (0..<count).map { (j: Int) -> Double in
                let t = Double(j)
                let a: Double = sin(t * 1.7 + seed) * 0.9
                return a + 0.05 * cos(t * 0.31)
            }
        }
        var parameters: [String: [Double]] = [:]
        for (i, spec) in g.parameters.enumerated() { parameters[spec.key] = irregular(spec.count, Double(i) + 0.3) }
        let x = irregular(2 * 4 * 9 * 9, 2.1)
        let out = g.blob(named: "fc")!
        let top = irregular(2 * 3, 0.7)
        let values = Reference.forward(g, inputs: [x], parameters: parameters)
        let analytic = Reference.backward(g, values: values, parameters: parameters, topGradients: [out: top])
        let numeric = Reference.numericalGradients(g, inputs: [x], parameters: parameters, topGradients: [out: top], step: 1e-6)
        expectClose(analytic.blobs[g.inputs[0]], numeric.inputs[0], tolerance: 1e-6, "∂L/∂x")
        for spec in g.parameters {
            expectClose(analytic.parameters[spec.key]!, numeric.parameters[spec.key]!, tolerance: 1e-6, "∂L/∂\(spec.key)")
        }
        // Not trivially zero.
        #expect(analytic.parameters["conv1.weight"]!.contains { abs($0) > 1e-3 })
    }
}
