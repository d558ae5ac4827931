/// Appends layers to a ``Network`` one after another, each reading the previous top, the
/// way a Caffe deploy prototxt reads. Activations are in place, as in Caffe's files.
public struct NetworkBuilder: Sendable {
    public private(set) var network: Network
    /// The blob the next layer reads.
    public var current: String

    /// Starts a network with one input blob `input` of per-image shape `shape` `(C, H, W)`.
    public init(name: String, input: String = "data", shape: [Int]) {
        network = Network(name: name, inputs: [.init(name: input, shape: shape)], layers: [])
        current = input
    }

    /// Appends `kind` as layer `name` reading `bottoms` (default: the current blob) and
    /// writing `top` (default: `name`), which becomes the current blob.
    public mutating func add(_ name: String, _ kind: LayerKind, bottoms: [String]? = nil, top: String? = nil) {
        let top = top ?? name
        network.layers.append(Layer(name: name, kind: kind, bottoms: bottoms ?? [current], tops: [top]))
        current = top
    }

    /// Appends an in-place layer (top == bottom), e.g. `relu1` on `conv1`.
    public mutating func addInPlace(_ name: String, _ kind: LayerKind) {
        add(name, kind, top: current)
    }

    public mutating func conv(_ name: String, _ numOutput: Int, kernel: Int, stride: Int = 1, pad: Int = 0,
                              dilation: Int = 1, groups: Int = 1) {
        add(name, .convolution(.init(numOutput: numOutput, kernel: Size2(kernel), stride: Size2(stride),
                                     pad: Size2(pad), dilation: Size2(dilation), groups: groups)))
    }

    public mutating func innerProduct(_ name: String, _ numOutput: Int) {
        add(name, .innerProduct(.init(numOutput: numOutput)))
    }

    public mutating func relu(_ name: String) { addInPlace(name, .relu(negativeSlope: 0)) }

    public mutating func dropout(_ name: String, ratio: Float = 0.5) { addInPlace(name, .dropout(ratio: ratio)) }

    public mutating func maxPool(_ name: String, kernel: Int, stride: Int, pad: Int = 0) {
        add(name, .pooling(.init(method: .max, kernel: Size2(kernel), stride: Size2(stride), pad: Size2(pad))))
    }

    public mutating func averagePool(_ name: String, kernel: Int, stride: Int, pad: Int = 0) {
        add(name, .pooling(.init(method: .average, kernel: Size2(kernel), stride: Size2(stride), pad: Size2(pad))))
    }

    public mutating func lrn(_ name: String, localSize: Int = 5, alpha: Float = 1e-4, beta: Float = 0.75) {
        add(name, .lrn(.init(localSize: localSize, alpha: alpha, beta: beta)))
    }
}
