import MagicInitCore

extension ChannelScales {
    /// The parameter changes that make the BatchNorm and Scale-with-bias layers follow
    /// Algorithm 2's factors exactly (docs/DESIGN.md §2, "Residual sums and normalisation"),
    /// for factors `factors` (tied, see ``tie(_:)``) applied on top of `parameters`. With
    /// `s_c` the factor input channel `c` carries:
    ///
    /// * `BatchNorm` `(x − m/f) / √(v/f + ε)` (Caffe blobs mean `m`, variance `v`, factor
    ///   `f`): effective mean `M = m/f → s_c M`, effective variance `V = v/f → s_c² (V + ε) − ε`,
    ///   so the output is unchanged for every input (ε included). A stored factor 0 (Caffe:
    ///   mean and variance 0) becomes 1. Where `s_c² (V + ε) < ε` (a channel whose variance is
    ///   below ε, made smaller) the variance is set to 0 and the channel is listed in `clamped`.
    /// * `Scale` with bias: `β_c → s_c β_c`.
    ///
    /// - Parameters:
    ///   - factors: per affine layer, the factor its output is multiplied by now.
    ///   - parameters: the current values of the BatchNorm and Scale parameters (others
    ///     are not read).
    /// - Returns: `.set` directives (only for layers whose input carries a factor ≠ 1), and
    ///   the BatchNorm channels (as `layer[channel]`) whose variance had to be clamped.
    /// - Throws: ``AlgorithmError/badDirective(layer:reason:)`` when a parameter is missing.
    public func normalizationDirectives(factors: [Double], parameters: ParameterSet) throws
        -> (directives: [WeightDirective], clamped: [String]) {
        var directives: [WeightDirective] = []
        var clamped: [String] = []
        for (n, sources) in normalizations {
            let node = graph.nodes[n]
            let s = sources.map { $0 < 0 ? 1 : factors[$0] }
            guard s.contains(where: { $0 != 1 }) else { continue }
            func value(_ role: ParameterRole) throws -> Tensor {
                guard let spec = node.parameters.first(where: { $0.role == role }), let tensor = parameters[spec.key] else {
                    throw AlgorithmError.badDirective(layer: node.name, reason: "no \(role.rawValue) to rescale")
                }
                return tensor
            }
            switch node.kind {
            case .batchNorm(let eps):
                let mean = try value(.runningMean), variance = try value(.runningVar), factor = try value(.movingAverageFactor)
                let f = Double(factor.data[0])
                let stored = f == 0 ? 1 : f
                let inverse = f == 0 ? 0 : 1 / f
                let e = Double(eps)
                var newMean = mean, newVariance = variance
                for c in s.indices {
                    let m = Double(mean.data[c]) * inverse, v = Double(variance.data[c]) * inverse
                    var scaled = s[c] * s[c] * (v + e) - e
                    if scaled < 0 {
                        clamped.append("\(node.name)[\(c)]")
                        scaled = 0
                    }
                    newMean.data[c] = Float(s[c] * m * stored)
                    newVariance.data[c] = Float(scaled * stored)
                }
                directives.append(.set(key: node.parameters.first { $0.role == .runningMean }!.key, value: newMean))
                directives.append(.set(key: node.parameters.first { $0.role == .runningVar }!.key, value: newVariance))
                if f == 0 {
                    directives.append(.set(key: node.parameters.first { $0.role == .movingAverageFactor }!.key,
                                           value: Tensor(shape: factor.shape, data: [1])))
                }
            case .scale:
                var bias = try value(.bias)
                for c in s.indices { bias.data[c] = Float(Double(bias.data[c]) * s[c]) }
                directives.append(.set(key: node.parameters.first { $0.role == .bias }!.key, value: bias))
            default:
                continue
            }
        }
        return (directives, clamped)
    }
}
