import Foundation
import MagicInitCore

/// Weights read from a caffemodel for a compiled network.
public struct CaffeWeights: Sendable {
    /// Values keyed by ``ParameterSpec/key``, shaped as the graph's ``ParameterSpec``s.
    public var parameters: ParameterSet
    /// Layers of the network with parameters that the file does not have (Caffe leaves these
    /// at their initial values, and so should the caller).
    public var missingLayers: [String]
    /// Layers with blobs in the file that the network does not have.
    public var unusedLayers: [String]
}

extension Caffe {
    /// Reads the blobs of a caffemodel for `graph`, matched by layer name, as Caffe's
    /// `CopyTrainedLayersFrom` does: a matched layer must have exactly the graph's number of
    /// blobs, each of the graph's shape, or (files from before `BlobShape`) the legacy 4-D
    /// `num × channels × height × width` equal to the shape padded with leading 1s — so an
    /// inner product's `(O, I)` is accepted as `(1, 1, O, I)` and a bias `(O)` as `(1, 1, 1, O)`.
    /// - Throws: ``FormatError`` if unreadable; ``CaffeError`` naming the file, layer and blob.
    public static func readWeights(path: String, for graph: Graph) throws -> CaffeWeights {
        try weights(from: decodeBinary(FileIO.read(path), file: path), for: graph, file: path)
    }

    static func weights(from net: Caffe_NetParameter, for graph: Graph, file: String) throws(CaffeError) -> CaffeWeights {
        var blobsByLayer: [String: [Caffe_BlobProto]] = [:]
        var order: [String] = []
        let layers = net.layer.map { ($0.name, $0.blobs) } + net.layers.map { ($0.name, $0.blobs) }
        for (name, blobs) in layers where !blobs.isEmpty && blobsByLayer[name] == nil {
            blobsByLayer[name] = blobs
            order.append(name)
        }
        var result = CaffeWeights(parameters: [:], missingLayers: [], unusedLayers: [])
        var used = Set<String>()
        for node in graph.nodes where !node.parameters.isEmpty {
            guard let blobs = blobsByLayer[node.name] else {
                result.missingLayers.append(node.name)
                continue
            }
            used.insert(node.name)
            guard blobs.count == node.parameters.count else {
                throw CaffeError.blobCountMismatch(file: file, layer: node.name, expected: node.parameters.count, actual: blobs.count)
            }
            for spec in node.parameters {
                let blob = blobs[spec.caffeBlobIndex]
                let actual = blobShape(blob)
                let legacy = !blob.hasShape && (blob.hasNum || blob.hasChannels || blob.hasHeight || blob.hasWidth)
                let matches = legacy ? actual == legacyShape(spec.shape) : actual == spec.shape
                guard matches else {
                    throw CaffeError.blobShapeMismatch(file: file, layer: node.name, blob: spec.caffeBlobIndex,
                                                       expected: spec.shape, actual: actual)
                }
                let values = blob.data.isEmpty ? blob.doubleData.map { Float($0) } : blob.data
                guard values.count == spec.count else {
                    throw CaffeError.blobDataCount(file: file, layer: node.name, blob: spec.caffeBlobIndex,
                                                   shape: spec.shape, actual: values.count)
                }
                result.parameters[spec.key] = Tensor(shape: spec.shape, data: values)
            }
        }
        result.unusedLayers = order.filter { !used.contains($0) }
        return result
    }

    /// The blob's shape: `shape.dim`, or the legacy `(num, channels, height, width)`.
    static func blobShape(_ blob: Caffe_BlobProto) -> [Int] {
        if blob.hasShape { return blob.shape.dim.map { Int($0) } }
        return [Int(blob.num), Int(blob.channels), Int(blob.height), Int(blob.width)]
    }

    /// Caffe's `Blob::LegacyShape`: `shape` padded with leading 1s to four axes.
    static func legacyShape(_ shape: [Int]) -> [Int] {
        shape.count >= 4 ? shape : Array(repeating: 1, count: 4 - shape.count) + shape
    }

    /// The caffemodel bytes for `graph` with `parameters`: the network definition (inputs as
    /// `input` + `input_shape`, every layer with its type, bottoms, tops and parameters) and,
    /// for each layer with parameters, its blobs with `BlobShape` shapes in Caffe blob order.
    /// - Throws: ``CaffeError/missingParameter(file:key:)`` or
    ///   ``CaffeError/parameterShapeMismatch(file:key:expected:actual:)``.
    public static func caffemodel(_ parameters: ParameterSet, graph: Graph, file: String = "<caffemodel>") throws -> Data {
        var net = netParameter(for: graph.network)
        var index: [String: Int] = [:]
        for (i, layer) in net.layer.enumerated() { index[layer.name] = i }
        for node in graph.nodes where !node.parameters.isEmpty {
            var blobs: [Caffe_BlobProto] = []
            for spec in node.parameters.sorted(by: { $0.caffeBlobIndex < $1.caffeBlobIndex }) {
                guard let tensor = parameters[spec.key] else { throw CaffeError.missingParameter(file: file, key: spec.key) }
                guard tensor.shape == spec.shape else {
                    throw CaffeError.parameterShapeMismatch(file: file, key: spec.key, expected: spec.shape, actual: tensor.shape)
                }
                var blob = Caffe_BlobProto()
                blob.shape.dim = spec.shape.map { Int64($0) }
                blob.data = tensor.data
                blobs.append(blob)
            }
            net.layer[index[node.name]!].blobs = blobs
        }
        do {
            return try net.serializedBytes()
        } catch {
            throw CaffeError.malformedBinary(file: file, message: "cannot encode: \(error)")
        }
    }

    /// Writes ``caffemodel(_:graph:file:)`` to `path` atomically.
    public static func writeCaffemodel(_ parameters: ParameterSet, graph: Graph, to path: String) throws {
        try FileIO.writeAtomically(caffemodel(parameters, graph: graph, file: path), to: path)
    }
}
