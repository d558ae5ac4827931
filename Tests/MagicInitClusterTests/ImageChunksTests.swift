import Foundation
import Testing
import MagicInitCluster
import MagicInitCore
import MagicInitImages
import MagicInitSamples

/// The coordinator's image plan decodes files in parallel but must keep listing order:
/// chunk contents, the preprocessed tensor and the skip list as a sequential pass gives them.
@Suite struct ImageChunksTests {
    @Test func test_parallelPlan_keepsListingOrder_skipsUndecodableFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mi-chunks-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let broken = directory.appendingPathComponent("broken.jpg").path
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: broken))
        var paths = Array(try ImageCollection.listImages(in: SamplePhotos.folder).prefix(7))
        paths.insert(broken, at: 3)
        let loader = try ImageLoader(inputShape: [3, 24, 24], preprocessing: .caffe)
        var warnings: [String] = []
        let plan = try ImageChunks.plan(paths: paths, chunkSize: 3, loader: loader) { warnings.append($0) }
        let good = paths.filter { $0 != broken }
        #expect(plan.loaded == good)
        #expect(plan.skipped == [broken])
        #expect(warnings.count == 1 && warnings[0].contains("broken.jpg"))
        let names = plan.assignments.map { chunk -> [String] in
            guard case .files(let files) = chunk.inputs else { return [] }
            return files.map(\.name)
        }
        #expect(names == [Array(good[0..<3]), Array(good[3..<6]), Array(good[6..<7])])
        let sequential = try good.flatMap { loader.prepare(try ImageDecoding.decode(try ImageDecoding.readFile(path: $0), path: $0)) }
        #expect(plan.tensor.data == sequential)
    }

    /// Tensor inputs are cut into the same chunks as files would be: slices of `chunkSize`
    /// images in order, the last one shorter, together the whole tensor.
    @Test func test_tensorInputs_slicedIntoChunksInOrder() throws {
        let inputs = Tensor(shape: [7, 2, 3, 5], data: (0..<(7 * 30)).map { Float($0) })
        let plan = ImageChunks.plan(inputs: inputs, chunkSize: 3)
        #expect(plan.imageCount == 7 && plan.loaded.isEmpty)
        #expect(plan.assignments.map(\.firstImage) == [0, 3, 6])
        #expect(plan.assignments.map(\.imageCount) == [3, 3, 1])
        var joined: [Float] = []
        for chunk in plan.assignments {
            guard case .tensor(let slice) = chunk.inputs else { Issue.record("chunk \(chunk.index) holds files"); continue }
            #expect(Array(slice.shape.dropFirst()) == [2, 3, 5])
            joined += slice.data
        }
        #expect(joined == inputs.data)
    }
}
