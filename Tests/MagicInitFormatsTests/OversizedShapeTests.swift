import Foundation
import Testing
import MagicInitCore
@testable import MagicInitFormats

/// Sizes read from files are overflow-checked and bounded before anything is allocated
/// (issue 19, part 2): each file below trapped the coordinator (an `Int` overflow, exit 132)
/// or was misread; now each is refused with an error naming the file and the tensor, input
/// or layer.
@Suite struct OversizedShapeTests {
    /// A safetensors file with one F32 tensor entry (the JSON is written verbatim, so
    /// numbers beyond `Int` can be given).
    static func safetensors(shape: String, offsets: String, dataBytes: Int = 4) -> Data {
        let header = Array("{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":\(offsets)}}".utf8)
        var data = Data()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: header)
        data.append(Data(count: dataBytes))
        return data
    }

    @Test(arguments: [
        ("[1]", "[0, 9223372036854775807]", "data_offsets"),
        ("[4294967296, 4294967296]", "[0, 4]", "too large"),
        ("[4611686018427387904]", "[0, 4]", "too large"),
        // NSNumber.intValue wrapped 2⁶⁴ + 1 to 1 and read this as a tensor of shape (1).
        ("[18446744073709551617]", "[0, 4]", "bad shape"),
        ("[2.5]", "[0, 4]", "bad shape"),
        ("[1]", "[0, 18446744073709551620]", "bad data_offsets"),
    ])
    func test_safetensorsWithForgedSizes_refusedNamingFileAndTensor(shape: String, offsets: String, reason: String) throws {
        let error = thrownError(SafetensorsError.self) { _ = try Safetensors.parse(Self.safetensors(shape: shape, offsets: offsets), file: "w.safetensors") }
        let message = try #require(error, "shape \(shape), offsets \(offsets) was accepted").description
        #expect(message.contains("w.safetensors") && message.contains("conv1.weight") && message.contains(reason), "\(message)")
    }

    static func prototxt(dims: String, layers: String = "") -> String {
        """
        name: "big"
        input: "data"
        input_shape { dim: 1 \(dims) }
        layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 4 kernel_size: 3 } }
        \(layers)
        layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc" inner_product_param { num_output: 2 } }
        """
    }

    /// `input_shape` 3e9 × 3e9 parsed, and compiling it trapped in the inner product's fan-in
    /// (`Parameters.swift`); a convolution or pooling setting near `UInt32.max` overflowed
    /// the output-size formulas; an inner product's weight count overflowed.
    @Test(arguments: [
        ("dim: 3 dim: 3000000000 dim: 3000000000", "", "input 'data'"),
        ("dim: 3 dim: 8 dim: 8", """
            layer { name: "up" type: "Deconvolution" bottom: "conv1" top: "conv1" convolution_param { num_output: 4 kernel_size: 2 stride: 4294967295 } }
            """, "layer 'up': stride height"),
        ("dim: 3 dim: 8 dim: 8", """
            layer { name: "dil" type: "Convolution" bottom: "conv1" top: "conv1" convolution_param { num_output: 4 kernel_size: 4294967295 dilation: 4294967295 } }
            """, "layer 'dil': kernel height"),
        ("dim: 3 dim: 32768 dim: 32768", "", "parameter 'fc.weight'"),
    ])
    func test_prototxtWithHugeShapes_refusedNamingInputOrLayer(dims: String, layers: String, named: String) throws {
        let network = try Caffe.parsePrototxt(Self.prototxt(dims: dims, layers: layers), file: "big.prototxt").network
        let error = thrownError(GraphError.self) { _ = try Graph(network) }
        let message = try #require(error, "compiled").description
        #expect(message.contains(named) && message.contains("too large"), "\(message)")
    }

    /// A caffemodel blob claiming [2³², 2³²] is a shape mismatch naming the layer, not a
    /// multiplication.
    @Test func test_caffemodelBlobWithHugeShape_isShapeMismatch() throws {
        let network = try Caffe.parsePrototxt(Self.prototxt(dims: "dim: 3 dim: 8 dim: 8"), file: "n.prototxt").network
        let graph = try Graph(network)
        var net = Caffe_NetParameter()
        var layer = Caffe_LayerParameter()
        layer.name = "conv1"
        for dims in [[Int64(1) << 32, Int64(1) << 32], [4]] {
            var blob = Caffe_BlobProto()
            blob.shape.dim = dims
            layer.blobs.append(blob)
        }
        net.layer = [layer]
        let error = thrownError(CaffeError.self) { _ = try Caffe.weights(from: net, for: graph, file: "w.caffemodel") }
        #expect(error == .blobShapeMismatch(file: "w.caffemodel", layer: "conv1", blob: 0, expected: [4, 3, 3, 3], actual: [1 << 32, 1 << 32]))
    }

    /// ONNX initializer dims whose product overflows, and an input of 2³² × 2³² pixels.
    @Test func test_onnxWithHugeDims_refusedNamingTensorOrInput() throws {
        var weight = ONNXErrorTests.tensor("w", [2, 3, 3, 3])
        weight.dims = [1 << 32, 1 << 32, 3, 3]
        let forged = try ONNXErrorTests.model([ONNXErrorTests.node("Conv", ["x", "w"], ["y"], name: "conv")], [weight])
        let error = thrownError(ONNXError.self) { _ = try ONNXModel(serializedData: forged, file: "m.onnx") }
        let message = try #require(error, "accepted").description
        #expect(message.contains("m.onnx") && message.contains("(4294967296, 4294967296, 3, 3)"), "\(message)")

        let huge = try ONNXErrorTests.model([ONNXErrorTests.node("Relu", ["x"], ["y"], name: "relu")], inputDims: [1, 3, 1 << 32, 1 << 32])
        let inputError = thrownError(ONNXError.self) { _ = try ONNXModel(serializedData: huge, file: "m.onnx") }
        #expect(inputError?.description.contains("input 'x'") == true && inputError?.description.contains("elements") == true, "\(String(describing: inputError))")
    }
}
