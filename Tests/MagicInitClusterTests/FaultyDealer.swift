import Foundation
import MagicInitTransport

/// A fault for in-process runs (the ZeroMQ guide's worker that crashes on purpose): when
/// worker `trigger` (any worker, when `nil`) is about to send reply number
/// `afterReplies + 1`, every worker in `victims` stops at once — killed on the hub (its connection gone, as after SIGKILL), or
/// muted (it keeps running but nothing it sends arrives, so only the coordinator's liveness
/// check can notice).
final class WorkerFault: @unchecked Sendable {
    enum Kind { case kill, mute }
    let trigger: String?
    let afterReplies: Int
    let victims: [String]
    let kind: Kind
    private let hub: InProcessHub
    private let lock = NSLock()
    private var replies = 0
    private var stopped: Set<String> = []
    private var onFault: [@Sendable () -> Void] = []

    init(hub: InProcessHub, trigger: String?, afterReplies: Int, victims: [String], kind: Kind) {
        self.hub = hub
        self.trigger = trigger
        self.afterReplies = afterReplies
        self.victims = victims
        self.kind = kind
    }

    /// Runs `action` once the fault has struck (e.g. start a late joiner).
    func whenStruck(_ action: @escaping @Sendable () -> Void) { lock.withLock { onFault.append(action) } }

    /// Whether the fault has struck.
    var struck: Bool { lock.withLock { !stopped.isEmpty } }

    /// `true`: `name` may send `body`; `false`: it is stopped and the body is dropped.
    func mayDeliver(_ body: [UInt8], from name: String) -> Bool {
        var strikesNow = false
        let allowed = lock.withLock { () -> Bool in
            if stopped.contains(name) { return false }
            // Byte 4 of an envelope is the message type; 8 = reply (cluster/PROTOCOL.md).
            guard trigger == nil || name == trigger, body.count > 4, body[4] == 8, stopped.isEmpty else { return true }
            guard replies >= afterReplies else { replies += 1; return true }
            stopped = Set(victims)
            strikesNow = true
            return !stopped.contains(name)
        }
        if strikesNow {
            if kind == .kill { for victim in victims { hub.kill(PeerID(victim)) } }
            lock.withLock { onFault }.forEach { $0() }
        }
        return allowed
    }
}

/// A dealer whose sends pass through a ``WorkerFault``.
final class FaultyDealer: DealerTransport {
    let inner: any DealerTransport
    let name: String
    let fault: WorkerFault

    init(_ inner: any DealerTransport, name: String, fault: WorkerFault) {
        self.inner = inner
        self.name = name
        self.fault = fault
    }

    func send(_ body: [UInt8]) throws {
        guard fault.mayDeliver(body, from: name) else {
            if fault.kind == .kill { throw TransportError.closed }
            return
        }
        try inner.send(body)
    }

    func receive(timeout: Duration) throws -> [UInt8]? { try inner.receive(timeout: timeout) }
    func close() { inner.close() }
}
