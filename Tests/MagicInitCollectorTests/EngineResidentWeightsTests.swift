import Testing
import MagicInitAlgorithms
import MagicInitCollector
import MagicInitCore
import MagicInitStatistics
import MagicInitTestKit

/// Weights that oneDNN keeps in the Caffe layout may live only in the engine's buffer
/// (`engineResidentBytes`): every statistic and every weight must come out bitwise as when
/// the replica keeps its own copy, on one engine and on two, and after a chunk adopted
/// mid-run is rebuilt by replaying Algorithm 1 (the replay runs older weights through the
/// engine and must put the resident ones back).
@Suite struct EngineResidentWeightsTests {
    @Test(arguments: [1, 2])
    func test_engineResidentWeights_giveTheSameBitsAsAReplicaCopy(threads: Int) throws {
        let network = reluNetwork()
        let images = try FixturePhotos.load(size: 32)
        let chunks = LocalStatisticsSource.chunks(of: images, size: 4)
        // Which weights oneDNN keeps in the Caffe layout by itself depends on the CPU (an
        // AVX2-only EPYC keeps none of this network's): pin a grouped convolution's and both
        // inner products' in both collectors, so they compute alike on any CPU.
        let plain: Set<String> = ["conv2.weight", "fc4.weight", "fc5.weight"]
        let resident = try collector(network, threads: threads) { $0.engineResidentBytes = 0; $0.plainWeights = plain }
        let copied = try collector(network, threads: threads) { $0.engineResidentBytes = .max; $0.plainWeights = plain }
        #expect(plain.isSubset(of: resident.engineResidentKeys), "engine-resident: \(resident.engineResidentKeys.sorted())")
        #expect(copied.engineResidentKeys.isEmpty)
        let half = chunks.count / 2
        let a = try algorithm1ThenMeasurements(resident, early: Array(chunks[..<half]), late: Array(chunks[half...]), lateAfter: 3)
        let b = try algorithm1ThenMeasurements(copied, early: Array(chunks[..<half]), late: Array(chunks[half...]), lateAfter: 3)
        expectSameBits(a, b)
        // Every engine (the second copies the first's buffer) holds the final weights.
        for (e, engine) in resident.engines.enumerated() {
            for key in resident.engineResidentKeys {
                let same = try engine.parameterValue(key).data.map(\.bitPattern) == b.weights[key]?.data.map(\.bitPattern)
                #expect(same, "engine \(e) holds other values of \(key)")
            }
        }
    }
}
