/// Architectures MagicInit knows by name, written from their published definitions.
public enum BuiltinNetworks {
    /// Names accepted by ``network(named:)``.
    public static let names = ["caffenet", "vgg16", "small"]

    /// The built-in network called `name` (case-insensitive; `vgg-16` and `vgg_16` also work).
    public static func network(named name: String) -> Network? {
        switch name.lowercased().replacingOccurrences(of: "-", with: "").replacingOccurrences(of: "_", with: "") {
        case "caffenet": caffeNet()
        case "vgg16": vgg16()
        case "small": small()
        default: nil
        }
    }

    /// CaffeNet (BVLC `bvlc_reference_caffenet/deploy.prototxt`; Jia et al. 2014): AlexNet
    /// with pooling before normalisation, grouped conv2/4/5, input `(3, 227, 227)`.
    /// 60,965,224 parameters.
    public static func caffeNet(inputSize: Int = 227) -> Network {
        var b = NetworkBuilder(name: "CaffeNet", shape: [3, inputSize, inputSize])
        b.conv("conv1", 96, kernel: 11, stride: 4); b.relu("relu1")
        b.maxPool("pool1", kernel: 3, stride: 2); b.lrn("norm1")
        b.conv("conv2", 256, kernel: 5, pad: 2, groups: 2); b.relu("relu2")
        b.maxPool("pool2", kernel: 3, stride: 2); b.lrn("norm2")
        b.conv("conv3", 384, kernel: 3, pad: 1); b.relu("relu3")
        b.conv("conv4", 384, kernel: 3, pad: 1, groups: 2); b.relu("relu4")
        b.conv("conv5", 256, kernel: 3, pad: 1, groups: 2); b.relu("relu5")
        b.maxPool("pool5", kernel: 3, stride: 2)
        b.innerProduct("fc6", 4096); b.relu("relu6"); b.dropout("drop6")
        b.innerProduct("fc7", 4096); b.relu("relu7"); b.dropout("drop7")
        b.innerProduct("fc8", 1000)
        b.add("prob", .softmax(axis: 1))
        return b.network
    }

    /// VGG-16 (Simonyan & Zisserman 2015, configuration D; the authors' Caffe deploy file):
    /// thirteen 3×3 convolutions in five blocks, input `(3, 224, 224)`. 138,357,544 parameters.
    public static func vgg16(inputSize: Int = 224) -> Network {
        var b = NetworkBuilder(name: "VGG-16", shape: [3, inputSize, inputSize])
        let blocks = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
        for (i, (width, depth)) in blocks.enumerated() {
            for j in 1...depth {
                b.conv("conv\(i + 1)_\(j)", width, kernel: 3, pad: 1)
                b.relu("relu\(i + 1)_\(j)")
            }
            b.maxPool("pool\(i + 1)", kernel: 2, stride: 2)
        }
        b.innerProduct("fc6", 4096); b.relu("relu6"); b.dropout("drop6")
        b.innerProduct("fc7", 4096); b.relu("relu7"); b.dropout("drop7")
        b.innerProduct("fc8", 1000)
        b.add("prob", .softmax(axis: 1))
        return b.network
    }

    /// A small CaffeNet-like network for tests and examples, input `(3, 32, 32)`: three
    /// convolutions (one grouped), ReLU, max pooling, LRN, dropout and two inner products.
    public static func small(inputSize: Int = 32) -> Network {
        var b = NetworkBuilder(name: "small", shape: [3, inputSize, inputSize])
        b.conv("conv1", 16, kernel: 5, pad: 2); b.relu("relu1")
        b.maxPool("pool1", kernel: 3, stride: 2); b.lrn("norm1", localSize: 3)
        b.conv("conv2", 32, kernel: 3, pad: 1, groups: 2); b.relu("relu2")
        b.maxPool("pool2", kernel: 3, stride: 2)
        b.conv("conv3", 32, kernel: 3, pad: 1); b.relu("relu3")
        b.innerProduct("fc4", 64); b.relu("relu4"); b.dropout("drop4")
        b.innerProduct("fc5", 10)
        return b.network
    }
}
