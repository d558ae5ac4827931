import CZMQ
import Foundation
import MagicInitTransport

/// The coordinator's socket: a ZeroMQ ROUTER bound to a tcp:// or ipc:// endpoint, with
/// `ZMQ_ROUTER_MANDATORY` (a send to an unknown peer throws instead of vanishing) and
/// `ZMQ_ROUTER_HANDOVER` (a peer reconnecting with a known identity, e.g. a restarted worker,
/// takes over that identity). ZeroMQ guide, ch. 3 "The ROUTER socket" and ch. 4 "Paranoid Pirate".
///
/// Wire format: a dealer's message is one frame, the body; the router sees `[identity][body]`.
/// A foreign REQ peer's `[identity][empty][body]` is accepted too (the empty delimiter is
/// dropped); any other shape is discarded and counted in ``discardedMessageCount``.
///
/// `@unchecked Sendable`: the libzmq socket handle may be used by one thread at a time; every
/// call takes `lock` for its whole duration, so calls from several threads are serialised
/// (a blocking `receive` delays a concurrent `send` until it returns).
public final class ZMQRouter: RouterTransport, @unchecked Sendable {
    /// The endpoint actually bound (wildcard port resolved), e.g. `tcp://127.0.0.1:41237`.
    public let endpoint: String
    public let options: TransportOptions
    private let lock = NSLock()
    private let socket: ZMQSocket
    private var discarded = 0

    /// Binds a ROUTER socket.
    ///
    /// - Parameters:
    ///   - endpoint: `tcp://HOST:PORT` (PORT may be `*` for an ephemeral port; read it back from
    ///     ``endpoint``), `ipc:///path` (the path must fit in 107 bytes), or `inproc://name`.
    ///   - allowNonLoopback: must be `true` to bind a tcp host other than `localhost`,
    ///     127.0.0.0/8 or `::1` (e.g. `*`, `0.0.0.0`, a LAN address): such a socket accepts
    ///     unencrypted connections from other machines (docs/DESIGN.md §3, "Security").
    /// - Throws: ``TransportError/invalidEndpoint(_:)`` for a malformed or unsupported
    ///   endpoint, ``TransportError/nonLoopbackBind(endpoint:)`` for a non-loopback one without
    ///   the flag; ``TransportError/zmq(errno:message:context:)``
    ///   e.g. `EADDRINUSE`.
    public init(bind endpoint: String, allowNonLoopback: Bool = false, options: TransportOptions = .init()) throws {
        let parsed = try Endpoint.forBinding(endpoint, allowNonLoopback: allowNonLoopback)
        self.options = options
        socket = try ZMQSocket(type: ZMQ_ROUTER, label: "ROUTER \(endpoint)")
        try socket.setOption(ZMQ_ROUTER_MANDATORY, 1, name: "ZMQ_ROUTER_MANDATORY")
        try socket.setOption(ZMQ_ROUTER_HANDOVER, 1, name: "ZMQ_ROUTER_HANDOVER")
        try socket.apply(options)
        if parsed.isIPv6 { try socket.setOption(ZMQ_IPV6, 1, name: "ZMQ_IPV6") }
        try socket.bind(endpoint)
        self.endpoint = try socket.lastEndpoint()
        socket.label = "ROUTER \(self.endpoint)"
    }

    /// Messages received in a shape other than `[identity][body]` or `[identity][empty][body]`,
    /// discarded by `receive`.
    public var discardedMessageCount: Int { lock.withLock { discarded } }

    public func send(_ body: [UInt8], to peer: PeerID) throws {
        guard body.count <= options.maxMessageBytes else {
            throw TransportError.messageTooLarge(bytes: body.count, limit: options.maxMessageBytes)
        }
        try lock.withLock {
            guard try socket.sendFrame(peer.bytes, more: true) == .sent else { throw TransportError.unroutable(peer: peer) }
            guard try socket.sendFrame(body, more: false) == .sent else { throw TransportError.unroutable(peer: peer) }
        }
    }

    public func receive(timeout: Duration) throws -> (peer: PeerID, body: [UInt8])? {
        try lock.withLock {
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: min(max(timeout, .zero), .seconds(86_400 * 365)))
            while let frames = try socket.receiveFrames(timeout: clock.now.duration(to: deadline)) {
                switch frames.count {
                case 2: return (PeerID(frames[0]), frames[1])
                case 3 where frames[1].isEmpty: return (PeerID(frames[0]), frames[2])
                default: discarded += 1
                }
            }
            return nil
        }
    }

    public func close() { lock.withLock { socket.close() } }
}

extension ZMQSocket {
    /// Applies the options common to both ends (before bind/connect: high-water marks only
    /// affect pipes created afterwards).
    func apply(_ options: TransportOptions) throws {
        try setOption(ZMQ_MAXMSGSIZE, int64: Int64(options.maxMessageBytes), name: "ZMQ_MAXMSGSIZE")
        try setOption(ZMQ_LINGER, options.lingerMilliseconds, name: "ZMQ_LINGER")
        try setOption(ZMQ_SNDTIMEO, options.sendTimeoutMilliseconds, name: "ZMQ_SNDTIMEO")
        try setOption(ZMQ_SNDHWM, options.sendHighWaterMark, name: "ZMQ_SNDHWM")
        try setOption(ZMQ_RCVHWM, options.receiveHighWaterMark, name: "ZMQ_RCVHWM")
        try setOption(ZMQ_RECONNECT_IVL, options.reconnectIntervalMilliseconds, name: "ZMQ_RECONNECT_IVL")
        try setOption(ZMQ_RECONNECT_IVL_MAX, options.reconnectIntervalMaxMilliseconds, name: "ZMQ_RECONNECT_IVL_MAX")
        if options.heartbeatIntervalMilliseconds > 0 {
            try setOption(ZMQ_HEARTBEAT_IVL, options.heartbeatIntervalMilliseconds, name: "ZMQ_HEARTBEAT_IVL")
            if options.heartbeatTimeoutMilliseconds > 0 {
                try setOption(ZMQ_HEARTBEAT_TIMEOUT, options.heartbeatTimeoutMilliseconds, name: "ZMQ_HEARTBEAT_TIMEOUT")
            }
        }
    }
}
