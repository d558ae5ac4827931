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
        /// Largest / smallest layer change rate before and after (the balanced measure).
        public var rateSpreadBefore: Double
        public var rateSpreadAfter: Double
        /// The same spreads by each measure (keys `eq4`, `weight-gradient`).
        public var spreadByMeasure: [String: MeasureSpread]
        /// The check of the closed form on a real pass (homogeneous networks), if one ran.
        public var verification: Verification?
        public var seconds: Double
        /// The tolerance `converged` was judged by: every `|C_k / C̄ − 1| ≤ tolerance`.
        public var tolerance: Double?
        /// Largest / smallest rate after every pass: pass 1, then the verification pass or
        /// each measurement pass (a step taken back still has its entry).
        public var spreadPerPass: [Double]?
        /// Steps taken back because the measured spread did not go down.
        public var backtracks: Int?
    }

    /// Largest / smallest layer change rate by one measure (`nil` where the pass did not
    /// compute it: eq. 4's first pass has no weight gradients).
    public struct MeasureSpread: Sendable, Codable, Equatable {
        public var before: Double?
        public var after: Double?
        /// Images the rates after were measured on: every image, or only Algorithm 2's
        /// verification images (weight-gradient rates when eq. 4 was balanced); 0 when none.
        public var afterImages: Int
    }

    /// The written weights measured on images the run did not see (one forward + backward
    /// pass with weight gradients, η drawn per image as in Algorithm 2): do the calibrations
    /// generalise? Compared with ``InitReport/figure1After`` on the initialisation images.
    public struct HeldOut: Sendable, Codable {
        /// The `--verify-images` argument and the images used from it.
        public var source: String
        public var images: Int
        /// Figure-1 rows on these images: channel mean/std (`meanOfMeans / meanOfStds`), the
        /// CV of the channel stds, the change rate by both measures.
        public var figure1: [LayerFigure1]
        /// Largest / smallest layer change rate on these images, per measure.
        public var spreadByMeasure: [String: Double]

        public init(source: String, images: Int, figure1: [LayerFigure1], spreadByMeasure: [String: Double]) {
            self.source = source
            self.images = images
            self.figure1 = figure1
            self.spreadByMeasure = spreadByMeasure
        }
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
    /// `--verify-images`: the written weights measured on other images.
    public var heldOut: HeldOut?
    /// Wall time per phase, seconds.
    public var phaseSeconds: [String: Double] = [:]
}
