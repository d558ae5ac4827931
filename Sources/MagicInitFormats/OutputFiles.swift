#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Several output files (the weights and their report) written as one: each is first
/// written whole to a temporary file beside its destination ("staged"), then all are renamed
/// into place. If a write fails (a full disk, a file-size limit) every temporary file is
/// removed and nothing at the destinations changes; if a rename fails, the files renamed
/// before it are put back as they were. So the destinations hold either every new file or
/// the previous state, never a new weights file without its report.
///
/// Temporary names are hidden and keep the extension (`.w.partial-<pid>-<random>.safetensors`),
/// since writers choose the format by it. Not thread-safe: one writer at a time.
public final class OutputFiles {
    private var staged: [(temporary: String, destination: String)] = []
    /// Folders made by ``prepareFolders(for:)``, outermost first (removed by ``discard()``).
    private var createdFolders: [String] = []

    public init() {}

    /// Checks, before any work, that a file can be created at `path`: the nearest existing
    /// folder on its path must be a folder, the missing ones must be creatable, and a file
    /// must be creatable in the last (tried for real: permission bits say nothing to root, or
    /// about `/proc` and read-only mounts). Leaves nothing behind.
    /// - Throws: ``FormatError/unwritable(path:reason:)`` with the reason.
    public static func checkWritable(_ path: String) throws {
        let probe = OutputFiles()
        defer { probe.discard() }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw FormatError.unwritable(path: path, reason: "it is a folder; give a file path")
        }
        try probe.prepareFolders(for: path)
        let test = temporaryPath(for: path, role: "probe")
        let fd = open(test, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw FormatError.unwritable(path: path, reason: "cannot create a file in \(folder(of: path)): \(String(cString: strerror(errno)))")
        }
        close(fd)
        unlink(test)
    }

    /// Creates the missing folders on the way to `path`, remembering them for ``discard()``.
    /// - Throws: ``FormatError/unwritable(path:reason:)`` naming the folder that is a file or
    ///   cannot be made.
    public func prepareFolders(for path: String) throws {
        var missing: [String] = []
        var existing = Self.folder(of: path)
        var isDirectory: ObjCBool = false
        while !FileManager.default.fileExists(atPath: existing, isDirectory: &isDirectory) {
            missing.append(existing)
            let parent = (existing as NSString).deletingLastPathComponent
            guard parent != existing, !parent.isEmpty else { break }
            existing = parent
        }
        if !missing.contains(existing) && !isDirectory.boolValue {
            throw FormatError.unwritable(path: path, reason: "\(existing) is a file, so no folder can be made there")
        }
        for folder in missing.reversed() {
            guard mkdir(folder, 0o755) == 0 || errno == EEXIST else {
                throw FormatError.unwritable(path: path, reason: "cannot create the folder \(folder): \(String(cString: strerror(errno)))")
            }
            createdFolders.append(folder)
        }
    }

    /// Writes the file for `destination` with `write`, which is given the temporary path to
    /// write to (e.g. a format's own writer).
    /// - Throws: what `write` throws; a ``FormatError/unwritable(path:reason:)`` of the
    ///   temporary file is reported for `destination`.
    public func stage(_ destination: String, _ write: (_ temporaryPath: String) throws -> Void) throws {
        let temporary = Self.temporaryPath(for: destination, role: "partial")
        staged.append((temporary, destination))
        do {
            try write(temporary)
        } catch FormatError.unwritable(_, let reason) {
            throw FormatError.unwritable(path: destination, reason: reason)
        }
    }

    /// Writes `data` as the file for `destination` (see ``stage(_:_:)``).
    public func stage(_ data: Data, as destination: String) throws {
        try stage(destination) { try FileIO.writeAtomically(data, to: $0) }
    }

    /// Renames every staged file into place, in the order staged. A destination that
    /// existed is kept as a hard link until all renames are done, so a failed rename puts
    /// back every file renamed before it.
    /// - Throws: ``FormatError/unwritable(path:reason:)``; the destinations are then as before.
    public func commit() throws {
        var done: [(destination: String, previous: String?)] = []
        for (temporary, destination) in staged {
            var previous: String? = Self.temporaryPath(for: destination, role: "previous")
            if link(destination, previous!) != 0 { previous = nil }
            guard rename(temporary, destination) == 0 else {
                let reason = "cannot rename \(temporary) to it: \(String(cString: strerror(errno)))"
                if let previous { unlink(previous) }
                for (renamed, old) in done.reversed() {
                    if let old { rename(old, renamed) } else { unlink(renamed) }
                }
                discard()
                throw FormatError.unwritable(path: destination, reason: reason)
            }
            done.append((destination, previous))
        }
        for case (_, let previous?) in done { unlink(previous) }
        staged = []
        createdFolders = []
    }

    /// Removes every staged temporary file and the folders ``prepareFolders(for:)`` made
    /// (when empty); the destinations are untouched. Safe to call more than once.
    public func discard() {
        for (temporary, _) in staged { unlink(temporary) }
        staged = []
        for folder in createdFolders.reversed() { rmdir(folder) }
        createdFolders = []
    }

    /// `<folder>/.<name>.<role>-<pid>-<random>.<extension>`.
    static func temporaryPath(for path: String, role: String) -> String {
        let name = (path as NSString).lastPathComponent
        let stem = (name as NSString).deletingPathExtension, ext = (name as NSString).pathExtension
        let unique = "\(role)-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        return (folder(of: path) as NSString).appendingPathComponent(".\(stem).\(unique)" + (ext.isEmpty ? "" : ".\(ext)"))
    }

    /// The folder `path` is in (`.` for a bare file name).
    static func folder(of path: String) -> String {
        let folder = (path as NSString).deletingLastPathComponent
        return folder.isEmpty ? "." : folder
    }
}
