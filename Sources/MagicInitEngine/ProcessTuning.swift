import CDNNL
import Foundation

/// Process-wide settings for the executables that run the engine.
public enum ProcessTuning {
    /// Keeps freed large blocks in the heap instead of returning them to the kernel: the
    /// statistics passes allocate and free activation-sized arrays (hundreds of MB) per
    /// chunk and layer. glibc serves blocks over its mmap threshold with mmap + munmap (so
    /// they fault in fresh pages each time); the threshold is capped at 32 MB (larger values
    /// are refused), which is set here, and trimming is off so smaller freed blocks stay
    /// mapped. Turning mmap off altogether (`M_MMAP_MAX` 0) was tried: the heap then
    /// fragments around long-lived arrays and VGG-16 on 160 images peaked at 23.6 GB.
    public static func keepFreedMemory() {
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
    }
}

/// Peak resident set size of this process (`VmHWM` in /proc/self/status), in bytes; 0 where
/// the file is missing.
public func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          // "VmHWM:\t 1234 kB": a tab, then padding that vanishes from 10 GB on.
          let kB = Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") else { return 0 }
    return kB * 1024
}
