import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finding the image files a run should read.
public enum ImageCollection {
    /// File-name extensions taken from a directory, compared case-insensitively.
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

    /// The image files named by `source`, one of:
    /// - a **directory**: its regular files ending in `.jpg`, `.jpeg` or `.png` (any case),
    ///   not recursive, sorted by name (byte order);
    /// - a **list file** ending in `.txt` or `.lst`: one path per line, in the file's order;
    ///   blank lines and lines starting with `#` are ignored, a trailing integer label
    ///   (Caffe's `ImageData` format `path 7`) is dropped, and relative paths are resolved
    ///   against the list file's directory; the files are not checked here;
    /// - otherwise a **glob pattern** (`glob(3)`, e.g. `photos/*.jpg`): the matching regular
    ///   files, sorted by path (byte order).
    /// - Returns: paths; directory entries as `source/name`.
    /// - Throws: ``ImageError/unreadable(path:reason:)`` for a missing directory or list file,
    ///   ``ImageError/noImagesFound(source:)`` when nothing is found.
    public static func listImages(in source: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory)
        let paths: [String]
        if exists && isDirectory.boolValue {
            paths = try listDirectory(source)
        } else if ["txt", "lst"].contains(fileExtension(source)) {
            paths = try readListFile(source)
        } else {
            paths = globFiles(source)
            // Not a folder, list or matching pattern: say the path is missing when it is.
            if paths.isEmpty && !exists && !source.contains(where: { "*?[".contains($0) }) {
                throw ImageError.unreadable(path: source, reason: "no such file or folder")
            }
        }
        guard !paths.isEmpty else { throw ImageError.noImagesFound(source: source) }
        return paths
    }

    static func listDirectory(_ directory: String) throws -> [String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw ImageError.unreadable(path: directory, reason: "cannot list the directory")
        }
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        return names
            .filter { imageExtensions.contains(fileExtension($0)) && isRegularFile(base + $0) }
            .sorted(by: byteOrder)
            .map { base + $0 }
    }

    static func readListFile(_ listFile: String) throws -> [String] {
        let bytes = try ImageDecoding.readFile(path: listFile)
        let directory = (listFile as NSString).deletingLastPathComponent
        var paths: [String] = []
        for rawLine in String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline) {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if let gap = line.lastIndex(where: \.isWhitespace),
               Int(line[line.index(after: gap)...]) != nil {
                line = line[..<gap].trimmingCharacters(in: .whitespaces)
            }
            if line.hasPrefix("/") || directory.isEmpty {
                paths.append(line)
            } else {
                paths.append(directory + "/" + line)
            }
        }
        return paths
    }

    static func globFiles(_ pattern: String) -> [String] {
        var matches = glob_t()
        defer { globfree(&matches) }
        guard glob(pattern, 0, nil, &matches) == 0 else { return [] }
        var paths: [String] = []
        for i in 0..<Int(matches.gl_pathc) {
            if let cPath = matches.gl_pathv[i], isRegularFile(String(cString: cPath)) {
                paths.append(String(cString: cPath))
            }
        }
        return paths.sorted(by: byteOrder)
    }

    private static func fileExtension(_ path: String) -> String {
        (path as NSString).pathExtension.lowercased()
    }

    private static func isRegularFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            && !isDirectory.boolValue
    }

    private static func byteOrder(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}
