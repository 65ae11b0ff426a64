/// Decides which of many repeats of one kind of event gets a log line, so
/// that an outage (every call failing alike, about 1,200 lines a second at
/// 2,300 calls a second) writes a few lines, not a flood: the first event
/// of a kind in an interval is logged; the rest of that interval is only
/// counted, and when it ends one summary says how many there were.
///
/// A pure state machine: time comes in as an argument (the caller's clock,
/// a test's own), and the caller writes the lines. Not thread-safe: its
/// owner keeps it behind a lock.
package struct RepeatSummarizer<Kind: Hashable & Sendable>: Sendable {
    /// What one kind's ended interval held beyond its first, logged event.
    package struct Summary: Sendable, Equatable {
        package var kind: Kind
        /// Events counted and not logged.
        package var count: Int
        package var interval: Duration
    }

    package enum Verdict: Sendable, Equatable {
        /// Log the event. `ended` is the summary of this kind's previous
        /// interval, if it ended with events not yet summarized: write it
        /// first.
        case log(ended: Summary?)
        /// Counted toward this interval's summary; write nothing.
        case suppress
    }

    private struct Window: Sendable {
        var started: ContinuousClock.Instant
        var suppressed: Int
    }

    package let interval: Duration
    /// Kinds tracked at once; an event of a new kind beyond this is logged
    /// and not tracked (kinds are method x code x reason, a few hundred at
    /// most, so this only guards against a bug that makes kinds unbounded).
    package let kindsMax: Int
    private var windows: [Kind: Window] = [:]

    package init(interval: Duration, kindsMax: Int = 1_024) {
        precondition(interval > .zero, "a summary interval must be positive")
        precondition(kindsMax > 0, "kindsMax must be positive")
        self.interval = interval
        self.kindsMax = kindsMax
    }

    /// An event of `kind` at `now`.
    package mutating func record(_ kind: Kind, at now: ContinuousClock.Instant) -> Verdict {
        if var window = windows[kind] {
            if now - window.started < interval {
                window.suppressed += 1
                windows[kind] = window
                return .suppress
            }
            // Its interval ended before `due` got to it: summarize it now,
            // ahead of this event's line.
            windows[kind] = Window(started: now, suppressed: 0)
            return .log(ended: window.suppressed > 0 ? summary(kind, window) : nil)
        }
        if windows.count < kindsMax { windows[kind] = Window(started: now, suppressed: 0) }
        return .log(ended: nil)
    }

    /// The summaries of every interval that ended by `now` with events
    /// counted; those kinds start afresh (their next event is logged).
    package mutating func due(at now: ContinuousClock.Instant) -> [Summary] {
        var summaries: [Summary] = []
        for (kind, window) in windows where now - window.started >= interval {
            windows[kind] = nil
            if window.suppressed > 0 { summaries.append(summary(kind, window)) }
        }
        return summaries
    }

    /// Kinds with an interval open (tests).
    package var trackedKinds: Int { windows.count }

    private func summary(_ kind: Kind, _ window: Window) -> Summary {
        Summary(kind: kind, count: window.suppressed, interval: interval)
    }
}
