/// A 1-based line and column in a text file (columns count Unicode scalars).
public struct TextPosition: Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
    public var description: String { "line \(line), column \(column)" }
}

/// The structure of a protobuf text-format file (a Caffe prototxt), without a schema: field
/// names, where each entry starts and ends, and which entries are messages. swift-protobuf
/// decodes the values but reports no positions; this tree lets MagicInit say where a problem
/// is and skip fields its minimal schema leaves out.
///
/// Grammar (protobuf text format): `message := (field [,;])*`,
/// `field := name (':' value | [':'] '{' message '}')`, `value := scalar | string+ |
/// '[' values ']' | '{' message '}'`, `#` starts a comment; `<` `>` may replace `{` `}`.
struct PrototxtSyntax {
    struct Entry: Sendable {
        var name: String
        var position: TextPosition
        /// Byte offsets in the UTF-8 source, from the name to the end of the value.
        var range: Range<Int>
        /// The fields inside `{ }`; `nil` when the value is a scalar or a list.
        var children: [Entry]?
    }

    struct Failure: Error {
        var position: TextPosition
        var message: String
    }

    /// The top-level entries of `text`.
    /// - Throws: ``Failure`` with the position of the first syntax error.
    static func parse(_ text: String) throws(Failure) -> [Entry] {
        var parser = PrototxtSyntax(bytes: Array(text.utf8))
        let entries = try parser.message(closing: nil, opened: nil)
        return entries
    }

    // MARK: - Scanner

    private let bytes: [UInt8]
    private var offset = 0
    private var line = 1
    private var column = 1

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private var position: TextPosition { TextPosition(line: line, column: column) }

    private func fail(_ message: String, at position: TextPosition? = nil) -> Failure {
        Failure(position: position ?? self.position, message: message)
    }

    private mutating func advance() {
        if bytes[offset] == UInt8(ascii: "\n") {
            line += 1
            column = 1
        } else if bytes[offset] & 0xC0 != 0x80 {  // UTF-8 continuation bytes share a column
            column += 1
        }
        offset += 1
    }

    private mutating func skipSpaceAndComments() {
        while offset < bytes.count {
            let b = bytes[offset]
            if b == UInt8(ascii: "#") {
                while offset < bytes.count && bytes[offset] != UInt8(ascii: "\n") { advance() }
            } else if b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0B || b == 0x0C {
                advance()
            } else {
                return
            }
        }
    }

    private var peek: UInt8? { offset < bytes.count ? bytes[offset] : nil }

    private static let punctuation = Set("{}<>[]:,;\"'#".utf8)

    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (0x09...0x0D).contains(b) }

    /// A bare word: an identifier, a number, `-inf`, an enum value.
    private mutating func word() -> String? {
        let start = offset
        while let b = peek, !Self.punctuation.contains(b), !Self.isSpace(b) { advance() }
        return start == offset ? nil : String(decoding: bytes[start..<offset], as: UTF8.self)
    }

    /// A quoted string (the quotes and escapes are left to swift-protobuf).
    private mutating func quoted() throws(Failure) {
        let start = position
        let quote = bytes[offset]
        advance()
        while let b = peek {
            if b == UInt8(ascii: "\n") { break }
            if b == UInt8(ascii: "\\") {
                advance()
                if peek != nil { advance() }
                continue
            }
            advance()
            if b == quote { return }
        }
        throw fail("unterminated string", at: start)
    }

    // MARK: - Parser

    /// Fields until `closing` (or the end of the text when `closing` is nil).
    private mutating func message(closing: UInt8?, opened: (name: String, at: TextPosition)?) throws(Failure) -> [Entry] {
        var entries: [Entry] = []
        while true {
            skipSpaceAndComments()
            guard let b = peek else {
                if let opened {
                    throw fail("missing '\(Character(Unicode.Scalar(closing!)))' to close '\(opened.name)' opened at \(opened.at)")
                }
                return entries
            }
            if let closing, b == closing {
                advance()
                return entries
            }
            if b == UInt8(ascii: "}") || b == UInt8(ascii: ">") {
                throw fail("unexpected '\(Character(Unicode.Scalar(b)))' with no open block")
            }
            entries.append(try field())
            skipSpaceAndComments()
            if peek == UInt8(ascii: ",") || peek == UInt8(ascii: ";") { advance() }
        }
    }

    private mutating func field() throws(Failure) -> Entry {
        let start = offset
        let at = position
        if peek == UInt8(ascii: "[") {
            throw fail("extension and Any fields ('[...]') are not supported in a prototxt")
        }
        guard let name = word() else {
            throw fail("expected a field name, found '\(Character(Unicode.Scalar(peek!)))'")
        }
        guard name.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }),
              let first = name.utf8.first, !(0x30...0x39).contains(first) else {
            throw fail("'\(name)' is not a field name", at: at)
        }
        skipSpaceAndComments()
        var sawColon = false
        if peek == UInt8(ascii: ":") {
            sawColon = true
            advance()
            skipSpaceAndComments()
        }
        guard let b = peek else { throw fail("expected a value for '\(name)', found the end of the file") }
        if b == UInt8(ascii: "{") || b == UInt8(ascii: "<") {
            let closing = b == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: ">")
            let openedAt = position
            advance()
            let children = try message(closing: closing, opened: (name, openedAt))
            return Entry(name: name, position: at, range: start..<offset, children: children)
        }
        guard sawColon else { throw fail("expected ':' or '{' after '\(name)'") }
        if b == UInt8(ascii: "[") {
            try list(name)
        } else {
            try scalar(name)
        }
        return Entry(name: name, position: at, range: start..<offset, children: nil)
    }

    private mutating func scalar(_ name: String) throws(Failure) {
        guard let b = peek else { throw fail("expected a value for '\(name)'") }
        if b == UInt8(ascii: "\"") || b == UInt8(ascii: "'") {
            // Adjacent strings concatenate.
            repeat {
                try quoted()
                skipSpaceAndComments()
            } while peek == UInt8(ascii: "\"") || peek == UInt8(ascii: "'")
            return
        }
        guard word() != nil else {
            throw fail("expected a value for '\(name)', found '\(Character(Unicode.Scalar(b)))'")
        }
    }

    private mutating func list(_ name: String) throws(Failure) {
        let openedAt = position
        advance()
        skipSpaceAndComments()
        if peek == UInt8(ascii: "]") { advance(); return }
        while true {
            skipSpaceAndComments()
            guard let b = peek else { throw fail("missing ']' to close the list of '\(name)' opened at \(openedAt)") }
            if b == UInt8(ascii: "{") || b == UInt8(ascii: "<") {
                let closing = b == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: ">")
                let at = position
                advance()
                _ = try message(closing: closing, opened: (name, at))
            } else {
                try scalar(name)
            }
            skipSpaceAndComments()
            if peek == UInt8(ascii: ",") { advance(); continue }
            if peek == UInt8(ascii: "]") { advance(); return }
            throw fail("expected ',' or ']' in the list of '\(name)' opened at \(openedAt)")
        }
    }
}
