import Foundation
import Testing
@testable import MagicInitFormats

/// The weights and the report are put in place together or not at all (issue 19, part 4).
@Suite struct OutputFilesTests {
    static func scratch() throws -> String {
        let path = NSTemporaryDirectory() + "mi-output-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func listing(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
    }

    @Test func test_twoFilesStagedAndCommitted_appearTogether_noTemporaryLeft() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let weights = folder + "/sub/w.safetensors", report = folder + "/sub/w.report.json"
        let files = OutputFiles()
        try files.prepareFolders(for: weights)
        try files.stage(Data("new weights".utf8), as: weights)
        try files.stage(Data("new report".utf8), as: report)
        #expect(Self.listing(folder + "/sub").count == 2 && !FileManager.default.fileExists(atPath: weights), "staged files are hidden temporaries")
        try files.commit()
        #expect(Self.listing(folder + "/sub") == ["w.report.json", "w.safetensors"])
        #expect(try String(contentsOfFile: weights, encoding: .utf8) == "new weights")
        #expect(try String(contentsOfFile: report, encoding: .utf8) == "new report")
    }

    /// The report's write fails after the weights were written (as on a full disk): both
    /// temporaries go, the previous files stay as they were, and a folder made for the run
    /// is removed.
    @Test func test_secondWriteFails_previousFilesUnchanged() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let weights = folder + "/w.safetensors", report = folder + "/w.report.json"
        try Data("old weights".utf8).write(to: URL(fileURLWithPath: weights))
        try Data("old report".utf8).write(to: URL(fileURLWithPath: report))
        let files = OutputFiles()
        try files.stage(Data("new weights".utf8), as: weights)
        #expect(throws: FormatError.unwritable(path: report, reason: "No space left on device")) {
            try files.stage(report) { _ in throw FormatError.unwritable(path: "temporary", reason: "No space left on device") }
        }
        files.discard()
        #expect(Self.listing(folder) == ["w.report.json", "w.safetensors"])
        #expect(try String(contentsOfFile: weights, encoding: .utf8) == "old weights")
        #expect(try String(contentsOfFile: report, encoding: .utf8) == "old report")

        let fresh = OutputFiles()
        try fresh.prepareFolders(for: folder + "/a/b/w.safetensors")
        #expect(FileManager.default.fileExists(atPath: folder + "/a/b"))
        fresh.discard()
        #expect(!FileManager.default.fileExists(atPath: folder + "/a"), "a folder made for a failed write is left")
    }

    /// The second rename fails (its destination is a non-empty folder): the first file is put
    /// back as it was.
    @Test func test_secondRenameFails_firstIsRolledBack() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let weights = folder + "/w.safetensors", blocked = folder + "/w.report.json"
        try Data("old weights".utf8).write(to: URL(fileURLWithPath: weights))
        try FileManager.default.createDirectory(atPath: blocked + "/inside", withIntermediateDirectories: true)
        let files = OutputFiles()
        try files.stage(Data("new weights".utf8), as: weights)
        try files.stage(Data("new report".utf8), as: blocked)
        #expect(throws: FormatError.self) { try files.commit() }
        #expect(try String(contentsOfFile: weights, encoding: .utf8) == "old weights")
        #expect(Self.listing(folder) == ["w.report.json", "w.safetensors"], "temporaries or backups left: \(Self.listing(folder))")

        // Without a previous file, the first is removed again.
        try FileManager.default.removeItem(atPath: weights)
        let again = OutputFiles()
        try again.stage(Data("new weights".utf8), as: weights)
        try again.stage(Data("new report".utf8), as: blocked)
        #expect(throws: FormatError.self) { try again.commit() }
        #expect(Self.listing(folder) == ["w.report.json"])
    }

    /// Paths that cannot take a file fail the check with the reason; a creatable path passes
    /// and nothing is left behind. (Permission bits do not stop root, so the check creates a
    /// file for real: `/proc` and `/sys` refuse it to everyone.)
    @Test func test_checkWritable_triesForReal_leavesNothing() throws {
        let folder = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for path in ["/proc/w.safetensors", "/proc/magicinit/w.safetensors", "/sys/w.safetensors"] {
            let error = try #require(thrownError(FormatError.self) { try OutputFiles.checkWritable(path) }, "\(path) passed")
            #expect(error.description.hasPrefix("\(path): cannot write: cannot create"), "\(error)")
        }
        #expect(thrownError(FormatError.self) { try OutputFiles.checkWritable(folder) }?.description.contains("is a folder") == true)
        try OutputFiles.checkWritable(folder + "/new/deeper/w.safetensors")
        try OutputFiles.checkWritable(folder + "/w.safetensors")
        #expect(Self.listing(folder).isEmpty, "the check left \(Self.listing(folder))")
    }
}
