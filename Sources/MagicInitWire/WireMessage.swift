import MagicInitAlgorithms
import MagicInitCore

/// The protocol version this build speaks, carried in every message's header; a peer
/// with another version is answered with `reject` naming both versions (a `reject` is the
/// one message every version decodes). Version 3: `hello` carries no second version field;
/// version 4: `configure` carries the keep-affine-inputs flag; version 5: Algorithm 1's
/// normalisation is its own directive (`normalize`, which ends the layer's step) instead of
/// an `affine` one.
public let wireProtocolVersion: UInt16 = 5

/// What a run needs to build the network on a worker (cluster/PROTOCOL.md, `configure`).
public struct RunConfiguration: Sendable, Equatable {
    /// How the worker obtains the network.
    public enum Model: Sendable, Equatable {
        /// A built-in architecture by name (`caffenet`, `vgg16`, `small`).
        case builtin(name: String)
        /// A Caffe deploy prototxt (its text).
        case caffePrototxt(text: String)
        /// An ONNX model file (its bytes; the weights in it are not used by workers).
        case onnx(bytes: [UInt8])
    }
    public var model: Model
    public var chunkSize: Int
    /// Seed of the top gradients η and the Gaussian weights.
    public var seed: UInt64
    /// Per-image input shape `(C, H, W)`; C = 3 for chunks of image files.
    public var inputShape: [Int]
    /// Preprocessing of image files (not of tensor chunks): `bgr` channel order,
    /// per-channel mean and std (0–255 scale).
    public var bgr: Bool
    public var mean: [Double]
    public var std: [Double]
    /// `true`: resize the shorter side and centre-crop; `false`: stretch.
    public var centerCrop: Bool
    /// Algorithm 1 keeps every affine layer's input (``ChunkCollector/Options/keepsAffineInputs``):
    /// set when Algorithm 2 will measure weight gradients.
    public var keepAffineInputs: Bool

    public init(model: Model, chunkSize: Int, seed: UInt64, inputShape: [Int], bgr: Bool, mean: [Double], std: [Double], centerCrop: Bool,
                keepAffineInputs: Bool = false) {
        self.keepAffineInputs = keepAffineInputs
        self.model = model
        self.chunkSize = chunkSize
        self.seed = seed
        self.inputShape = inputShape
        self.bgr = bgr
        self.mean = mean
        self.std = std
        self.centerCrop = centerCrop
    }
}

/// One chunk as shipped to a worker: the encoded image files or the preprocessed input
/// tensor slice, so no shared file system is needed.
public struct ChunkAssignment: Sendable, Equatable {
    public var index: Int
    public var firstImage: Int
    public var inputs: Inputs

    /// What a chunk's images arrive as.
    public enum Inputs: Sendable, Equatable {
        /// `(file name, encoded JPEG/PNG bytes)` per image, in order; the worker decodes and
        /// preprocesses them as the run's configuration says.
        case files([ImageFile])
        /// Preprocessed inputs `(n, C, H, W)` (`mi-coordinator --inputs`), used as they are.
        case tensor(Tensor)
    }

    public struct ImageFile: Sendable, Equatable {
        public var name: String
        public var bytes: [UInt8]
        public init(name: String, bytes: [UInt8]) {
            self.name = name
            self.bytes = bytes
        }
    }

    /// A chunk of image files.
    public init(index: Int, firstImage: Int, images: [ImageFile]) {
        self.init(index: index, firstImage: firstImage, inputs: .files(images))
    }

    public init(index: Int, firstImage: Int, inputs: Inputs) {
        self.index = index
        self.firstImage = firstImage
        self.inputs = inputs
    }

    /// Images in the chunk.
    public var imageCount: Int {
        switch inputs {
        case .files(let files): files.count
        case .tensor(let tensor): tensor.shape.first ?? 0
        }
    }
}

/// What a statistics request asks for.
public enum StatisticsKind: Sendable, Equatable {
    /// Algorithm 1: moments of affine layer `layer`'s output.
    case outputMoments(layer: String)
    /// Algorithm 2 / Figure 1: a measurement pass with top gradients from stream `etaStep`.
    case measure(etaStep: Int, weightGradients: Bool)
}

/// Every message of the coordinator ↔ worker protocol (cluster/PROTOCOL.md).
public enum WireMessage: Sendable, Equatable {
    /// Worker → coordinator, first message: who it is and what it can do.
    case hello(host: String, threads: Int, capabilities: [String])
    /// Coordinator → worker: accepted; heartbeat settings in milliseconds.
    case welcome(workerIndex: Int, heartbeatIntervalMilliseconds: Int, livenessHeartbeats: Int)
    /// Either way: refused, with the reason (e.g. protocol version).
    case reject(reason: String)
    case configure(RunConfiguration)
    case assign([ChunkAssignment])
    /// Weight directives number `first…first+count−1` of the run's directive log.
    case directives(first: Int, [WeightDirective])
    /// Compute `kind` for `chunks` once directives up to `directiveCount` are applied.
    case request(step: Int, kind: StatisticsKind, chunks: [Int], directiveCount: Int)
    /// Partial statistics of one chunk: LZ4 block of `uncompressedBytes` bytes.
    case reply(step: Int, chunk: Int, uncompressedBytes: Int, payload: [UInt8])
    case heartbeat
    case shutdown(reason: String)
    /// Either way: something failed; `message` names the layer, chunk or file.
    case error(message: String)
    /// Worker → coordinator after `shutdown`: its peak resident memory, bytes.
    case goodbye(peakResidentBytes: Int)

    var typeCode: UInt8 {
        switch self {
        case .hello: 1
        case .welcome: 2
        case .reject: 3
        case .configure: 4
        case .assign: 5
        case .directives: 6
        case .request: 7
        case .reply: 8
        case .heartbeat: 9
        case .shutdown: 10
        case .error: 11
        case .goodbye: 12
        }
    }

    /// Short name for logs.
    public var name: String {
        ["", "hello", "welcome", "reject", "configure", "assign", "directives", "request", "reply", "heartbeat", "shutdown", "error", "goodbye"][Int(typeCode)]
    }
}

/// An envelope: the message with the run it belongs to.
public struct WireEnvelope: Sendable, Equatable {
    public var runID: UInt64
    public var message: WireMessage
    public init(runID: UInt64, message: WireMessage) {
        self.runID = runID
        self.message = message
    }
}
