import MagicInitCore

/// Turns a decoded `NetParameter` (text or binary) into a ``Network``: the three input forms
/// (`input:` with `input_dim:` or `input_shape`, an `Input` layer, a data layer), the TEST
/// phase's layers in file order (in-place layers kept as written), training-only layers
/// skipped with a note.
struct CaffeNetReader {
    let file: String
    private var notes: [String] = []
    private var inputs: [Network.Input] = []
    private var preprocessing: CaffePreprocessing?

    init(file: String) { self.file = file }

    mutating func read(_ net: Caffe_NetParameter) throws(CaffeError) -> CaffeNet {
        try readLegacyInputs(net)
        var layers: [Caffe_LayerParameter] = net.layer
        if !net.layers.isEmpty {
            guard net.layer.isEmpty else {
                throw CaffeError.invalidField(file: file, position: nil, field: "layers",
                                              message: "the file mixes V1 'layers' and current 'layer' entries")
            }
            layers = net.layers.map(CaffeV1.upgrade)
            notes.append("read the legacy V1 'layers' format")
        }

        var irLayers: [Layer] = []
        var skipped: [String] = []
        for layer in layers {
            guard CaffeNetReader.runsInTestPhase(layer) else {
                skipped.append("'\(layer.name)' (\(layer.type), not in the TEST phase)")
                continue
            }
            switch layer.type {
            case "Input":
                try readInputLayer(layer)
            case "Data", "ImageData", "MemoryData":
                try readDataLayer(layer)
            case let type where Caffe.skippedLayerTypes.contains(type):
                skipped.append("'\(layer.name)' (\(type))")
            default:
                let kind = try CaffeLayerMapping.kind(of: layer, file: file, notes: &notes)
                irLayers.append(Layer(name: layer.name, kind: kind, bottoms: layer.bottom, tops: layer.top))
            }
        }
        if !skipped.isEmpty { notes.append("skipped training-only layers: " + skipped.joined(separator: ", ")) }
        guard !inputs.isEmpty else { throw CaffeError.noInputs(file: file) }
        let network = Network(name: net.name, inputs: inputs, layers: irLayers)
        return CaffeNet(network: network, preprocessing: preprocessing, notes: notes)
    }

    /// Caffe's `StateMeetsRule` for the deploy state (phase TEST, level 0, no stages).
    static func runsInTestPhase(_ layer: Caffe_LayerParameter) -> Bool {
        func meets(_ rule: Caffe_NetStateRule) -> Bool {
            if rule.hasPhase && rule.phase != .test { return false }
            if rule.hasMinLevel && 0 < rule.minLevel { return false }
            if rule.hasMaxLevel && 0 > rule.maxLevel { return false }
            return rule.stage.isEmpty  // the deploy state has no stages
        }
        if layer.hasPhase && layer.phase == .train { return false }
        if !layer.include.isEmpty { return layer.include.contains(where: meets) }
        return !layer.exclude.contains(where: meets)
    }

    /// `input: "data"` with four `input_dim:` per input, or with one `input_shape { }` each.
    private mutating func readLegacyInputs(_ net: Caffe_NetParameter) throws(CaffeError) {
        guard !net.input.isEmpty else { return }
        for (i, name) in net.input.enumerated() {
            let dims: [Int]
            if net.inputShape.count == net.input.count {
                dims = net.inputShape[i].dim.map { Int($0) }
            } else if net.inputDim.count == 4 * net.input.count {
                dims = net.inputDim[(4 * i)..<(4 * i + 4)].map { Int($0) }
            } else {
                throw CaffeError.missingInputShape(
                    file: file, input: name,
                    message: "\(net.input.count) input(s) need one input_shape or four input_dim each; found \(net.inputShape.count) input_shape and \(net.inputDim.count) input_dim")
            }
            try addInput(name, dims: dims, what: "input")
        }
    }

