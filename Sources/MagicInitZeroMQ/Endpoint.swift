import MagicInitTransport

/// A ZeroMQ endpoint as far as this module needs to understand it: the scheme, and for tcp://
/// the host, to keep binds on loopback unless the caller asks otherwise (docs/DESIGN.md §3,
/// "Security": bind to loopback by default).
struct Endpoint: Equatable {
    enum Scheme: String { case tcp, ipc, inproc }

    let text: String
    let scheme: Scheme
    /// tcp:// only: the host part without brackets (`127.0.0.1`, `::1`, `*`, `eth0`, `localhost`).
    let host: String?
    /// tcp:// only: the host was a bracketed IPv6 literal, so the socket needs `ZMQ_IPV6`.
    let isIPv6: Bool

    /// - Throws: ``TransportError/invalidEndpoint(_:)`` for a scheme other than tcp, ipc or
    ///   inproc, or a tcp endpoint without `host:port`.
    init(parsing text: String) throws {
        self.text = text
        guard let separator = text.range(of: "://") else {
            throw TransportError.invalidEndpoint("'\(text)' has no scheme; use tcp://HOST:PORT or ipc:///PATH")
        }
        let schemeText = String(text[..<separator.lowerBound])
        guard let scheme = Scheme(rawValue: schemeText) else {
            throw TransportError.invalidEndpoint(
                "'\(text)': scheme '\(schemeText)' is not supported; use tcp://HOST:PORT or ipc:///PATH")
        }
        self.scheme = scheme
        let address = text[separator.upperBound...]
        guard scheme == .tcp else {
            guard !address.isEmpty else { throw TransportError.invalidEndpoint("'\(text)' has an empty address") }
            host = nil
            isIPv6 = false
            return
        }
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]"), address[address.index(after: close)...].hasPrefix(":") else {
                throw TransportError.invalidEndpoint("'\(text)': an IPv6 host is written tcp://[ADDRESS]:PORT")
            }
            host = String(address[address.index(after: address.startIndex)..<close])
            isIPv6 = true
        } else {
            guard let colon = address.lastIndex(of: ":"), colon != address.startIndex,
                  address.index(after: colon) != address.endIndex
            else {
                throw TransportError.invalidEndpoint("'\(text)': a tcp endpoint is written tcp://HOST:PORT (PORT may be *)")
            }
            host = String(address[..<colon])
            isIPv6 = false
        }
    }

    /// Whether binding here accepts connections from this machine only: ipc:// and inproc://
    /// always; tcp:// when the host is `localhost`, an IPv4 literal in 127.0.0.0/8, or `::1`.
    /// Wildcards (`*`, `0.0.0.0`), other addresses and interface names (even `lo`) are not.
    var isLoopback: Bool {
        guard scheme == .tcp, let host else { return true }
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ $0.count <= 3 && UInt8($0) != nil }) else { return false }
        return octets[0] == "127"
    }

    /// Parses `text` for binding and refuses non-loopback hosts unless `allowNonLoopback`.
    static func forBinding(_ text: String, allowNonLoopback: Bool) throws -> Endpoint {
        let endpoint = try Endpoint(parsing: text)
        guard endpoint.scheme != .tcp || !endpoint.host!.contains(";") else {
            throw TransportError.invalidEndpoint("'\(text)': a source address (HOST;HOST) is for connecting, not binding")
        }
        if !endpoint.isLoopback && !allowNonLoopback { throw TransportError.nonLoopbackBind(endpoint: text) }
        return endpoint
    }
}
