#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Whole-file reads and atomic writes (temporary file in the same directory, `fsync`,
/// `rename`), so a reader never sees a half-written model and a failed write leaves the old
/// file in place.
enum FileIO {
    /// The bytes of the file at `path`.
    /// - Throws: ``FormatError/unreadable(path:reason:)``.
    static func read(_ path: String) throws -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw FormatError.unreadable(path: path, reason: describe(error))
        }
    }

    /// The file at `path` as UTF-8 text.
    static func readText(_ path: String) throws -> String {
        let data = try read(path)
        guard let text = String(data: data, encoding: .utf8) else {
            throw FormatError.unreadable(path: path, reason: "not UTF-8 text")
        }
        return text
    }

    /// Writes `data` to `path` atomically: `path.tmp-<pid>-<random>` in the same directory,
    /// flushed to disk, then renamed over `path`.
    /// - Throws: ``FormatError/unwritable(path:reason:)``; the temporary file is removed.
    static func writeAtomically(_ data: Data, to path: String) throws {
        try writeAtomically(to: path) { write in try data.withUnsafeBytes { try write($0) } }
    }

    /// Writes the pieces `produce` hands to its `write` argument, in order, to `path`
    /// atomically (as ``writeAtomically(_:to:)``): a large file need not exist in memory
    /// as one buffer.
    /// - Throws: ``FormatError/unwritable(path:reason:)`` (the temporary file is removed), or
    ///   what `produce` throws (likewise).
    static func writeAtomically(to path: String, _ produce: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        func fail(_ what: String) -> FormatError {
            let reason = "\(what): \(String(cString: strerror(errno)))"
            unlink(temporary)
            return FormatError.unwritable(path: path, reason: reason)
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FormatError.unwritable(path: path, reason: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var written = 0
        do {
            try produce { raw in
                var done = 0
                while done < raw.count {
                    let n = write(fd, raw.baseAddress! + done, raw.count - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw fail("write failed after \(written + done) bytes")
                    }
                    done += n
                }
                written += done
            }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        guard fsync(fd) == 0 else { close(fd); throw fail("fsync failed") }
        guard close(fd) == 0 else { throw fail("close failed") }
        guard rename(temporary, path) == 0 else { throw fail("rename failed") }
    }

    private static func describe(_ error: Error) -> String {
        (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
    }
}
