import CDNNL
import Foundation

/// Process-wide settings for the executables that run the engine.
public enum ProcessTuning {
    /// Keeps freed large blocks in the heap instead of returning them to the kernel: the
    /// statistics passes allocate and free activation-sized arrays (hundreds of MB) per
    /// chunk and layer, and glibc serves every block over its mmap threshold (at most 32 MB,
    /// larger values are refused) with mmap + munmap, so each one faults in and zeroes fresh
    /// pages again. With mmap off (`M_MMAP_MAX` 0) every block comes from the heap, and
    /// trimming off keeps freed pages mapped for reuse.
    public static func keepFreedMemory() {
        _ = mallopt(M_MMAP_MAX, 0)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
    }
}

/// Peak resident set size of this process (`VmHWM` in /proc/self/status), in bytes; 0 where
/// the file is missing.
public func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kB = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kB * 1024
}
