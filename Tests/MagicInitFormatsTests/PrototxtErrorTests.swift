import Testing
import MagicInitCore
@testable import MagicInitFormats

@Suite struct PrototxtErrorTests {
    func parseError(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> CaffeError? {
        let error = thrownError(CaffeError.self) { _ = try Caffe.parsePrototxt(text, file: "net.prototxt") }
        if error == nil { Issue.record("expected a CaffeError", sourceLocation: sourceLocation) }
        return error
    }

    /// Two lines; what follows starts on line 3.
    static let header = """
    input: "data"
    input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }

    """

    @Test func test_missingBrace_namesFileAndOpeningPosition() throws {
        let text = Self.header + """
        layer {
          name: "conv1"
          type: "Convolution"
          convolution_param { num_output: 4 kernel_size: 3
        }
        """
        let error = try #require(parseError(text))
        guard case .syntax(let file, _, let message) = error else { Issue.record("got \(error)"); return }
        #expect(file == "net.prototxt")
        #expect(message.contains("'layer' opened at line 3, column 7"))
        #expect(error.description.hasPrefix("net.prototxt:"))
    }

    @Test func test_missingColon_namesLineAndColumn() throws {
        let error = try #require(parseError(Self.header + "layer {\n  name \"conv1\"\n}\n"))
        #expect(error == .syntax(file: "net.prototxt", position: TextPosition(line: 4, column: 8),
                                 message: "expected ':' or '{' after 'name'"))
        #expect(error.description.contains("net.prototxt:4:8"))
    }

    @Test func test_unterminatedString_namesPosition() throws {
        let error = try #require(parseError("name: \"abc\ninput: \"data\"\n"))
        #expect(error == .syntax(file: "net.prototxt", position: TextPosition(line: 1, column: 7), message: "unterminated string"))
    }

    @Test func test_misspelledField_isErrorWithPositionAndPath() throws {
        let text = Self.header + """
        layer {
          name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
          convolution_param { num_output: 4 kernal_size: 3 }
        }
        """
        let error = try #require(parseError(text))
        guard case .invalidField(_, let position, let field, let message) = error else { Issue.record("got \(error)"); return }
        #expect(position == TextPosition(line: 5, column: 37))
        #expect(field == "layer.convolution_param.kernal_size")
        #expect(message.contains("check the spelling"))
    }

    @Test func test_badEnumValue_isErrorWithPosition() throws {
        let text = Self.header + """
        layer { name: "p" type: "Pooling" bottom: "data" top: "p"
          pooling_param { pool: MAXIMUM kernel_size: 2 } }
        """
        let error = try #require(parseError(text))
        guard case .invalidField(_, let position, let field, let message) = error else { Issue.record("got \(error)"); return }
        #expect(position == TextPosition(line: 4, column: 19))
        #expect(field == "layer.pooling_param.pool")
        #expect(message.contains("pool: MAXIMUM"))
    }

    @Test func test_wrongValueType_isErrorWithPosition() throws {
        let error = try #require(parseError(Self.header + "layer { name: \"c\" type: \"Convolution\" convolution_param { num_output: \"four\" } }"))
        guard case .invalidField(_, let position, let field, _) = error else { Issue.record("got \(error)"); return }
        #expect(position?.line == 3)
        #expect(field == "layer.convolution_param.num_output")
    }

    @Test func test_unsupportedLayerType_namesLayerTypeAndSupportedList() throws {
        let text = Self.header + "layer { name: \"prelu1\" type: \"PReLU\" bottom: \"data\" top: \"data\" prelu_param { channel_shared: true } }"
        let error = try #require(parseError(text))
        guard case .unsupportedLayerType(let file, let layer, let type, let supported) = error else { Issue.record("got \(error)"); return }
        #expect(file == "net.prototxt" && layer == "prelu1" && type == "PReLU")
        #expect(supported.contains("Convolution") && supported.contains("Input"))
        #expect(error.description.contains("'prelu1'") && error.description.contains("'PReLU'") && error.description.contains("InnerProduct"))
    }

    @Test func test_lrnWithinChannel_isUnsupportedSetting() throws {
        let text = Self.header + "layer { name: \"norm\" type: \"LRN\" bottom: \"data\" top: \"norm\" lrn_param { norm_region: WITHIN_CHANNEL } }"
        let error = try #require(parseError(text))
        guard case .unsupportedSetting(_, let layer, let message) = error else { Issue.record("got \(error)"); return }
        #expect(layer == "norm")
        #expect(message.contains("WITHIN_CHANNEL"))
    }

    @Test func test_reshapeWithAxis_isUnsupportedSetting() throws {
        let text = Self.header + "layer { name: \"r\" type: \"Reshape\" bottom: \"data\" top: \"r\" reshape_param { shape { dim: -1 } axis: 1 } }"
        let error = try #require(parseError(text))
        guard case .unsupportedSetting(_, "r", let message) = error else { Issue.record("got \(error)"); return }
        #expect(message.contains("axis 1"))
    }

    @Test func test_dataLayerWithoutCrop_isMissingInputShape() throws {
        let text = "layer { name: \"d\" type: \"Data\" top: \"data\" top: \"label\" data_param { source: \"db\" } }"
        let error = try #require(parseError(text))
        guard case .missingInputShape(_, "data", let message) = error else { Issue.record("got \(error)"); return }
        #expect(message.contains("crop_size"))
    }

    @Test func test_noInput_isError() throws {
        let error = try #require(parseError("name: \"empty\""))
        #expect(error == .noInputs(file: "net.prototxt"))
    }

    @Test func test_inputDimCountMismatch_isError() throws {
        let error = try #require(parseError("input: \"data\"\ninput_dim: 1\ninput_dim: 3\n"))
        guard case .missingInputShape(_, "data", _) = error else { Issue.record("got \(error)"); return }
    }

    @Test func test_unreadableFile_isFormatError() {
        let error = thrownError(FormatError.self) { _ = try Caffe.readPrototxt(path: "/nonexistent/net.prototxt") }
        guard case .unreadable(let path, _)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(path == "/nonexistent/net.prototxt")
    }
}
