import Foundation
import Testing
import MagicInitSamples

/// The real `mi-coordinator` with outputs it cannot write (issue 19, part 4): an impossible
/// path fails before any image is read; a write that fails at the end (a full disk,
/// simulated with a file-size limit) leaves the previous weights and report as they were and
/// says so, without a raw NSError.
@Suite struct OutputFailureTests {
    @Test(arguments: ["--output", "--report"])
    func test_outputUnderProc_failsBeforeAnyImageIsRead(flag: String) throws {
        let coordinator = try coordinatorExecutable()
        let folder = try makeScratchFolder("proc")
        defer { try? FileManager.default.removeItem(at: folder) }
        let target = "/proc/magicinit-\(getpid()).\(flag == "--output" ? "safetensors" : "json")"
        let other = flag == "--output" ? ["--report", folder.appendingPathComponent("r.json").path]
                                       : ["--output", folder.appendingPathComponent("w.safetensors").path]
        let (status, message) = try runToEnd(coordinator, ["--network", "small", flag, target] + other)
        #expect(status != 0)
        #expect(message.contains("\(flag) \(target): cannot create a file in /proc"), "\(message)")
        #expect(!message.contains("image(s) from"), "images were listed before the output was checked: \(message)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }

    /// A first run writes the weights and report; a second with another seed runs under a
    /// 64 KiB file-size limit (RLIMIT_FSIZE through `ulimit -f 128`, SIGXFSZ ignored, so the
    /// write fails with EFBIG as it would with ENOSPC): the report (7.5 KB) would fit, the
    /// weights (579 KB) do not. Both files must be byte for byte those of the first run, no
    /// temporary file may be left, and the error must say what happened. (A small tmpfs would
    /// be a real full disk, but mounting one needs privileges CI may not have.)
    @Test func test_fileSizeLimitWhileWriting_previousFilesUnchanged() throws {
        let coordinator = try coordinatorExecutable()
        let folder = try makeScratchFolder("fsize")
        defer { try? FileManager.default.removeItem(at: folder) }
        let weights = folder.appendingPathComponent("w.safetensors"), report = folder.appendingPathComponent("w.report.json")
        let arguments = ["--network", "small", "--images", SamplePhotos.folder, "--max-images", "8", "--output", weights.path]
        let first = try runToEnd(coordinator, arguments)
        try #require(first.status == 0, "\(first.stderr)")
        let before = (try Data(contentsOf: weights), try Data(contentsOf: report))
        #expect(before.1.count < 64 << 10 && before.0.count > 64 << 10, "sizes \(before.0.count), \(before.1.count) no longer straddle the limit")

        let quoted = ([coordinator.path] + arguments + ["--seed", "7"]).map { "'\($0)'" }.joined(separator: " ")
        let limited = try runToEnd(URL(fileURLWithPath: "/bin/sh"), ["-c", "trap '' XFSZ; ulimit -f 128 && exec \(quoted)"])
        #expect(limited.status == 1, "exit \(limited.status): \(limited.stderr)")
        #expect(limited.stderr.contains("Error: \(weights.path): cannot write: write failed after"), "\(limited.stderr)")
        #expect(limited.stderr.contains("File too large") && limited.stderr.contains("nothing was written"), "\(limited.stderr)")
        #expect(!limited.stderr.contains("NSError") && !limited.stderr.contains("Domain="), "\(limited.stderr)")
        #expect(try Data(contentsOf: weights) == before.0, "the weights changed")
        #expect(try Data(contentsOf: report) == before.1, "the report changed")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == ["w.report.json", "w.safetensors"])
    }
}
