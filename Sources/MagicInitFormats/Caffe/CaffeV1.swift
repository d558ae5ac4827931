/// The pre-2015 `layers { type: CONVOLUTION }` format, upgraded to current layers the way
/// Caffe's `UpgradeV1LayerParameter` does for the fields MagicInit reads.
enum CaffeV1 {
    static func upgrade(_ v1: Caffe_V1LayerParameter) -> Caffe_LayerParameter {
        var l = Caffe_LayerParameter()
        l.name = v1.name
        l.type = typeName(v1.type)
        l.bottom = v1.bottom
        l.top = v1.top
        l.blobs = v1.blobs
        l.include = v1.include
        l.exclude = v1.exclude
        if v1.hasConcatParam { l.concatParam = v1.concatParam }
        if v1.hasConvolutionParam { l.convolutionParam = v1.convolutionParam }
        if v1.hasDataParam { l.dataParam = v1.dataParam }
        if v1.hasDropoutParam { l.dropoutParam = v1.dropoutParam }
        if v1.hasEltwiseParam { l.eltwiseParam = v1.eltwiseParam }
        if v1.hasImageDataParam { l.imageDataParam = v1.imageDataParam }
        if v1.hasInnerProductParam { l.innerProductParam = v1.innerProductParam }
        if v1.hasLrnParam { l.lrnParam = v1.lrnParam }
        if v1.hasMemoryDataParam { l.memoryDataParam = v1.memoryDataParam }
        if v1.hasPoolingParam { l.poolingParam = v1.poolingParam }
        if v1.hasReluParam { l.reluParam = v1.reluParam }
        if v1.hasSoftmaxParam { l.softmaxParam = v1.softmaxParam }
        if v1.hasTransformParam { l.transformParam = v1.transformParam }
        return l
    }

    /// Caffe's `UpgradeV1LayerType`.
    static func typeName(_ type: Caffe_V1LayerParameter.LayerType) -> String {
        switch type {
        case .none: ""
        case .absval: "AbsVal"
        case .accuracy: "Accuracy"
        case .argmax: "ArgMax"
        case .bnll: "BNLL"
        case .concat: "Concat"
        case .contrastiveLoss: "ContrastiveLoss"
        case .convolution: "Convolution"
        case .data: "Data"
        case .deconvolution: "Deconvolution"
        case .dropout: "Dropout"
        case .dummyData: "DummyData"
        case .euclideanLoss: "EuclideanLoss"
        case .eltwise: "Eltwise"
        case .exp: "Exp"
        case .flatten: "Flatten"
        case .hdf5Data: "HDF5Data"
        case .hdf5Output: "HDF5Output"
        case .hingeLoss: "HingeLoss"
        case .im2Col: "Im2col"
        case .imageData: "ImageData"
        case .infogainLoss: "InfogainLoss"
        case .innerProduct: "InnerProduct"
        case .lrn: "LRN"
        case .memoryData: "MemoryData"
        case .multinomialLogisticLoss: "MultinomialLogisticLoss"
        case .mvn: "MVN"
        case .pooling: "Pooling"
        case .power: "Power"
        case .relu: "ReLU"
        case .sigmoid: "Sigmoid"
        case .sigmoidCrossEntropyLoss: "SigmoidCrossEntropyLoss"
        case .silence: "Silence"
        case .softmax: "Softmax"
        case .softmaxLoss: "SoftmaxWithLoss"
        case .split: "Split"
        case .slice: "Slice"
        case .tanh: "TanH"
        case .windowData: "WindowData"
        case .threshold: "Threshold"
        }
    }
}
