import CDNNL

/// Process-wide settings for the executables that run the engine.
public enum ProcessTuning {
    /// Keeps freed large blocks in the heap instead of returning them to the kernel: the
    /// statistics passes allocate and free activation-sized arrays (hundreds of MB) per
    /// chunk and layer, and glibc's default (mmap + munmap above 32 MB at most) makes every
    /// one of them fault in and zero fresh pages again.
    public static func keepFreedMemory() {
        _ = mallopt(M_MMAP_THRESHOLD, 1 << 30)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
    }
}
