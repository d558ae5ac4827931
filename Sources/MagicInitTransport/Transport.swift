// The two ends of the coordinator ↔ worker link, after the ZeroMQ guide's ROUTER/DEALER
// pattern (ZeroMQ guide, ch. 3 "Advanced Request-Reply Patterns"; the reliability layer on top,
// heartbeats and re-assignment, is the Paranoid Pirate pattern of ch. 4 and lives elsewhere).
//
// One message is one body: a byte array of at most `TransportOptions.maxMessageBytes` bytes.
// Messages between one dealer and the router arrive in the order they were sent, in each
// direction; there is no order across peers. Implementations: ``InProcessHub`` (tests, this
// module) and `ZMQRouter`/`ZMQDealer` (tcp://, ipc://; module MagicInitZeroMQ, the only one
// that imports libzmq).
//
// Threads: every call blocks its caller. The implementations serialise calls with a lock, so a
// `receive(timeout:)` in progress delays a `send` from another thread until it returns; keep
// each transport on one thread (a receive loop that also sends) or use short timeouts.

/// Coordinator side: ZeroMQ ROUTER semantics (one socket, many peers, addressed by ``PeerID``).
public protocol RouterTransport: AnyObject, Sendable {
    /// Sends `body` to `peer`.
    ///
    /// - Throws: ``TransportError/unroutable(peer:)`` when the peer is unknown or gone (ROUTER
    ///   with `ZMQ_ROUTER_MANDATORY`: no silent drops; a peer that is reconnecting is unknown
    ///   until it is back); ``TransportError/messageTooLarge(bytes:limit:)`` when
    ///   `body.count > maxMessageBytes`; ``TransportError/closed`` after `close()`;
    ///   ``TransportError/zmq(errno:message:context:)`` when libzmq fails, e.g. `EAGAIN` when the
    ///   peer's queue stays at its high-water mark for `sendTimeoutMilliseconds`.
    func send(_ body: [UInt8], to peer: PeerID) throws

    /// Waits up to `timeout` for the next message from any peer.
    ///
    /// - Returns: the sender and the body, or `nil` when nothing arrived within `timeout`
    ///   (a zero or negative timeout polls once without waiting).
    /// - Throws: ``TransportError/closed`` after `close()`; ``TransportError/zmq(errno:message:context:)``.
    ///   An interrupted system call (`EINTR`, e.g. SIGCHLD or Ctrl-C) is retried, never thrown.
    func receive(timeout: Duration) throws -> (peer: PeerID, body: [UInt8])?

    /// The endpoint actually bound, with the port resolved when binding `tcp://127.0.0.1:*`
    /// (e.g. `tcp://127.0.0.1:41237`): the address to hand to the workers.
    var endpoint: String { get }

    /// Closes the socket; messages not yet delivered are given `lingerMilliseconds` to leave.
    /// Idempotent. Later calls throw ``TransportError/closed``.
    func close()
}

/// Worker side: ZeroMQ DEALER semantics (one peer, the router; reconnects are automatic).
public protocol DealerTransport: AnyObject, Sendable {
    /// Queues `body` for the router. Before the connection is up the message waits in the queue
    /// (a dealer may connect before the router binds).
    ///
    /// - Throws: ``TransportError/messageTooLarge(bytes:limit:)``, ``TransportError/closed``,
    ///   ``TransportError/zmq(errno:message:context:)``.
    func send(_ body: [UInt8]) throws

    /// Waits up to `timeout` for the next message from the router; `nil` on timeout.
    ///
    /// - Throws: ``TransportError/closed``, ``TransportError/zmq(errno:message:context:)``;
    ///   `EINTR` is retried.
    func receive(timeout: Duration) throws -> [UInt8]?

    /// Closes the socket (idempotent); later calls throw ``TransportError/closed``.
    func close()
}
