import Foundation
import MagicInitCore
import MagicInitReference
import Testing

@Suite struct ElementwiseReferenceTests {
    @Test func test_relu_negativeSlope_scalesOnlyNegatives() {
        expectClose(Reference.relu([-2, -0.5, 0, 3]), [0, 0, 0, 3], tolerance: 0)
        expectClose(Reference.relu([-2, -0.5, 0, 3], negativeSlope: 0.1), [-0.2, -0.05, 0, 3], tolerance: 1e-16)
    }

    @Test func test_sigmoidAndTanh_atLogarithms_giveRationalValues() {
        // σ(ln 3) = 3/4, σ(0) = 1/2, σ(−ln 3) = 1/4; tanh(ln 2) = (4 − 1)/(4 + 1) = 3/5.
        expectClose(Reference.sigmoid([log(3.0), 0, -log(3.0)]), [0.75, 0.5, 0.25], tolerance: 1e-15)
        expectClose(Reference.tanh([log(2.0), 0, -log(2.0)]), [0.6, 0, -0.6], tolerance: 1e-15)
    }

    @Test func test_dropout_atInference_isIdentity() {
        #expect(Reference.dropout([1, -2, 3]) == [1, -2, 3])
    }

    @Test func test_softmax_ofLogWeights_givesNormalisedWeightsAlongAxis() {
        // Shape (1, 3, 2): along axis 1, column 0 holds ln(1, 2, 5) → (1, 2, 5)/8 and column
        // 1 holds (0, 0, 0) → 1/3 each.
        let x = [0, 0, log(2.0), 0, log(5.0), 0]
        let y = Reference.softmax(x, shape: [1, 3, 2], axis: 1)
        expectClose(y, [1.0 / 8, 1.0 / 3, 2.0 / 8, 1.0 / 3, 5.0 / 8, 1.0 / 3], tolerance: 1e-15)
    }

    @Test func test_softmax_largeInputs_isStableAndSumsToOne() {
        // Adding 1000 would overflow e^x without the max shift; the result must not change.
        let x = pattern(2 * 4 * 3, divisor: 2)
        let shape = [2, 4, 3]
        let shifted = Reference.softmax(x.map { $0 + 1000 }, shape: shape, axis: -2)
        expectClose(shifted, Reference.softmax(x, shape: shape, axis: 1), tolerance: 1e-15)
        for n in 0..<2 {
            for i in 0..<3 {
                let sum = (0..<4).reduce(0.0) { $0 + shifted[(n * 4 + $1) * 3 + i] }
                #expect(abs(sum - 1) <= 1e-15, "slice (\(n), :, \(i)) sums to \(sum)")
            }
        }
    }

    @Test func test_concat_channels_interleavesPerImage() {
        // a (2, 2, 1, 1), b (2, 1, 1, 1) along axis 1 → (2, 3, 1, 1): per image, a's then b's.
        let y = Reference.concat([[1, 2, 3, 4], [10, 20]], shapes: [[2, 2, 1, 1], [2, 1, 1, 1]], axis: 1)
        #expect(y == [1, 2, 10, 3, 4, 20])
    }

    @Test func test_concat_batchAndLastAxis() {
        #expect(Reference.concat([[1, 2], [3, 4, 5, 6]], shapes: [[1, 2], [2, 2]], axis: 0) == [1, 2, 3, 4, 5, 6])
        // (2, 1) and (2, 2) along the last axis (−1) → (2, 3).
        #expect(Reference.concat([[1, 2], [3, 4, 5, 6]], shapes: [[2, 1], [2, 2]], axis: -1) == [1, 3, 4, 2, 5, 6])
    }

    @Test func test_eltwise_sumWithCoefficients_productAndMax() {
        let a: [Double] = [1, -2, 3], b: [Double] = [4, 5, -6]
        #expect(Reference.eltwise([a, b], EltwiseParameters(operation: .sum)) == [5, 3, -3])
        #expect(Reference.eltwise([a, b], EltwiseParameters(operation: .sum, coefficients: [1, -0.5])) == [-1, -4.5, 6])
        #expect(Reference.eltwise([a, b, [2, 2, 2]], EltwiseParameters(operation: .product)) == [8, -20, -36])
        #expect(Reference.eltwise([a, b], EltwiseParameters(operation: .max)) == [4, 5, 3])
    }

    @Test func test_flattenAndReshape_keepRowMajorData() throws {
        let g = try graph(input: [2, 3], [
            Layer(name: "flat", kind: .flatten(axis: 1, endAxis: -1), bottoms: ["data"], tops: ["flat"]),
            Layer(name: "shape", kind: .reshape(shape: [0, 3, -1]), bottoms: ["flat"], tops: ["shape"]),
        ])
        let x = (0..<6).map(Double.init)
        let values = Reference.forward(g, inputs: [x], parameters: [:])
        #expect(g.blobs[g.blob(named: "flat")!].shape == [1, 6])
        #expect(g.blobs[g.blob(named: "shape")!].shape == [1, 3, 2])
        #expect(values[g.blob(named: "shape")!] == x)
    }
}
