import Foundation
import MagicInitCore
@testable import MagicInitFormats

/// The files of `Fixtures/` (see `Fixtures/CREDITS.md`), copied into the test bundle.
enum Fixture {
    static let directory: String = {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("Fixtures folder missing from the test bundle")
        }
        return url.path
    }()

    static func path(_ name: String) -> String { directory + "/" + name }
}

/// A fresh directory under the system temporary directory, removed by `cleanup()`.
struct ScratchDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "magicinit-formats-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// `arange(n) / 100 + offset` in `shape`: the values scripts/make-format-fixtures writes.
func ramp(_ shape: [Int], _ offset: Float) -> Tensor {
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, data: (0..<n).map { Float($0) / 100 + offset })
}

/// Largest absolute difference between two tensors of equal shape (∞ when shapes differ).
func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
    guard a.shape == b.shape else { return .infinity }
    return zip(a.data, b.data).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// Every parameter of `graph` filled with distinct deterministic values (seeded by key).
func distinctParameters(for graph: Graph, seed: Float = 0) -> ParameterSet {
    var set: ParameterSet = [:]
    for (k, spec) in graph.parameters.enumerated() {
        set[spec.key] = Tensor(shape: spec.shape, data: (0..<spec.count).map { Float($0 % 97) * 0.013 - 0.5 + Float(k) + seed })
    }
    return set
}

/// The error `body` throws, as `E`; `nil` (and a recorded issue) otherwise.
func thrownError<E: Error>(_ type: E.Type, _ body: () throws -> Void) -> E? {
    do {
        try body()
        return nil
    } catch let error as E {
        return error
    } catch {
        return nil
    }
}
