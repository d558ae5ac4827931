/// What an initialisation run did, per layer and per phase; written as JSON next to the
/// weights and printed as a table.
public struct InitReport: Sendable, Codable {
    /// Summary of per-channel statistics of an affine layer's output `z_k`.
    public struct ChannelSummary: Sendable, Codable, Equatable {
        public var meanMin: Double, meanMax: Double
        public var stdMin: Double, stdMax: Double
    }

    public struct Layer: Sendable, Codable {
        public var name: String
        public var type: String
        public var channels: Int
        /// Algorithm 1: the output statistics of the starting weights (through the already
        /// normalised layers below) and after normalisation.
        public var before: ChannelSummary?
        public var after: ChannelSummary?
        /// Channels whose standard deviation stayed 0 after every redraw (left unscaled).
        public var deadChannels: [Int] = []
        public var redraws: Int = 0
        /// Algorithm 2 cumulative output factor `R_k` applied to this layer.
        public var betweenLayerFactor: Double?
        public var algorithm1Seconds: Double?
    }

    public struct Algorithm2: Sendable, Codable {
        /// Which change-rate measure was balanced (`eq4` or `weight-gradient`).
        public var rateMeasure: String
        /// Whether every layer is homogeneous (closed form exact) or which layers are not.
        public var homogeneous: Bool
        public var nonHomogeneousLayers: [String]
        /// Measurement passes (the first over every image; a verification pass may cover
        /// only some, see ``verification``).
        public var passes: Int
        /// Damped steps taken on the closed-form model.
        public var modelSteps: Int
        public var converged: Bool
        /// Largest / smallest layer change rate before and after.
        public var rateSpreadBefore: Double
        public var rateSpreadAfter: Double
        /// The check of the closed form on a real pass (homogeneous networks), if one ran.
        public var verification: Verification?
        public var seconds: Double
    }

    /// Algorithm 2's verification pass: a real forward + backward pass over the first
    /// `chunks` chunks (`images` images), compared with the change rates the closed form
    /// predicts for the same images and η.
    public struct Verification: Sendable, Codable {
        public var images: Int
        public var chunks: Int
        /// Largest `|measured / predicted − 1|` over the layers, of rates relative to their
        /// geometric mean (the model leaves the global output scale out).
        public var maxRateDeviation: Double
        public var tolerance: Double
        public var passed: Bool { maxRateDeviation <= tolerance }
    }

    public var network: String
    public var images: Int
    public var chunkSize: Int
    public var options: InitOptions
    public var layers: [Layer]
    public var algorithm2: Algorithm2?
    /// Figure-1 rows measured before Algorithm 2 (after Algorithm 1) and at the end.
    public var figure1Before: [LayerFigure1]?
    public var figure1After: [LayerFigure1]?
    /// Wall time per phase, seconds.
    public var phaseSeconds: [String: Double] = [:]
}
