// swift-tools-version: 6.0
// MagicInit — data-dependent initialisation of CNNs (Krähenbühl et al., ICLR 2016).
import PackageDescription

let package = Package(
    name: "MagicInit",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "MagicInitCore", targets: ["MagicInitCore"]),
        .library(name: "MagicInitEngine", targets: ["MagicInitEngine"]),
        .library(name: "MagicInitImages", targets: ["MagicInitImages"]),
        .library(name: "MagicInitReference", targets: ["MagicInitReference"]),
        .library(name: "MagicInitFormats", targets: ["MagicInitFormats"]),
        .library(name: "MagicInitStatistics", targets: ["MagicInitStatistics"]),
        .library(name: "MagicInitAlgorithms", targets: ["MagicInitAlgorithms"]),
        .library(name: "MagicInitCollector", targets: ["MagicInitCollector"]),
        .library(name: "MagicInitTransport", targets: ["MagicInitTransport"]),
        .library(name: "MagicInitZeroMQ", targets: ["MagicInitZeroMQ"]),
        .library(name: "MagicInitWire", targets: ["MagicInitWire"]),
        .library(name: "MagicInitCluster", targets: ["MagicInitCluster"]),
        .library(name: "MagicInitTestKit", targets: ["MagicInitTestKit"]),
        .executable(name: "mi-bench-engine", targets: ["mi-bench-engine"]),
        .executable(name: "mi-coordinator", targets: ["mi-coordinator"]),
        .executable(name: "mi-worker", targets: ["mi-worker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // System-library shims (Debian packages installed by scripts/setup); nothing else.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "CZMQ", path: "Sources/CZMQ"),
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4"),
        .systemLibrary(name: "CStb", path: "Sources/CStb"),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG"),
        .systemLibrary(name: "CLapacke", path: "Sources/CLapacke"),
        .systemLibrary(name: "CProcess", path: "Sources/CProcess"),

        // Tensors, the network graph IR, shape inference, built-in architectures.
        .target(name: "MagicInitCore"),
        // oneDNN-backed forward / backward for every layer family of the IR.
        .target(name: "MagicInitEngine", dependencies: ["MagicInitCore", "CDNNL"]),
        // A naive Float64 implementation of every layer: the independent reference.
        .target(name: "MagicInitReference", dependencies: ["MagicInitCore"]),
        // Mergeable moments (Chan et al.), square sums, covariance, and their binary codec;
        // the §3.3 patch whitening (LAPACKE dsyevd), PCA / ZCA and spherical k-means.
        .target(name: "MagicInitStatistics", dependencies: ["MagicInitCore", "CLapacke"]),
        // Algorithms 1 and 2 and the Figure-1 measurements: a driver over merged statistics.
        .target(name: "MagicInitAlgorithms", dependencies: ["MagicInitCore", "MagicInitStatistics", "CLapacke"]),
        // Per-chunk statistics on the engine (shared by the local source and the workers).
        .target(
            name: "MagicInitCollector",
            dependencies: ["MagicInitCore", "MagicInitEngine", "MagicInitStatistics", "MagicInitAlgorithms"]),
        // The transport protocols (ROUTER/DEALER semantics) and the in-process hub; no libzmq.
        .target(name: "MagicInitTransport"),
        // ZeroMQ ROUTER/DEALER sockets: the only module that imports libzmq.
        .target(name: "MagicInitZeroMQ", dependencies: ["MagicInitTransport", "CZMQ"]),
        // The wire protocol (cluster/PROTOCOL.md): messages, their codec, LZ4 block framing.
        .target(name: "MagicInitWire", dependencies: ["MagicInitCore", "MagicInitStatistics", "MagicInitAlgorithms", "CLZ4"]),
        // The coordinator and worker protocol state machines and their shells (the
        // coordinator's statistics source, the worker session), over any transport.
        .target(
            name: "MagicInitCluster",
            dependencies: ["MagicInitCore", "MagicInitEngine", "MagicInitStatistics", "MagicInitAlgorithms",
                           "MagicInitCollector", "MagicInitImages", "MagicInitTransport", "MagicInitWire", "MagicInitFormats"]),
        // JPEG/PNG decoding, resize + centre crop, mean/scale presets.
        .target(name: "MagicInitImages", dependencies: ["MagicInitCore", "CStb", "CTurboJPEG"]),
        // Caffe prototxt/caffemodel, ONNX and safetensors in and out (generated protobuf code
        // committed; see scripts/generate-protos).
        .target(
            name: "MagicInitFormats",
            dependencies: ["MagicInitCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Protos"]),

        // The embedded sample photographs (Public Domain / CC0), the main job's default input.
        .target(name: "MagicInitSamples", resources: [.copy("photos")]),
        // What the test targets share: fixture photographs and small networks.
        .target(
            name: "MagicInitTestKit",
            dependencies: ["MagicInitCore", "MagicInitAlgorithms", "MagicInitImages", "MagicInitSamples"]),

        .executableTarget(
            name: "mi-coordinator",
            dependencies: [
                "MagicInitCore", "MagicInitAlgorithms", "MagicInitCollector", "MagicInitEngine", "MagicInitFormats", "MagicInitImages",
                "MagicInitSamples", "MagicInitCluster", "MagicInitStatistics", "MagicInitTransport", "MagicInitWire", "MagicInitZeroMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "mi-worker",
            dependencies: [
                "CProcess", "MagicInitCluster", "MagicInitEngine", "MagicInitTransport", "MagicInitZeroMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "mi-bench-engine",
            dependencies: [
                "MagicInitCore", "MagicInitEngine", "MagicInitImages",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .testTarget(name: "MagicInitCoreTests", dependencies: ["MagicInitCore"]),
        .testTarget(
            name: "MagicInitAlgorithmsTests",
            dependencies: ["MagicInitCore", "MagicInitEngine", "MagicInitStatistics", "MagicInitAlgorithms",
                           "MagicInitCollector", "MagicInitReference", "MagicInitTestKit"]),
        .testTarget(
            name: "MagicInitCollectorTests",
            dependencies: ["MagicInitCore", "MagicInitEngine", "MagicInitStatistics", "MagicInitAlgorithms",
                           "MagicInitCollector", "MagicInitTestKit"]),
        .testTarget(
            name: "MagicInitEngineTests",
            dependencies: ["MagicInitCore", "MagicInitEngine", "MagicInitReference"]),
        .testTarget(name: "MagicInitReferenceTests", dependencies: ["MagicInitCore", "MagicInitReference"]),
        .testTarget(name: "MagicInitTransportTests", dependencies: ["MagicInitTransport", "MagicInitZeroMQ", "MagicInitWire"]),
        .testTarget(
            name: "MagicInitClusterTests",
            dependencies: ["MagicInitCore", "MagicInitAlgorithms", "MagicInitCollector", "MagicInitCluster",
                           "MagicInitTransport", "MagicInitWire", "MagicInitZeroMQ", "MagicInitImages", "MagicInitSamples", "MagicInitFormats"]),
        .testTarget(
            name: "MagicInitStatisticsTests",
            dependencies: ["MagicInitStatistics", "MagicInitCore", "MagicInitReference", "MagicInitTestKit"]),
        .testTarget(
            name: "MagicInitImagesTests",
            dependencies: ["MagicInitImages"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "MagicInitFormatsTests",
            dependencies: ["MagicInitFormats", "MagicInitCore"],
            resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v6]
)
