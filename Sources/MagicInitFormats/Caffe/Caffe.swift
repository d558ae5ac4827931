import Foundation
import MagicInitCore
import SwiftProtobuf

/// Caffe's file formats (Jia et al. 2014): deploy prototxts (protobuf text format) and
/// caffemodel weight files (binary `NetParameter`), mapped onto MagicInit's graph IR.
///
/// Blob order and shapes are Caffe's: convolution weights `(O, I/groups, kH, kW)`, inner
/// product weights `(O, I)`, biases `(O)`, BatchNorm mean, variance and moving-average
/// factor, Scale γ then β.
public enum Caffe {
    /// Layer types that become layers of the IR.
    public static let supportedLayerTypes = [
        "Convolution", "Deconvolution", "InnerProduct", "ReLU", "Sigmoid", "TanH", "LRN", "Pooling",
        "Dropout", "Concat", "Eltwise", "Softmax", "Flatten", "Reshape", "BatchNorm", "Scale",
    ]
    /// Layer types that declare the network input.
    public static let inputLayerTypes = ["Input", "Data", "ImageData", "MemoryData"]
    /// Training-only layer types that are skipped with a note.
    public static let skippedLayerTypes = [
        "SoftmaxWithLoss", "Accuracy", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss",
        "InfogainLoss", "MultinomialLogisticLoss", "ContrastiveLoss", "Silence",
    ]

    /// Reads a deploy (or train/test) prototxt; layers of the TRAIN phase are skipped.
    /// - Throws: ``FormatError`` if the file cannot be read; ``CaffeError`` naming the file,
    ///   the position or the layer.
    public static func readPrototxt(path: String) throws -> CaffeNet {
        try parsePrototxt(FileIO.readText(path), file: path)
    }

    /// Parses prototxt text; `file` names it in errors.
    public static func parsePrototxt(_ text: String, file: String = "<prototxt>") throws -> CaffeNet {
        let decoded = try PrototxtDecoding.decode(text, file: file)
        var reader = CaffeNetReader(file: file)
        var net = try reader.read(decoded.net)
        if !decoded.skippedFields.isEmpty {
            net.notes.append("skipped fields not needed for inference: " + summarize(decoded.skippedFields))
        }
        return net
    }

    /// Reads the network definition stored in a caffemodel (Caffe snapshots and the files
    /// ``writeCaffemodel(_:graph:to:)`` writes carry the layer definitions beside the blobs).
    public static func readNetwork(caffemodel path: String) throws -> CaffeNet {
        var reader = CaffeNetReader(file: path)
        return try reader.read(decodeBinary(FileIO.read(path), file: path))
    }

    /// The text of a deploy prototxt for `network` (`input:` / `input_shape` form), one
    /// value per line for repeated numbers as Caffe's own files write them.
    public static func prototxt(for network: Network) -> String {
        expandingLists(netParameter(for: network).textFormatString())
    }

    /// `dim: [1, 3, 8, 8]` → four `dim:` lines (older protobuf text parsers lack the list
    /// form). Only lists of numbers or enum names, which contain no quotes, are expanded.
    static func expandingLists(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).flatMap { line -> [String] in
            guard let open = line.range(of: ": ["), line.hasSuffix("]"), !line.contains("\"") else { return [String(line)] }
            let field = line[..<open.lowerBound]
            return line[open.upperBound..<line.index(before: line.endIndex)]
                .split(separator: ",")
                .map { "\(field): \($0.trimmingCharacters(in: .whitespaces))" }
        }.joined(separator: "\n")
    }

    static func decodeBinary(_ data: Data, file: String) throws(CaffeError) -> Caffe_NetParameter {
        do {
            return try Caffe_NetParameter(serializedBytes: data)
        } catch {
            throw CaffeError.malformedBinary(file: file, message: "\(error)")
        }
    }

    /// `a ×3, b` for a list with repetitions, in first-seen order.
    static func summarize(_ items: [String]) -> String {
        var counts: [String: Int] = [:]
        var order: [String] = []
        for item in items {
            if counts[item] == nil { order.append(item) }
            counts[item, default: 0] += 1
        }
        return order.map { counts[$0]! > 1 ? "\($0) ×\(counts[$0]!)" : $0 }.joined(separator: ", ")
    }
}

/// A network read from a Caffe file, with what its data layer says about preprocessing.
public struct CaffeNet: Sendable {
    public var network: Network
    /// From the `Data`/`ImageData`/`MemoryData` layer's `transform_param`, if there is one.
    public var preprocessing: CaffePreprocessing?
    /// What was skipped or assumed, one sentence each (training-only layers, ignored fields).
    public var notes: [String]

    public init(network: Network, preprocessing: CaffePreprocessing? = nil, notes: [String] = []) {
        self.network = network
        self.preprocessing = preprocessing
        self.notes = notes
    }
}

/// Caffe's input transformation as declared by a data layer (`transform_param`, or the
/// legacy fields of `data_param`/`image_data_param`). Caffe applies, per pixel in
/// 0–255 units and in the image's channel order (BGR for images loaded by Caffe):
/// `(x − mean_c) · scale`, after cropping `cropSize` × `cropSize` (centre crop at test time).
public struct CaffePreprocessing: Sendable, Hashable {
    /// The data layer's name.
    public var layer: String
    /// Side of the square crop in pixels; `nil` when the layer does not crop.
    public var cropSize: Int?
    /// `ImageData` `new_height` × `new_width` resize before cropping, if set.
    public var resize: Size2?
    /// One value per channel, or one for all channels; empty when none is given.
    public var meanValues: [Float]
    /// A `.binaryproto` mean image (not read by MagicInit).
    public var meanFile: String?
    public var scale: Float
    public var mirror: Bool
    /// Channels of the input images: 3, or 1 for grey images.
    public var channels: Int
    /// The database or list file the layer reads in training.
    public var source: String?

    public init(layer: String, cropSize: Int? = nil, resize: Size2? = nil, meanValues: [Float] = [],
                meanFile: String? = nil, scale: Float = 1, mirror: Bool = false, channels: Int = 3,
                source: String? = nil) {
        self.layer = layer
        self.cropSize = cropSize
        self.resize = resize
        self.meanValues = meanValues
        self.meanFile = meanFile
        self.scale = scale
        self.mirror = mirror
        self.channels = channels
        self.source = source
    }
}
