import CZMQ
import Foundation
import MagicInitTransport

/// A worker's socket: a ZeroMQ DEALER connected to the coordinator's ROUTER. Sends one frame
/// per message (no empty delimiter). libzmq reconnects by itself after a lost connection,
/// backing off from `reconnectIntervalMilliseconds` to `reconnectIntervalMaxMilliseconds`;
/// messages sent meanwhile wait in the queue (ZeroMQ guide, ch. 4 "Paranoid Pirate").
///
/// `@unchecked Sendable`: the libzmq socket handle may be used by one thread at a time; every
/// call takes `lock` for its whole duration.
public final class ZMQDealer: DealerTransport, @unchecked Sendable {
    /// The endpoint this dealer connects to, as given.
    public let endpoint: String
    /// The routing identity the router sees, or `nil` when libzmq generates one.
    public let identity: PeerID?
    public let options: TransportOptions
    private let lock = NSLock()
    private let socket: ZMQSocket

    /// Connects a DEALER socket. Connecting succeeds before the router exists: the connection is
    /// made (and queued messages delivered) once it binds.
    ///
    /// - Parameters:
    ///   - endpoint: `tcp://HOST:PORT`, `ipc:///path` or `inproc://name`.
    ///   - identity: the ``PeerID`` bytes the router will see (1…255 bytes, first byte not 0);
    ///     `nil` lets libzmq generate one.
    /// - Throws: ``TransportError/invalidEndpoint(_:)``, ``TransportError/invalidIdentity(_:reason:)``,
    ///   ``TransportError/zmq(errno:message:context:)``.
    public init(connect endpoint: String, identity: [UInt8]? = nil, options: TransportOptions = .init()) throws {
        let parsed = try Endpoint(parsing: endpoint)
        if let identity {
            let peer = PeerID(identity)
            if identity.isEmpty { throw TransportError.invalidIdentity(peer, reason: "it is empty") }
            if identity.count > 255 {
                throw TransportError.invalidIdentity(peer, reason: "it has \(identity.count) bytes, more than 255")
            }
            if identity[0] == 0 {
                throw TransportError.invalidIdentity(peer, reason: "a leading zero byte is reserved for libzmq's generated identities")
            }
        }
        self.endpoint = endpoint
        self.identity = identity.map(PeerID.init)
        self.options = options
        socket = try ZMQSocket(type: ZMQ_DEALER, label: "DEALER \(self.identity.map { "\($0) " } ?? "")→ \(endpoint)")
        if let identity { try socket.setOption(ZMQ_ROUTING_ID, bytes: identity, name: "ZMQ_ROUTING_ID") }
        try socket.apply(options)
        if parsed.isIPv6 { try socket.setOption(ZMQ_IPV6, 1, name: "ZMQ_IPV6") }
        try socket.connect(endpoint)
    }

    public func send(_ body: [UInt8]) throws {
        guard body.count <= options.maxMessageBytes else {
            throw TransportError.messageTooLarge(bytes: body.count, limit: options.maxMessageBytes)
        }
        try lock.withLock { _ = try socket.sendFrame(body, more: false) }
    }

    /// A `[empty][body]` message (from a ROUTER written for REQ peers) yields the body; any other
    /// multi-frame message is skipped.
    public func receive(timeout: Duration) throws -> [UInt8]? {
        try lock.withLock {
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: min(max(timeout, .zero), .seconds(86_400 * 365)))
            while let frames = try socket.receiveFrames(timeout: clock.now.duration(to: deadline)) {
                switch frames.count {
                case 1: return frames[0]
                case 2 where frames[0].isEmpty: return frames[1]
                default: continue
                }
            }
            return nil
        }
    }

    public func close() { lock.withLock { socket.close() } }
}
