import Foundation
import MagicInitTransport
import MagicInitWire
import Testing

@Suite struct LZ4Tests {
    @Test(arguments: [0, 1, 17, 1000, 1 << 20])
    func test_roundTrip_randomBytes_isIdentity(count: Int) throws {
        let input = randomBytes(count, seed: UInt64(count))
        let block = LZ4.compress(input)
        let output = try LZ4.decompress(block, originalSize: count, limit: count)
        #expect(identical(output, input))
        // Incompressible: the block is at most LZ4_compressBound(n) = n + n/255 + 16.
        #expect(block.count <= count + count / 255 + 16)
        print("[LZ4] random \(count) bytes → \(block.count) bytes")
    }

    @Test func test_roundTrip_compressibleData_shrinks_reportsRatio() throws {
        // ReLU-like activations: Float32, about half exactly zero, the rest positive and smooth.
        let n = 1 << 18
        var activations = [Float](repeating: 0, count: n)
        let noise = randomBytes(n, seed: 7)
        for i in 0..<n {
            let x = sin(Float(i) * 0.01) + Float(noise[i]) / 2550
            activations[i] = max(0, x)
        }
        let floatBytes = activations.withUnsafeBytes { Array($0) }
        // Text-like data: a repeated log line.
        let text = Array(String(repeating: "[worker 3] chunk 17 done in 1.2 s\n", count: 20_000).utf8)

        for (name, input, minimumRatio) in [("ReLU float32", floatBytes, 1.3), ("log text", text, 20.0)] {
            let block = LZ4.compress(input)
            let ratio = Double(input.count) / Double(block.count)
            print("[LZ4] \(name): \(input.count) → \(block.count) bytes, ratio \(String(format: "%.2f", ratio))×")
            #expect(ratio > minimumRatio, "\(name): ratio \(ratio)")
            #expect(identical(try LZ4.decompress(block, originalSize: input.count, limit: input.count), input))
        }
    }

    @Test func test_zeros_expandWithinDocumentedMaximumRatio() throws {
        // The pre-allocation check assumes a block expands at most 255×; all-zero input is the
        // best case for LZ4, so it must stay under that and still round-trip.
        let input = [UInt8](repeating: 0, count: 16 << 20)
        let block = LZ4.compress(input)
        let ratio = Double(input.count) / Double(block.count)
        print("[LZ4] 16 MiB of zeros → \(block.count) bytes, ratio \(String(format: "%.1f", ratio))× (maximum \(LZ4.maxExpansionRatio)×)")
        #expect(input.count <= LZ4.maxExpansionRatio * block.count)
        #expect(identical(try LZ4.decompress(block, originalSize: input.count, limit: input.count), input))
    }

    @Test func test_decompress_corruptBlock_throwsCorrupt() throws {
        let input = Array(String(repeating: "magic init ", count: 500).utf8)
        let block = LZ4.compress(input)

        // Truncated: the last sequence's literals are missing.
        #expect(throws: LZ4Error.self) { try LZ4.decompress(Array(block.dropLast(5)), originalSize: input.count, limit: 1 << 20) }
        // A token announcing 15+255 literals that are not there.
        expectCorrupt(try LZ4.decompress([0xF0, 0xFF, 0x00, 1, 2, 3], originalSize: 300, limit: 1 << 20))
        // A match whose offset (0xFFFF) points before the start of the output.
        // (token 0x14: 1 literal, an 8-byte match at offset 0xFFFF; then 5 final literals.)
        expectCorrupt(try LZ4.decompress([0x14, 0x41, 0xFF, 0xFF, 0x50, 0x41, 0x41, 0x41, 0x41, 0x41],
                                         originalSize: 14, limit: 1 << 20))
        // Garbage, and an empty block.
        #expect(throws: LZ4Error.self) { try LZ4.decompress(randomBytes(4096, seed: 99), originalSize: 8192, limit: 1 << 20) }
        expectCorrupt(try LZ4.decompress([], originalSize: 0, limit: 10))
    }

    @Test func test_decompress_originalSizeAboveLimit_throwsBeforeAllocating() throws {
        let block = LZ4.compress(Array(repeating: 1, count: 100))
        // Allocating Int.max / 2 bytes would crash the test process: returning an error proves
        // the check comes first.
        #expect(throws: LZ4Error.tooLarge(originalSize: Int.max / 2, limit: 1 << 20)) {
            try LZ4.decompress(block, originalSize: Int.max / 2, limit: 1 << 20)
        }
        #expect(throws: LZ4Error.tooLarge(originalSize: 101, limit: 100)) {
            try LZ4.decompress(block, originalSize: 101, limit: 100)
        }
        // Within the caller's limit but more than the block could ever expand to: refused too,
        // without allocating 1 GiB.
        expectCorrupt(try LZ4.decompress(block, originalSize: 1 << 30, limit: Int.max))
        expectCorrupt(try LZ4.decompress(block, originalSize: -1, limit: 100))
    }

    @Test func test_decompress_wrongOriginalSize_throws() throws {
        let input = randomBytes(10_000, seed: 3)
        let block = LZ4.compress(input)
        // Declared larger than the truth: the block ends early.
        #expect(throws: LZ4Error.sizeMismatch(expected: 10_001, actual: 10_000)) {
            try LZ4.decompress(block, originalSize: 10_001, limit: 1 << 20)
        }
        // Declared smaller: the output would overflow the exact bound.
        expectCorrupt(try LZ4.decompress(block, originalSize: 9_999, limit: 1 << 20))
        expectCorrupt(try LZ4.decompress(block, originalSize: 0, limit: 1 << 20))
    }

    private func expectCorrupt(_ body: @autoclosure () throws -> [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let output = try body()
            Issue.record("expected LZ4Error.corrupt, got \(output.count) bytes", sourceLocation: sourceLocation)
        } catch let error as LZ4Error {
            guard case .corrupt = error else {
                Issue.record("expected LZ4Error.corrupt, got \(error)", sourceLocation: sourceLocation)
                return
            }
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }
}
