/// Socket tunables, with units in their names. The defaults suit chunks of image bytes and
/// partial moments on loopback; `maxMessageBytes` is the only one the in-process hub uses.
public struct TransportOptions: Sendable, Equatable {
    /// Largest message accepted, in bytes (`ZMQ_MAXMSGSIZE`). A larger incoming message makes
    /// libzmq drop it and close that connection (the peer reconnects); a larger outgoing one is
    /// refused locally with ``TransportError/messageTooLarge(bytes:limit:)``.
    public var maxMessageBytes: Int
    /// How long `close()` lets unsent messages leave, in milliseconds (`ZMQ_LINGER`). Keep it
    /// finite: −1 would make process exit wait forever for a vanished peer.
    public var lingerMilliseconds: Int32
    /// How long a `send` may block on a full queue before throwing `EAGAIN`, in milliseconds
    /// (`ZMQ_SNDTIMEO`). With unlimited high-water marks a send never blocks.
    public var sendTimeoutMilliseconds: Int32
    /// Messages queued per peer before sends block (`ZMQ_SNDHWM`); 0 = unlimited. Chunks carry
    /// image bytes and the coordinator bounds what it has in flight, so the default is 0.
    public var sendHighWaterMark: Int32
    /// Messages queued per peer on the receiving side (`ZMQ_RCVHWM`); 0 = unlimited.
    public var receiveHighWaterMark: Int32
    /// First reconnect delay of a dealer, in milliseconds (`ZMQ_RECONNECT_IVL`).
    public var reconnectIntervalMilliseconds: Int32
    /// Reconnect back-off ceiling, in milliseconds (`ZMQ_RECONNECT_IVL_MAX`): the delay doubles
    /// after each failed attempt up to this (Paranoid Pirate: reconnects back off). 0 = no back-off.
    public var reconnectIntervalMaxMilliseconds: Int32
    /// ZMTP-level heartbeat (PING) interval, in milliseconds (`ZMQ_HEARTBEAT_IVL`); 0 = off.
    /// This only detects dead TCP connections; application heartbeats are the protocol's job.
    public var heartbeatIntervalMilliseconds: Int32
    /// How long to wait for traffic after a PING before closing the connection, in milliseconds
    /// (`ZMQ_HEARTBEAT_TIMEOUT`); 0 = libzmq's default, the interval.
    public var heartbeatTimeoutMilliseconds: Int32

    public init(
        maxMessageBytes: Int = 1 << 30,
        lingerMilliseconds: Int32 = 1000,
        sendTimeoutMilliseconds: Int32 = 30_000,
        sendHighWaterMark: Int32 = 0,
        receiveHighWaterMark: Int32 = 0,
        reconnectIntervalMilliseconds: Int32 = 100,
        reconnectIntervalMaxMilliseconds: Int32 = 2_000,
        heartbeatIntervalMilliseconds: Int32 = 0,
        heartbeatTimeoutMilliseconds: Int32 = 0
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.lingerMilliseconds = lingerMilliseconds
        self.sendTimeoutMilliseconds = sendTimeoutMilliseconds
        self.sendHighWaterMark = sendHighWaterMark
        self.receiveHighWaterMark = receiveHighWaterMark
        self.reconnectIntervalMilliseconds = reconnectIntervalMilliseconds
        self.reconnectIntervalMaxMilliseconds = reconnectIntervalMaxMilliseconds
        self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
        self.heartbeatTimeoutMilliseconds = heartbeatTimeoutMilliseconds
    }
}
