import Foundation
import Testing
import MagicInitCore
@testable import MagicInitFormats

/// The third-party MobileNetV3-style model (see Fixtures/CREDITS.md).
@Suite struct RealModelTests {
    static let mobileNet = Fixture.path("mobilenetv3-textline-cls.onnx")

    @Test func test_mobileNet_isRejectedListingEveryOperatorTheIRLacks() throws {
        let error = thrownError(ONNXError.self) {
            _ = try ONNXModel(path: Self.mobileNet, options: ONNXImportOptions(inputShapes: ["x": [3, 48, 192]]))
        }
        guard case .unsupportedOperators(let file, let ops, _)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(file == Self.mobileNet)
        #expect(ops.map(\.opType) == ["Clip", "Div", "HardSigmoid", "Shape", "Cast", "Slice"])
        #expect(ops.first { $0.opType == "Clip" }?.nodes.count == 18)
        #expect(ops.first { $0.opType == "HardSigmoid" }?.nodes.count == 9)
        #expect(ops.first { $0.opType == "Cast" }?.nodes.count == 3)
    }

    @Test func test_mobileNet_schemaReadsConstantNodeWeights_andReserializesByteForByte() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.mobileNet))
        let proto = try Onnx_ModelProto(serializedBytes: bytes)
        #expect(try proto.serializedBytes() == bytes)
        #expect(proto.graph.initializer.isEmpty)
        let weights = proto.graph.node.filter { $0.opType == "Constant" && $0.attribute.first?.t.dims.count == 4 }
        #expect(weights.count == 53)
        let values = try weights.map { try ONNXTensorData.floats($0.attribute[0].t) }
        #expect(values.reduce(0) { $0 + $1.count } == 123_672)
        #expect(weights[0].output == ["conv12_expand_weights"])
        #expect(abs(values[0][0] - 0.06517006) < 1e-7)
    }
}
