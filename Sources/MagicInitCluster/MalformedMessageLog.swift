/// Rate-limited logging of dropped malformed messages: a flood of bad frames (a fuzzer, a
/// misbehaving peer) costs a count per interval, not a line per frame.
///
/// The first malformed message of a quiet period is logged in full at once; the ones after
/// it within `interval` are only counted, and the count (with the last reason) is logged once
/// the interval has passed — at the next malformed message or the next ``flush(now:)``,
/// whichever comes first. Time is fed in (`now`), so tests need no sleeping.
struct MalformedMessageLog {
    /// The shortest time between two lines.
    let interval: Duration
    /// Start of the current counting window; `nil` while quiet.
    private var windowStart: ContinuousClock.Instant?
    /// Messages counted but not yet logged, and the last one's description.
    private var suppressed = 0
    private var lastReason = ""
    /// Every malformed message recorded, logged or not.
    private(set) var total = 0

    init(interval: Duration = .seconds(10)) {
        self.interval = interval
    }

    /// Records one dropped message (`reason` says from whom and why).
    /// - Returns: the line to log now, if any.
    mutating func record(_ reason: String, now: ContinuousClock.Instant) -> String? {
        total += 1
        if let summary = flush(now: now) {
            suppressed = 1
            lastReason = reason
            return summary
        }
        guard windowStart != nil else {
            windowStart = now
            return "dropped a malformed message \(reason)"
        }
        suppressed += 1
        lastReason = reason
        return nil
    }

    /// - Returns: the count of messages dropped since the last line, once `interval` has
    ///   passed since that line; `nil` otherwise. Closes the window when nothing was counted.
    mutating func flush(now: ContinuousClock.Instant) -> String? {
        guard let start = windowStart, now - start >= interval else { return nil }
        guard suppressed > 0 else {
            windowStart = nil
            return nil
        }
        let seconds = Int(((now - start) / .seconds(1)).rounded())
        let line = "dropped \(suppressed) more malformed message(s) in the last \(seconds) s (the last \(lastReason))"
        windowStart = now
        suppressed = 0
        return line
    }
}
