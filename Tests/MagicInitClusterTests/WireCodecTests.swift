import Foundation
import Testing
import MagicInitAlgorithms
@testable import MagicInitCluster
import MagicInitCore
@testable import MagicInitWire

/// The wire codec round-trips every message and rejects malformed ones with a reason.
@Suite struct WireCodecTests {
    static let prototxt = """
        name: "tiny"
        input: "data"
        input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
        layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
                convolution_param { num_output: 4 kernel_size: 3 } }
        layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
        layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc" inner_product_param { num_output: 2 } }
        """

    static let messages: [WireMessage] = [
        .hello(host: "h", threads: 2, capabilities: ["lz4"]),
        .welcome(workerIndex: 3, heartbeatIntervalMilliseconds: 1000, livenessHeartbeats: 10),
        .configure(RunConfiguration(model: .caffePrototxt(text: prototxt), chunkSize: 4, seed: 9, inputShape: [3, 8, 8],
                                    bgr: true, mean: [104, 117, 123], std: [1, 1, 1], centerCrop: true, keepAffineInputs: true)),
        .configure(RunConfiguration(model: .onnx(bytes: [1, 2, 3]), chunkSize: 4, seed: 9, inputShape: [3, 8, 8],
                                    bgr: false, mean: [1, 2, 3], std: [4, 5, 6], centerCrop: false)),
        .assign([ChunkAssignment(index: 2, firstImage: 8, images: [.init(name: "a.jpg", bytes: [0xFF, 0xD8, 0xFF])])]),
        .directives(first: 5, [.gaussian(layer: "conv1", seed: 1, std: 1),
                               .redrawRows(layer: "conv1", rows: [0, 2], seed: 1, std: 1, attempt: 2),
                               .affine(layer: "fc", rowScale: [1, 2], columnScale: [0.5], shift: [0.1, 0.2]),
                               .normalize(layer: "conv1", scale: [0.25, 4], shift: [-0.1, 0.3]),
                               .set(key: "fc.bias", value: Tensor(shape: [2], data: [1, -1]))]),
        .request(step: 4, kind: .outputMoments(layer: "conv1"), chunks: [0, 1], directiveCount: 9),
        .request(step: 5, kind: .measure(etaStep: 0, weightGradients: true), chunks: [3], directiveCount: 9),
        .reply(step: 4, chunk: 1, uncompressedBytes: 10, payload: [9, 8, 7]),
        .heartbeat, .shutdown(reason: "done"), .error(message: "layer x"), .goodbye(peakResidentBytes: 123),
        .assign([ChunkAssignment(index: 0, firstImage: 0, inputs: .tensor(Tensor(shape: [2, 1, 2, 2], data: [1, -2, 3.5, 0, -0, .leastNonzeroMagnitude, 7, 8]))),
                 ChunkAssignment(index: 1, firstImage: 2, images: [])]),
    ]

    @Test func test_everyMessage_roundTripsExactly() throws {
        for message in Self.messages {
            let envelope = WireEnvelope(runID: 77, message: message)
            #expect(try WireCodec.decode(WireCodec.encode(envelope)) == envelope, "\(message.name) did not round-trip")
        }
    }

    /// A tensor chunk whose shape does not hold its values, or is not `(n, C, H, W)`, is
    /// refused with the message named.
    @Test func test_tensorChunkWithLyingShape_rejected() throws {
        for shape in [[2, 1, 2, 3], [8], [0, 1, 2, 4], [1, 1, 1, Int.max]] {
            var w = WireWriter()
            w.u8(0x4D); w.u8(0x49); w.u16(wireProtocolVersion); w.u8(5); w.u64(1)
            w.u64(1); w.int(0); w.int(0); w.u8(2); w.ints(shape); w.floats([Float](repeating: 1, count: 8))
            #expect(throws: WireError.invalidValue(context: "assign", message: "input tensor of shape \(shape) with 8 values")) {
                try WireCodec.decode(w.bytes)
            }
        }
    }

    @Test func test_malformedMessages_rejectedWithReason() throws {
        let good = WireCodec.encode(WireEnvelope(runID: 1, message: Self.messages[5]))
        #expect(throws: WireError.badMagic(got: [0, 0])) { try WireCodec.decode([0, 0] + good.dropFirst(2)) }
        var wrongVersion = good
        wrongVersion[2] = 9
        #expect(throws: WireError.unsupportedVersion(got: 9, expected: wireProtocolVersion)) { try WireCodec.decode(wrongVersion) }
        var unknownType = good
        unknownType[4] = 200
        #expect(throws: WireError.unknownType(200)) { try WireCodec.decode(unknownType) }
        // Every truncation is an error, never a crash.
        for length in stride(from: 0, to: good.count, by: 7) {
            #expect(throws: (any Error).self) { try WireCodec.decode(Array(good.prefix(length))) }
        }
        #expect(throws: (any Error).self) { try WireCodec.decode(good + [0]) }
        // A length field claiming more than is there is refused before allocating.
        var huge = WireCodec.encode(WireEnvelope(runID: 1, message: .shutdown(reason: "x")))
        for i in 13..<21 { huge[i] = 0xFF }
        #expect(throws: (any Error).self) { try WireCodec.decode(huge) }
    }

    @Test func test_prototxtModel_buildsTheSameNetworkOnAWorker() throws {
        let network = try RunConfiguration.Model.caffePrototxt(text: Self.prototxt).network()
        let graph = try Graph(network)
        #expect(graph.nodes.map(\.name) == ["conv1", "relu1", "fc"])
        let count: Int = graph.parameters.reduce(0) { $0 + $1.count }
        let expected: Int = 4 * 27 + 4 + 2 * 4 * 36 + 2  // conv1 (4·3·3·3 + 4), fc (2·4·6·6 + 2)
        #expect(count == expected)
    }
}
