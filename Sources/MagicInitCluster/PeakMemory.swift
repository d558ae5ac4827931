import Foundation

/// Peak resident set size of this process (`VmHWM` in /proc/self/status), in bytes; 0 where
/// the file is missing.
public func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kB = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kB * 1024
}
