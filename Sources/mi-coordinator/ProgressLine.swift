import Foundation
import MagicInitAlgorithms

/// On a terminal, one live line per phase — `algorithm 1: conv3_1 (layer 5 of 16)
/// 96/160 images, 12.3 images/s, ETA 5 s` — rewritten in place; log lines print above it.
/// Elsewhere (a pipe, a CI log) it prints nothing: the log has one line per event.
final class ProgressLine: @unchecked Sendable {
    private let lock = NSLock()
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private var current = ""
    private var phase = ""
    private var phaseStart = ContinuousClock.now

    func update(_ event: ProgressEvent) {
        guard isTerminal else { return }
        lock.withLock {
            if event.phase != phase {
                phase = event.phase
                phaseStart = .now
            }
            let seconds = (ContinuousClock.now - phaseStart) / .seconds(1)
            var text = "\(event.phase): \(event.imagesDone)/\(event.imagesTotal) images"
            if event.imagesDone > 0 && seconds > 0 {
                let rate = Double(event.imagesDone) / seconds
                text += String(format: ", %.1f images/s, ETA %.0f s", rate, Double(event.imagesTotal - event.imagesDone) / rate)
            }
            current = text
            FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
        }
    }

    /// Prints a log line above the live line.
    func log(_ line: String) {
        lock.withLock {
            if isTerminal && !current.isEmpty {
                FileHandle.standardError.write(Data("\r\u{1B}[K\(line)\n\(current)".utf8))
            } else {
                FileHandle.standardError.write(Data("\(line)\n".utf8))
            }
        }
    }

    /// Clears the live line (before the final table).
    func finish() {
        lock.withLock {
            if isTerminal && !current.isEmpty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            current = ""
        }
    }
}
