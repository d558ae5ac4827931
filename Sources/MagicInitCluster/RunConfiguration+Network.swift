import Foundation
import MagicInitCore
import MagicInitFormats
import MagicInitWire

extension RunConfiguration.Model {
    /// The network this model describes (a worker builds it when configured).
    /// - Throws: the format's error naming the layer or node, or ``ClusterError/worker(_:)``
    ///   for an unknown built-in name.
    public func network() throws -> Network {
        switch self {
        case .builtin(let name):
            guard let network = BuiltinNetworks.network(named: name) else { throw ClusterError.worker("unknown built-in network '\(name)'") }
            return network
        case .caffePrototxt(let text):
            return try Caffe.parsePrototxt(text, file: "<prototxt from the coordinator>").network
        case .onnx(let bytes):
            return try ONNXModel(serializedData: Data(bytes), file: "<onnx from the coordinator>").network
        }
    }
}
