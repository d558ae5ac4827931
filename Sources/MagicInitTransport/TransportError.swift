/// Every failure of the transport boundary. Messages name the endpoint or the peer.
public enum TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// libzmq returned an error: `errno` as `zmq_errno()`, `message` from `zmq_strerror`, and
    /// `context` saying what was being done, e.g. `"ROUTER tcp://127.0.0.1:5555: bind"`.
    case zmq(errno: Int32, message: String, context: String)
    /// The router has no connected peer with this identity (never connected, disconnected,
    /// killed, or reconnecting).
    case unroutable(peer: PeerID)
    /// A message of `bytes` bytes exceeds `TransportOptions.maxMessageBytes` (`limit`).
    case messageTooLarge(bytes: Int, limit: Int)
    /// The transport was closed (or, in-process, its dealer was killed or replaced).
    case closed
    /// The endpoint is malformed or of an unsupported scheme; the text says which.
    case invalidEndpoint(String)
    /// A bind to an address other machines can reach, without `allowNonLoopback: true`.
    case nonLoopbackBind(endpoint: String)
    /// A dealer identity that libzmq would refuse: empty, longer than 255 bytes, or starting
    /// with a zero byte (reserved for identities libzmq generates).
    case invalidIdentity(PeerID, reason: String)

    public var description: String {
        switch self {
        case let .zmq(errno, message, context):
            return "\(context): \(message) (zmq errno \(errno))"
        case let .unroutable(peer):
            return "peer \(peer) is not connected to the router (unknown, gone, or reconnecting)"
        case let .messageTooLarge(bytes, limit):
            return "message of \(bytes) bytes exceeds the limit of \(limit) bytes (maxMessageBytes)"
        case .closed:
            return "the transport is closed"
        case let .invalidEndpoint(text):
            return "invalid endpoint: \(text)"
        case let .nonLoopbackBind(endpoint):
            return "'\(endpoint)' is not a loopback address: binding it accepts connections from other machines, "
                + "unencrypted. Bind tcp://127.0.0.1:PORT, or pass allowNonLoopback: true on a trusted network"
        case let .invalidIdentity(peer, reason):
            return "invalid dealer identity \(peer): \(reason)"
        }
    }
}
