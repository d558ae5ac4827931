import Testing
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitEngine
import MagicInitStatistics
import MagicInitTestKit

/// Independent check of a network's weights: a fresh engine, one batch with every image,
/// per-channel moments of every affine layer's output.
func affineOutputMoments(_ network: Network, parameters: ParameterSet, images: Tensor) throws -> [(String, ChannelMoments)] {
    let graph = try Graph(network, batchSize: images.shape[0])
    let engine = try Engine(graph: graph)
    try engine.setParameters(parameters)
    try engine.setInput(images)
    try engine.forward()
    return try graph.nodes.filter { $0.kind.isAffine }.map { node in
        (node.name, ChannelMoments(accumulating: try engine.value(of: node.tops[0])))
    }
}

/// The network's outputs (Softmax dropped) for `images` under `parameters`.
func scores(_ network: Network, parameters: ParameterSet, images: Tensor) throws -> Tensor {
    let graph = try Graph(ChunkCollector.droppingOutputSoftmax(network), batchSize: images.shape[0])
    let engine = try Engine(graph: graph)
    try engine.setParameters(parameters)
    try engine.setInput(images)
    try engine.forward()
    return try engine.value(of: graph.outputs[0])
}
