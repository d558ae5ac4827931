import Foundation
import MagicInitTransport
import Testing

@Suite struct InProcessHubTests {
    @Test func test_routerAndThreeDealers_routeToRightPeer_preserveOrderPerPeer() throws {
        let hub = InProcessHub()
        let router = hub.makeRouter()
        let names = ["worker-0", "worker-1", "worker-2"]
        let dealers = names.map { hub.makeDealer(identity: Array($0.utf8)) }
        let perDealer = 50

        // Interleaved sends: message k of dealer d is [d, k].
        for k in 0..<perDealer {
            for (d, dealer) in dealers.enumerated() { try dealer.send([UInt8(d), UInt8(k)]) }
        }
        var next = [PeerID: Int]()
        for _ in 0..<(perDealer * dealers.count) {
            let message = try #require(try router.receive(timeout: .seconds(1)))
            let d = Int(message.body[0])
            #expect(message.peer == PeerID(names[d]), "body from dealer \(d) arrived as \(message.peer)")
            #expect(Int(message.body[1]) == next[message.peer, default: 0], "order for \(message.peer)")
            next[message.peer, default: 0] += 1
        }
        #expect(try router.receive(timeout: .zero) == nil)

        // Replies: each dealer receives only its own, in order.
        for k in 0..<perDealer {
            for (d, name) in names.enumerated() { try router.send([UInt8(d), UInt8(k)], to: PeerID(name)) }
        }
        for (d, dealer) in dealers.enumerated() {
            for k in 0..<perDealer {
                #expect(try dealer.receive(timeout: .seconds(1)) == [UInt8(d), UInt8(k)])
            }
            #expect(try dealer.receive(timeout: .zero) == nil)
        }
    }

    @Test func test_send_oversizedMessage_isRejectedBothWays() throws {
        let hub = InProcessHub(options: TransportOptions(maxMessageBytes: 1024))
        let router = hub.makeRouter()
        let dealer = hub.makeDealer(identity: Array("w".utf8))
        #expect(throws: TransportError.messageTooLarge(bytes: 1025, limit: 1024)) { try dealer.send(Array(repeating: 0, count: 1025)) }
        #expect(throws: TransportError.messageTooLarge(bytes: 4096, limit: 1024)) {
            try router.send(Array(repeating: 0, count: 4096), to: PeerID("w"))
        }
        try dealer.send(Array(repeating: 7, count: 1024))   // exactly at the limit: accepted
        #expect(try router.receive(timeout: .seconds(1))?.body.count == 1024)
        #expect(try dealer.receive(timeout: .zero) == nil)
    }

    @Test func test_kill_peer_sendThrowsUnroutable_dealerCallsFail_earlierMessagesKept() throws {
        let hub = InProcessHub()
        let router = hub.makeRouter()
        let victim = hub.makeDealer(identity: Array("victim".utf8))
        let survivor = hub.makeDealer(identity: Array("survivor".utf8))
        try victim.send([1, 2, 3])
        hub.kill(PeerID("victim"))

        #expect(throws: TransportError.unroutable(peer: PeerID("victim"))) { try router.send([9], to: PeerID("victim")) }
        #expect(throws: TransportError.closed) { try victim.send([4]) }
        #expect(throws: TransportError.closed) { try victim.receive(timeout: .zero) }
        #expect(hub.connectedPeers == [PeerID("survivor")])
        // What the victim sent before dying still arrives; the survivor is unaffected.
        let message = try #require(try router.receive(timeout: .seconds(1)))
        #expect(message.peer == PeerID("victim") && message.body == [1, 2, 3])
        try router.send([5], to: PeerID("survivor"))
        #expect(try survivor.receive(timeout: .seconds(1)) == [5])
    }

    @Test func test_send_unknownOrClosedPeer_throwsUnroutable() throws {
        let hub = InProcessHub()
        let router = hub.makeRouter()
        #expect(throws: TransportError.unroutable(peer: PeerID("nobody"))) { try router.send([1], to: PeerID("nobody")) }
        let dealer = hub.makeDealer(identity: Array("w".utf8))
        dealer.close()
        dealer.close()   // idempotent
        #expect(throws: TransportError.unroutable(peer: PeerID("w"))) { try router.send([1], to: PeerID("w")) }
        #expect(throws: TransportError.closed) { try dealer.send([1]) }
        router.close()
        #expect(throws: TransportError.closed) { try router.receive(timeout: .zero) }
        #expect(throws: TransportError.closed) { try router.send([1], to: PeerID("w")) }
    }

    @Test func test_dealerSendsBeforeRouterExists_messageArrivesOnceItDoes() throws {
        let hub = InProcessHub()
        let dealer = hub.makeDealer(identity: Array("early".utf8))
        try dealer.send([42])
        let router = hub.makeRouter()
        let message = try #require(try router.receive(timeout: .seconds(1)))
        #expect(message.peer == PeerID("early") && message.body == [42])
    }

    @Test func test_sameIdentity_newDealerTakesOver_oldOneClosed() throws {
        let hub = InProcessHub()
        let router = hub.makeRouter()
        let old = hub.makeDealer(identity: Array("w".utf8))
        let new = hub.makeDealer(identity: Array("w".utf8))
        #expect(throws: TransportError.closed) { try old.send([1]) }
        try router.send([2], to: PeerID("w"))
        #expect(try new.receive(timeout: .seconds(1)) == [2])
        old.close()   // must not detach the new dealer
        try router.send([3], to: PeerID("w"))
        #expect(try new.receive(timeout: .seconds(1)) == [3])
    }

    @Test func test_receive_timeout_returnsNilAfterAboutTheTimeout() throws {
        let hub = InProcessHub()
        let router = hub.makeRouter()
        let dealer = hub.makeDealer(identity: Array("w".utf8))
        let (routerResult, routerSeconds) = try seconds { try router.receive(timeout: .milliseconds(150)) }
        let (dealerResult, dealerSeconds) = try seconds { try dealer.receive(timeout: .milliseconds(150)) }
        #expect(routerResult == nil && dealerResult == nil)
        print("[in-process] receive timeout 150 ms returned nil after \(Int(routerSeconds * 1000)) / \(Int(dealerSeconds * 1000)) ms")
        for elapsed in [routerSeconds, dealerSeconds] { #expect(elapsed >= 0.149 && elapsed < 1.0) }
    }

    @Test func test_blockedReceive_wakesWhenAnotherThreadSends() throws {
        let hub = InProcessHub()
        let router = hub.makeRouter()
        let dealer = hub.makeDealer(identity: Array("w".utf8))
        let sender = Thread {
            Thread.sleep(forTimeInterval: 0.05)
            try? dealer.send([1])
        }
        sender.start()
        let (message, elapsed) = try seconds { try router.receive(timeout: .seconds(5)) }
        #expect(message?.body == [1])
        #expect(elapsed < 2, "woke after \(elapsed) s")
    }
}

