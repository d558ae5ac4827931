import SwiftProtobuf

/// Decodes a prototxt into a `Caffe_NetParameter` with swift-protobuf, adding what
/// swift-protobuf does not give: the position of a syntax error or a bad field, and the
/// skipping of fields Caffe knows but MagicInit's minimal schema leaves out.
///
/// Fast path: a strict decode of the whole text. Only when that fails is the text parsed
/// into a ``PrototxtSyntax`` tree and every entry decoded on its own, wrapped in its parent
/// fields (`layer { convolution_param { kernel_size: 3 } }`), which finds the offending
/// entry without knowing the schema's types.
/// - Complexity: O(entries × depth) small decodes on the slow path.
enum PrototxtDecoding {
    struct Result {
        var net: Caffe_NetParameter
        /// Dotted paths of skipped fields (`layer.convolution_param.weight_filler`), with
        /// repetitions, in file order.
        var skippedFields: [String]
    }

    static func decode(_ text: String, file: String) throws(CaffeError) -> Result {
        if let net = try? Caffe_NetParameter(textFormatString: text) {
            return Result(net: net, skippedFields: [])
        }
        let entries: [PrototxtSyntax.Entry]
        do {
            entries = try PrototxtSyntax.parse(text)
        } catch {
            throw CaffeError.syntax(file: file, position: error.position, message: error.message)
        }
        let source = Array(text.utf8)
        var removals: [Range<Int>] = []
        var skipped: [String] = []
        try check(entries, path: [], source: source, file: file, removals: &removals, skipped: &skipped)

        var cleaned = [UInt8]()
        cleaned.reserveCapacity(source.count)
        var cursor = 0
        for range in removals.sorted(by: { $0.lowerBound < $1.lowerBound }) where range.lowerBound >= cursor {
            cleaned += source[cursor..<range.lowerBound]
            cleaned.append(0x20)
            cursor = range.upperBound
        }
        cleaned += source[cursor...]
        do {
            let net = try Caffe_NetParameter(textFormatString: String(decoding: cleaned, as: UTF8.self))
            return Result(net: net, skippedFields: skipped)
        } catch {
            throw CaffeError.invalidField(file: file, position: nil, field: "(file)", message: explain(error))
        }
    }

    private static func check(_ entries: [PrototxtSyntax.Entry], path: [String], source: [UInt8], file: String,
                              removals: inout [Range<Int>], skipped: inout [String]) throws(CaffeError) {
        for entry in entries {
            let text = String(decoding: source[entry.range], as: UTF8.self)
            let probe = entry.children == nil ? text : "\(entry.name) {}"
            let wrapped = path.reversed().reduce(probe) { inner, name in "\(name) { \(inner) }" }
            do {
                _ = try Caffe_NetParameter(textFormatString: wrapped)
            } catch TextFormatDecodingError.unknownField {
                let dotted = (path + [entry.name]).joined(separator: ".")
                guard CaffeKnownFields.names.contains(entry.name) else {
                    let place = path.last.map { " in '\($0)'" } ?? " at the top level"
                    throw CaffeError.invalidField(file: file, position: entry.position, field: dotted,
                                                  message: "Caffe has no field '\(entry.name)'\(place); check the spelling")
                }
                removals.append(entry.range)
                skipped.append(dotted)
                continue
            } catch {
                let shown = entry.children == nil ? "'\(text)': " : ""
                throw CaffeError.invalidField(file: file, position: entry.position,
                                              field: (path + [entry.name]).joined(separator: "."),
                                              message: shown + explain(error))
            }
            if let children = entry.children {
                try check(children, path: path + [entry.name], source: source, file: file,
                          removals: &removals, skipped: &skipped)
            }
        }
    }

    /// A sentence for a swift-protobuf decoding error.
    static func explain(_ error: Error) -> String {
        guard let error = error as? TextFormatDecodingError else { return "\(error)" }
        switch error {
        case .malformedText: return "malformed value"
        case .malformedNumber: return "not a number, or out of range for the field"
        case .trailingGarbage: return "unexpected text after the value"
        case .truncated: return "the text ends inside a value"
        case .invalidUTF8: return "invalid UTF-8"
        case .schemaMismatch: return "the value does not match the field's type (a message needs { }, a number or name needs ':')"
        case .unknownField: return "unknown field"
        case .unrecognizedEnumValue: return "not one of the field's enum values"
        case .conflictingOneOf: return "conflicting values"
        case .messageDepthLimit: return "nested too deeply"
        default: return "\(error)"
        }
    }
}
