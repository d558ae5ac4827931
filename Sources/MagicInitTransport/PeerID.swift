/// A peer's ZeroMQ routing identity: the bytes a DEALER sets with `ZMQ_ROUTING_ID` and that the
/// ROUTER puts in front of each message it receives from that peer. The coordinator addresses
/// workers by it.
///
/// Identities are 1…255 bytes; libzmq reserves identities starting with a zero byte for the
/// ones it generates itself for peers that set none (ZeroMQ guide, ch. 3, "The ROUTER socket").
public struct PeerID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The UTF-8 bytes of `name`, e.g. `PeerID("worker-3")`.
    public init(_ name: String) { self.bytes = Array(name.utf8) }

    /// The identity as text when every byte is printable ASCII (`worker-3`), otherwise as hex
    /// (`0x006b8b4567`, the form of libzmq's generated identities).
    public var description: String {
        if !bytes.isEmpty, bytes.allSatisfy({ (0x21...0x7E).contains($0) }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        let digits: [Character] = Array("0123456789abcdef")
        var text = "0x"
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return text
    }
}