    private mutating func readInputLayer(_ layer: Caffe_LayerParameter) throws(CaffeError) {
        let shapes = layer.inputParam.shape
        guard shapes.count == layer.top.count || shapes.count == 1 else {
            throw CaffeError.missingInputShape(file: file, input: layer.top.first ?? layer.name,
                                               message: "Input layer '\(layer.name)' has \(layer.top.count) tops but \(shapes.count) shapes")
        }
        for (i, top) in layer.top.enumerated() {
            try addInput(top, dims: shapes[shapes.count == 1 ? 0 : i].dim.map { Int($0) }, what: "Input layer '\(layer.name)'")
        }
    }

    /// `dims` includes the batch axis, which the IR leaves out.
    private mutating func addInput(_ name: String, dims: [Int], what: String) throws(CaffeError) {
        guard dims.count >= 2, dims.dropFirst().allSatisfy({ $0 >= 1 }) else {
            throw CaffeError.missingInputShape(file: file, input: name,
                                               message: "\(what) has shape \(describeShape(dims)); need (N, C, …) with positive extents")
        }
        inputs.append(Network.Input(name: name, shape: Array(dims.dropFirst())))
    }

    /// A data layer becomes the input `(C, crop, crop)`; its label top is dropped.
    private mutating func readDataLayer(_ layer: Caffe_LayerParameter) throws(CaffeError) {
        guard let top = layer.top.first else {
            throw CaffeError.missingInputShape(file: file, input: layer.name, message: "data layer has no top")
        }
        let t = layer.transformParam
        let legacyCrop = layer.type == "ImageData" ? layer.imageDataParam.cropSize : layer.dataParam.cropSize
        var p = CaffePreprocessing(layer: layer.name)
        p.cropSize = t.cropSize > 0 ? Int(t.cropSize) : (legacyCrop > 0 ? Int(legacyCrop) : nil)
        p.meanValues = t.meanValue
        p.mirror = t.mirror
        p.scale = t.hasScale ? t.scale : (layer.type == "ImageData" ? layer.imageDataParam.scale : layer.dataParam.scale)
        let meanFile = t.hasMeanFile ? t.meanFile : (layer.type == "ImageData" ? layer.imageDataParam.meanFile : layer.dataParam.meanFile)
        p.meanFile = meanFile.isEmpty ? nil : meanFile
        p.channels = t.forceGray ? 1 : 3

        var height = p.cropSize, width = p.cropSize
        switch layer.type {
        case "ImageData":
            let d = layer.imageDataParam
            if !d.isColor { p.channels = 1 }
            if d.newHeight > 0 && d.newWidth > 0 { p.resize = Size2(Int(d.newHeight), Int(d.newWidth)) }
            if height == nil, let r = p.resize { height = r.h; width = r.w }
            p.source = d.hasSource ? d.source : nil
        case "MemoryData":
            let d = layer.memoryDataParam
            p.channels = Int(d.channels)
            if height == nil { height = Int(d.height); width = Int(d.width) }
        default:
            p.source = layer.dataParam.hasSource ? layer.dataParam.source : nil
            if !t.forceGray && !t.forceColor {
                notes.append("data layer '\(layer.name)': assumed 3-channel (colour) images")
            }
        }
        guard let h = height, let w = width, h > 0, w > 0, p.channels > 0 else {
            throw CaffeError.missingInputShape(
                file: file, input: top,
                message: "\(layer.type) layer '\(layer.name)' has no crop_size, so the image size is only known from its database; add transform_param { crop_size: … } or use an Input layer")
        }
        if !p.meanValues.isEmpty && p.meanValues.count != 1 && p.meanValues.count != p.channels {
            throw CaffeError.unsupportedSetting(file: file, layer: layer.name,
                                                message: "\(p.meanValues.count) mean_value for \(p.channels) channels; give one or one per channel")
        }
        if preprocessing == nil {
            preprocessing = p
        } else {
            notes.append("data layer '\(layer.name)': a second data layer; its preprocessing is ignored")
        }
        if layer.top.count > 1 { notes.append("data layer '\(layer.name)': label top '\(layer.top[1])' dropped") }
        inputs.append(Network.Input(name: top, shape: [p.channels, h, w]))
    }
}
