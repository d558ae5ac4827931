import Foundation
import Testing
@testable import MagicInitCluster
@testable import MagicInitWire

/// cluster/PROTOCOL.md matches the code: its example bytes decode to the messages they are
/// said to be (and those encode back to the same bytes), its version is this build's, and
/// its message-type table names the codes the codec uses.
@Suite struct ProtocolDocumentTests {
    static func document() throws -> String {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("cluster/PROTOCOL.md")
        return try String(contentsOf: url, encoding: .utf8)
    }

    /// The fenced ```` ```wire NAME ```` blocks of the document, as bytes.
    static func examples(_ text: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        var name: String?, hex = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let current = name {
                if line.hasPrefix("```") {
                    out[current] = try hex.split(separator: " ").map { token in
                        guard let byte = UInt8(token, radix: 16) else { throw WireError.invalidValue(context: "PROTOCOL.md \(current)", message: "not hex: \(token)") }
                        return byte
                    }
                    name = nil; hex = ""
                } else {
                    hex += " " + line
                }
            } else if line.hasPrefix("```wire ") {
                name = String(line.dropFirst("```wire ".count))
            }
        }
        return out
    }

    static let expected: [String: WireEnvelope] = [
        "hello": WireEnvelope(runID: 0, message: .hello(host: "w1", threads: 2, capabilities: ["lz4"])),
        "request": WireEnvelope(runID: 7, message: .request(step: 4, kind: .measure(etaStep: 0, weightGradients: true), chunks: [0, 2], directiveCount: 9)),
        "reject": WireEnvelope(runID: 0, message: .reject(reason: "no")),
    ]

    @Test func test_documentExamples_decodeToTheNamedMessages_andEncodeBack() throws {
        let examples = try Self.examples(Self.document())
        #expect(Set(examples.keys) == Set(Self.expected.keys), "examples in PROTOCOL.md: \(examples.keys.sorted())")
        for (name, bytes) in examples {
            let envelope = try #require(Self.expected[name])
            #expect(try WireCodec.decode(bytes) == envelope, "PROTOCOL.md example '\(name)' decodes to something else")
            #expect(WireCodec.encode(envelope) == bytes, "the codec encodes '\(name)' differently from PROTOCOL.md")
        }
    }

    @Test func test_documentVersionAndTypeTable_matchTheCode() throws {
        let text = try Self.document()
        #expect(text.hasPrefix("# MagicInit wire protocol, version \(wireProtocolVersion)\n"))
        #expect(text.contains("| 2 | protocol version (UInt16) = \(wireProtocolVersion) "))
        // Rows `| code | name | direction | body |` of the message table.
        var table: [UInt8: String] = [:]
        for line in text.split(separator: "\n") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if cells.count >= 4, let code = UInt8(cells[0]), ["W→C", "C→W", "either"].contains(cells[2]) { table[code] = cells[1] }
        }
        let messages: [WireMessage] = [
            .hello(host: "", threads: 1, capabilities: []), .welcome(workerIndex: 0, heartbeatIntervalMilliseconds: 1, livenessHeartbeats: 1),
            .reject(reason: ""), .assign([]), .directives(first: 0, []),
            .request(step: 0, kind: .outputMoments(layer: ""), chunks: [], directiveCount: 0),
            .reply(step: 0, chunk: 0, uncompressedBytes: 0, payload: []), .heartbeat, .shutdown(reason: ""), .error(message: ""),
            .goodbye(peakResidentBytes: 0),
        ]
        for message in messages {
            #expect(table[message.typeCode] == message.name, "PROTOCOL.md lists type \(message.typeCode) as \(table[message.typeCode] ?? "nothing"), the code as \(message.name)")
        }
        #expect(table[4] == "configure")
        #expect(table.count == 12, "message table rows: \(table.sorted { $0.key < $1.key })")
    }
}
