import CZMQ
import MagicInitTransport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's one ZeroMQ context: created on first use (Swift initialises globals once,
/// thread-safely) and never terminated, so process exit never waits in `zmq_ctx_term`. One I/O
/// thread is plenty for loopback (≈ 1 GB/s, docs/DESIGN.md §6).
enum ZMQContext {
    /// `nonisolated(unsafe)`: written once by the lazy initialiser; libzmq contexts are
    /// thread-safe (zmq_ctx_new(3)).
    nonisolated(unsafe) static let shared: UnsafeMutableRawPointer = {
        guard let context = zmq_ctx_new() else {
            fatalError("zmq_ctx_new failed: \(String(cString: zmq_strerror(zmq_errno())))")
        }
        return context
    }()
}

/// One libzmq socket. Not thread-safe: its owner (``ZMQRouter``, ``ZMQDealer``) serialises
/// every call under a lock (zmq_socket(3): sockets must not be shared between threads).
///
/// Errors are ``TransportError/zmq(errno:message:context:)`` with `context` = `"\(label): call"`.
/// `EINTR` (a signal arrived during a blocking call) is retried everywhere.
final class ZMQSocket {
    private var handle: UnsafeMutableRawPointer?
    /// `"ROUTER tcp://127.0.0.1:5555"`: prefixes every error message.
    var label: String

    init(type: Int32, label: String) throws {
        self.label = label
        guard let handle = zmq_socket(ZMQContext.shared, type) else { throw Self.error(label, "zmq_socket") }
        self.handle = handle
    }

    deinit { close() }

    var isOpen: Bool { handle != nil }

    func close() {
        guard let handle else { return }
        zmq_close(handle)   // only fails with ENOTSOCK, which a non-nil handle rules out
        self.handle = nil
    }

    // MARK: Options, bind, connect

    func setOption(_ option: Int32, _ value: Int32, name: String) throws {
        var value = value
        try setOption(option, &value, MemoryLayout<Int32>.size, name: name)
    }

    func setOption(_ option: Int32, int64 value: Int64, name: String) throws {
        var value = value
        try setOption(option, &value, MemoryLayout<Int64>.size, name: name)
    }

    func setOption(_ option: Int32, bytes: [UInt8], name: String) throws {
        try bytes.withUnsafeBytes { buffer in
            guard zmq_setsockopt(try open(), option, buffer.baseAddress, buffer.count) == 0 else {
                throw Self.error(label, "zmq_setsockopt(\(name))")
            }
        }
    }

    private func setOption(_ option: Int32, _ value: UnsafeRawPointer, _ size: Int, name: String) throws {
        guard zmq_setsockopt(try open(), option, value, size) == 0 else {
            throw Self.error(label, "zmq_setsockopt(\(name))")
        }
    }

    func bind(_ endpoint: String) throws {
        guard zmq_bind(try open(), endpoint) == 0 else { throw Self.endpointError(label, "zmq_bind", endpoint) }
    }

    func connect(_ endpoint: String) throws {
        guard zmq_connect(try open(), endpoint) == 0 else { throw Self.endpointError(label, "zmq_connect", endpoint) }
    }

