import Foundation

/// An in-process transport for tests: the same semantics as ``ZMQRouter``/``ZMQDealer``
/// without sockets. One router and any number of dealers attach to a hub.
///
/// What carries over from ZeroMQ: per-peer FIFO order; a send to an unknown, closed or killed
/// dealer throws ``TransportError/unroutable(peer:)`` (ROUTER_MANDATORY); a dealer may send
/// before the router exists (its messages wait, as after a connect before the bind); messages
/// a dealer sent before it was killed are still delivered (they had left the process); a dealer
/// made with the identity of a live one takes it over, and the old one is closed
/// (ROUTER_HANDOVER); closing the router drops the messages it had not read. Bodies above
/// `options.maxMessageBytes` are refused at the sender with ``TransportError/messageTooLarge(bytes:limit:)``.
/// Other options are ignored.
///
/// Thread-safe: every router and dealer may be used from any thread; blocking receives wait on a
/// condition variable.
public final class InProcessHub: Sendable {
    public let options: TransportOptions
    let state: HubState

    public init(options: TransportOptions = .init()) {
        self.options = options
        state = HubState()
    }

    /// A router on this hub. It receives what dealers sent while no router was open (as a ZeroMQ
    /// dealer's queue is delivered once the router binds). A router made while another is open
    /// replaces it: the old one's calls then throw ``TransportError/closed``, and messages it had
    /// not read are dropped.
    public func makeRouter() -> any RouterTransport {
        state.locked { state in
            if state.routerOpen { state.routerInbox.removeAll() }   // the replaced router's unread messages
            state.routerGeneration += 1
            state.routerOpen = true
            return InProcessRouter(hub: self, generation: state.routerGeneration)
        }
    }

    /// A dealer whose messages reach the router as from `PeerID(identity)`. A live dealer with the
    /// same identity is closed and replaced (handover).
    public func makeDealer(identity: [UInt8]) -> any DealerTransport {
        let peer = PeerID(identity)
        return state.locked { state in
            state.nextDealerGeneration += 1
            state.dealers[peer] = HubState.DealerSlot(generation: state.nextDealerGeneration)
            return InProcessDealer(hub: self, peer: peer, generation: state.nextDealerGeneration)
        }
    }

    /// Test hook: disconnects `peer` as if its process were killed. Later router sends to it throw
    /// ``TransportError/unroutable(peer:)``; its own calls throw ``TransportError/closed``; messages
    /// it sent before stay deliverable. Killing an unknown peer does nothing.
    public func kill(_ peer: PeerID) {
        state.locked { state in _ = state.dealers.removeValue(forKey: peer) }
    }

    /// The identities of the dealers currently attached (not closed, killed or replaced).
    public var connectedPeers: Set<PeerID> { state.locked { Set($0.dealers.keys) } }

    var endpoint: String { "inprocess://hub-\(UInt(bitPattern: ObjectIdentifier(self).hashValue))" }
}

/// The hub's mutable state, guarded by `condition`.
///
/// `@unchecked Sendable`: every access to `value` happens inside `locked` or `wait`, under the
/// condition's lock (a condition variable is needed for blocking receives with a timeout, which
/// `Synchronization.Mutex` does not offer).
final class HubState: @unchecked Sendable {
    struct DealerSlot {
        var generation: Int
        var inbox = FIFO<[UInt8]>()
    }

    struct Value {
        var routerGeneration = 0
        var routerOpen = false
        var routerInbox = FIFO<(peer: PeerID, body: [UInt8])>()
        var nextDealerGeneration = 0
        var dealers: [PeerID: DealerSlot] = [:]
    }

    private let condition = NSCondition()
    private var value = Value()

    /// Runs `body` under the lock and wakes every waiter afterwards (the state may have changed).
    func locked<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return try body(&value)
    }

    /// Runs `attempt` under the lock until it returns a value, waiting for changes in between;
    /// returns `nil` once `timeout` has passed.
    func wait<T>(timeout: Duration, _ attempt: (inout Value) throws -> T?) rethrows -> T? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: min(max(timeout, .zero), .seconds(86_400 * 365)))
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        while true {
            if let result = try attempt(&value) { return result }
            let remaining = clock.now.duration(to: deadline)
            guard remaining > .zero else { return nil }
            let (seconds, attoseconds) = remaining.components
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) * 1e-18))
        }
    }
}

final class InProcessRouter: RouterTransport {
    let hub: InProcessHub
    let generation: Int

    init(hub: InProcessHub, generation: Int) {
        self.hub = hub
        self.generation = generation
    }

    var endpoint: String { hub.endpoint }

    func send(_ body: [UInt8], to peer: PeerID) throws {
        try hub.state.locked { state in
            try checkOpen(state)
            guard body.count <= hub.options.maxMessageBytes else {
                throw TransportError.messageTooLarge(bytes: body.count, limit: hub.options.maxMessageBytes)
            }
            guard state.dealers[peer] != nil else { throw TransportError.unroutable(peer: peer) }
            state.dealers[peer]!.inbox.append(body)
        }
    }

    func receive(timeout: Duration) throws -> (peer: PeerID, body: [UInt8])? {
        try hub.state.wait(timeout: timeout) { state in
            try checkOpen(state)
            return state.routerInbox.popFirst()
        }
    }

    func close() {
        hub.state.locked { state in
            guard state.routerGeneration == generation, state.routerOpen else { return }
            state.routerOpen = false
            state.routerInbox.removeAll()
        }
    }

    private func checkOpen(_ state: HubState.Value) throws {
        guard state.routerGeneration == generation, state.routerOpen else { throw TransportError.closed }
    }
}

final class InProcessDealer: DealerTransport {
    let hub: InProcessHub
    let peer: PeerID
    let generation: Int

    init(hub: InProcessHub, peer: PeerID, generation: Int) {
        self.hub = hub
        self.peer = peer
        self.generation = generation
    }

    func send(_ body: [UInt8]) throws {
        try hub.state.locked { state in
            try checkAttached(state)
            guard body.count <= hub.options.maxMessageBytes else {
                throw TransportError.messageTooLarge(bytes: body.count, limit: hub.options.maxMessageBytes)
            }
            state.routerInbox.append((peer, body))
        }
    }

    func receive(timeout: Duration) throws -> [UInt8]? {
        try hub.state.wait(timeout: timeout) { state in
            try checkAttached(state)
            return state.dealers[peer]!.inbox.popFirst()
        }
    }

    func close() {
        hub.state.locked { state in
            if state.dealers[peer]?.generation == generation { state.dealers[peer] = nil }
        }
    }

    private func checkAttached(_ state: HubState.Value) throws {
        guard state.dealers[peer]?.generation == generation else { throw TransportError.closed }
    }
}

/// A first-in first-out queue with amortised O(1) `append` and `popFirst`.
/// A popped slot is cleared at once, so a large body is freed as soon as it is read.
struct FIFO<Element> {
    private var items: [Element?] = []
    private var head = 0

    var count: Int { items.count - head }

    mutating func append(_ item: Element) { items.append(item) }

    mutating func popFirst() -> Element? {
        guard head < items.count else { return nil }
        let item = items[head]
        items[head] = nil
        head += 1
        if head >= 64 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return item
    }

    mutating func removeAll() {
        items.removeAll()
        head = 0
    }
}
