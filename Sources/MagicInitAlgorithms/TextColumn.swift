/// A left-aligned column of a text table, as wide as its widest entry (header included), so
/// names are never cut and the columns after it stay aligned whatever their length. Every
/// table MagicInit prints (the report, `--verify`, `--verify-images`) lays out its name
/// columns with it.
public struct TextColumn: Sendable {
    /// Characters (extended grapheme clusters) of the widest entry.
    public let width: Int

    /// - Parameters:
    ///   - header: the column's title.
    ///   - entries: every value the column will show.
    public init(header: String, entries: [String]) {
        width = max(header.count, entries.map(\.count).max() ?? 0)
    }

    /// `text` padded with spaces to ``width`` (never cut).
    public func pad(_ text: String) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }
}
