import Testing
import MagicInitCore

@Suite struct ShapeInferenceTests {
    func pool(_ input: Int, _ kernel: Int, _ stride: Int, pad: Int = 0, _ mode: PoolingParameters.RoundMode = .ceil) -> Int {
        ShapeInference.poolingOutput(input, kernel: kernel, stride: stride, pad: pad, roundMode: mode, anyPad: pad > 0)
    }

    @Test func test_poolingOutput_caffeNetPool5_k3s2_on13_gives6() {
        #expect(pool(13, 3, 2) == 6)
        #expect(pool(13, 3, 2, .floor) == 6)
        #expect(pool(55, 3, 2) == 27)
    }

    @Test func test_poolingOutput_ceilKeepsOverhangingWindow_floorDropsIt() {
        #expect(pool(6, 3, 2) == 3)
        #expect(pool(6, 3, 2, .floor) == 2)
    }

    @Test func test_poolingOutput_withPad_clipRuleDropsWindowStartingInPadding() {
        // H 4, k 2, s 3, p 1: ⌈(4 + 2 − 2)/3⌉ + 1 = 3, but the third window would start at
        // 2·3 − 1 = 5 ≥ H, inside the padding: (3 − 1)·3 = 6 ≥ H + p = 5 → 2.
        #expect(pool(4, 2, 3, pad: 1) == 2)
        // H 4, k 3, s 2, p 1: ⌈3/2⌉ + 1 = 3 and (3 − 1)·2 = 4 < 5: kept.
        #expect(pool(4, 3, 2, pad: 1) == 3)
        // The rule is Caffe's and only applies with padding: the same geometry without
        // padding, H 5, k 2, s 3 → ⌈3/3⌉ + 1 = 2.
        #expect(pool(5, 2, 3) == 2)
    }

    @Test func test_poolingOutput_kernelLargerThanInput_roundsLikeCaffeAndPyTorch() {
        // Caffe: ⌈(1 − 3)/2⌉ + 1 = −1 + 1 = 0; truncating division would give 1.
        #expect(pool(1, 3, 2) == 0)
        // PyTorch floor: ⌊(2 − 3)/2⌋ + 1 = 0; Caffe's ceil accepts it: ⌈−1/2⌉ + 1 = 1.
        #expect(pool(2, 3, 2, .floor) == 0)
        #expect(pool(2, 3, 2) == 1)
    }

    @Test func test_globalPooling_givesOnePixelPerChannel() throws {
        let layer = Layer(name: "gap", kind: .pooling(.init(method: .average, kernel: Size2(3), stride: Size2(2), global: true)),
                          bottoms: ["x"], tops: ["gap"])
        #expect(try ShapeInference.outputShapes(of: layer, bottoms: [[2, 8, 7, 5]]) == [[2, 8, 1, 1]])
        let window = ShapeInference.poolingWindow(.init(method: .max, global: true), input: [2, 8, 7, 5])
        #expect(window.kernel == Size2(7, 5) && window.stride == Size2(1) && window.pad == Size2(0))
    }

    @Test func test_convolutionAndDeconvolution_outputSizes_areInverse() {
        // H 7, k 3, s 2, p 1, d 2: ⌊(7 + 2 − 4 − 1)/2⌋ + 1 = 3; deconv: 2·2 + 4 + 1 − 2 = 7.
        #expect(ShapeInference.convolutionOutput(7, kernel: 3, stride: 2, pad: 1, dilation: 2) == 3)
        #expect(ShapeInference.deconvolutionOutput(3, kernel: 3, stride: 2, pad: 1, dilation: 2) == 7)
        #expect(ShapeInference.convolutionOutput(227, kernel: 11, stride: 4, pad: 0, dilation: 1) == 55)
    }

    @Test func test_flattenReshapeAndInnerProduct_shapes() throws {
        func shape(_ kind: LayerKind, _ bottom: [Int]) throws -> [Int] {
            try ShapeInference.outputShapes(of: Layer(name: "l", kind: kind, bottoms: ["x"], tops: ["y"]), bottoms: [bottom])[0]
        }
        #expect(try shape(.flatten(axis: 1, endAxis: -1), [2, 3, 4, 5]) == [2, 60])
        #expect(try shape(.flatten(axis: 2, endAxis: 3), [2, 3, 4, 5]) == [2, 3, 20])
        #expect(try shape(.reshape(shape: [0, -1, 2]), [2, 3, 4, 5]) == [2, 30, 2])
        #expect(try shape(.innerProduct(.init(numOutput: 7)), [2, 3, 4, 5]) == [2, 7])
        #expect(throws: GraphError.self) { try shape(.reshape(shape: [0, 7]), [2, 3, 4, 5]) }
    }
}