    /// `ZMQ_LAST_ENDPOINT`: the address actually bound, with a wildcard port resolved.
    func lastEndpoint() throws -> String {
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard zmq_getsockopt(try open(), ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else {
            throw Self.error(label, "zmq_getsockopt(ZMQ_LAST_ENDPOINT)")
        }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Messages

    /// Sends one frame, blocking up to `ZMQ_SNDTIMEO`; `more` sets `ZMQ_SNDMORE` (another frame
    /// of the same message follows). Returns the errno on `EHOSTUNREACH` instead of throwing,
    /// so the router can name the peer.
    ///
    /// libzmq copies `bytes` into its own message buffer before returning.
    func sendFrame(_ bytes: [UInt8], more: Bool) throws -> SendOutcome {
        let socket = try open()
        let flags: Int32 = more ? ZMQ_SNDMORE : 0
        while true {
            let rc = bytes.withUnsafeBytes { buffer in
                zmq_send(socket, buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1), buffer.count, flags)
            }
            if rc != -1 { return .sent }
            switch zmq_errno() {
            case EINTR: continue
            case EHOSTUNREACH: return .unroutable
            case EAGAIN:
                throw TransportError.zmq(
                    errno: EAGAIN, message: String(cString: zmq_strerror(EAGAIN)),
                    context: "\(label): zmq_send timed out (the peer's queue is at its high-water mark)")
            default: throw Self.error(label, "zmq_send")
            }
        }
    }

    enum SendOutcome { case sent, unroutable }

    /// Receives every frame of the next message without blocking; `nil` when none is queued.
    /// libzmq delivers multipart messages atomically, so once the first frame is there the
    /// others are too (zmq_msg_recv(3)).
    func receiveFramesNow() throws -> [[UInt8]]? {
        let socket = try open()
        var frames: [[UInt8]] = []
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }
        while true {
            if zmq_msg_recv(&message, socket, ZMQ_DONTWAIT) == -1 {
                let code = zmq_errno()
                if code == EINTR { continue }
                if code == EAGAIN && frames.isEmpty { return nil }
                throw Self.error(label, "zmq_msg_recv")
            }
            let size = zmq_msg_size(&message)
            let data = zmq_msg_data(&message)
            frames.append([UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                if size > 0, let data { buffer.baseAddress!.initialize(from: data.assumingMemoryBound(to: UInt8.self), count: size) }
                count = size
            })
            if zmq_msg_more(&message) == 0 { return frames }
        }
    }

    /// Waits until a message can be read or `milliseconds` have passed (`zmq_poll`). Returns
    /// `false` on timeout or when a signal interrupted the wait (the caller re-checks its deadline).
    func waitReadable(milliseconds: Int) throws -> Bool {
        var item = zmq_pollitem_t(socket: try open(), fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        let rc = zmq_poll(&item, 1, milliseconds)
        if rc == -1 {
            if zmq_errno() == EINTR { return false }
            throw Self.error(label, "zmq_poll")
        }
        return rc > 0
    }

    /// Receives the next message, waiting up to `timeout`: a non-blocking receive, then
    /// `zmq_poll` for the time left, until a message arrives or the deadline passes.
    func receiveFrames(timeout: Duration) throws -> [[UInt8]]? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: min(max(timeout, .zero), .seconds(86_400 * 365)))
        while true {
            if let frames = try receiveFramesNow() { return frames }
            let remaining = clock.now.duration(to: deadline)
            guard remaining > .zero else { return nil }
            _ = try waitReadable(milliseconds: remaining.wholeMillisecondsRoundedUp)
        }
    }

    // MARK: Errors

    private func open() throws -> UnsafeMutableRawPointer {
        guard let handle else { throw TransportError.closed }
        return handle
    }

    static func error(_ label: String, _ call: String) -> TransportError {
        let code = zmq_errno()
        return .zmq(errno: code, message: String(cString: zmq_strerror(code)), context: "\(label): \(call)")
    }

    /// Bad addresses become ``TransportError/invalidEndpoint(_:)``; the rest (`EADDRINUSE`, …)
    /// stay libzmq errors.
    static func endpointError(_ label: String, _ call: String, _ endpoint: String) -> TransportError {
        let code = zmq_errno()
        let message = String(cString: zmq_strerror(code))
        switch code {
        case EINVAL, EPROTONOSUPPORT, ENODEV, ENOCOMPATPROTO:
            return .invalidEndpoint("'\(endpoint)': \(call) refused it: \(message)")
        default:
            return .zmq(errno: code, message: message, context: "\(label): \(call) \(endpoint)")
        }
    }
}

extension Duration {
    /// Whole milliseconds, rounded up so a wait never ends before the deadline; clamped to `Int`.
    var wholeMillisecondsRoundedUp: Int {
        let (seconds, attoseconds) = components
        let milliseconds = Double(seconds) * 1000 + (Double(attoseconds) / 1e15).rounded(.up)
        return Int(min(max(milliseconds, 0), Double(Int32.max)))
    }
}
