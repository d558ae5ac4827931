import Foundation
import MagicInitAlgorithms
import MagicInitCore
import MagicInitImages
import MagicInitSamples

// Fixtures the test targets share: real photographs and small networks.

/// Real photographs shipped in the repo (the image module's fixtures; Public Domain / CC0).
public enum FixturePhotos {
    public static var folder: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tests/MagicInitImagesTests/Fixtures").path
    }

    public static let names = [
        "000_gcompris__fishes__fish1.jpg", "028_gcompris__monuments__IndiaGate.jpg",
        "036_gcompris__monuments__eiffelTower.jpg", "049_gcompris__monuments__parthenon.jpg",
        "061_gcompris__renewable__solar1.jpg", "085_gcompris__tools__hammer1.jpg",
        "png_parthenon.png", "cmyk_hammer1.jpg",
    ]

    /// The photos at `size`², Caffe preprocessing, `(8, 3, size, size)`.
    public static func load(size: Int) throws -> Tensor {
        let loader = try ImageLoader(inputShape: [3, size, size], preprocessing: .caffe)
        return try loader.loadBatch(paths: names.map { folder + "/" + $0 }) { _ in }.tensor
    }
}

/// The 32 embedded sample photos (`MagicInitSamples`) at `size`², Caffe preprocessing,
/// `(32, 3, size, size)`.
public func embeddedPhotos(size: Int) throws -> Tensor {
    let loader = try ImageLoader(inputShape: [3, size, size], preprocessing: .caffe)
    let paths = try ImageCollection.listImages(in: MagicInitSamples.SamplePhotos.folder)
    return try loader.loadBatch(paths: paths) { _ in }.tensor
}

/// Gaussian `N(0, std²)` weights and zero biases for every affine layer.
public func gaussianParameters(_ network: Network, std: Double, seed: UInt64 = 3) throws -> ParameterSet {
    let graph = try Graph(network)
    var out: ParameterSet = [:]
    for spec in graph.parameters where spec.role == .weight || spec.role == .bias {
        out[spec.key] = spec.role == .weight ? GaussianWeights.generate(spec: spec, seed: seed, std: std) : Tensor(shape: spec.shape)
    }
    return out
}

/// A ReLU network without LRN (homogeneous), seven affine layers: convolutions (one
/// grouped), max and average pooling, dropout and inner products, input `(3, 32, 32)`.
public func reluNetwork() -> Network {
    var b = NetworkBuilder(name: "relu-net", shape: [3, 32, 32])
    b.conv("conv1", 16, kernel: 5, stride: 2, pad: 2); b.relu("relu1")
    b.maxPool("pool1", kernel: 2, stride: 2)
    b.conv("conv2", 24, kernel: 3, pad: 1, groups: 2); b.relu("relu2")
    b.conv("conv3", 32, kernel: 3, pad: 1); b.relu("relu3")
    b.conv("conv3b", 32, kernel: 3, pad: 1); b.relu("relu3b")
    b.conv("conv3c", 48, kernel: 3, pad: 1); b.relu("relu3c")
    b.averagePool("pool3", kernel: 2, stride: 2)
    b.innerProduct("fc4", 48); b.relu("relu4"); b.dropout("drop4")
    b.innerProduct("fc5", 10)
    return b.network
}
