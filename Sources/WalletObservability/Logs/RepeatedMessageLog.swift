import Logging
import Synchronization

/// Free-text messages through a logger, with exact repeats summarized as
/// failed calls are (`CallLogging`): the first of a message (at a level) in
/// an interval is written, the rest counted, and when the interval ends one
/// line says how many. For the store's messages (during an outage every
/// worker says the same thing on every cycle) and gRPC core's (a client
/// with a bad certificate retrying, the listener probe's plain bytes on a
/// TLS port every few seconds).
package final class RepeatedMessageLog: Sendable {
    package struct Kind: Hashable, Sendable {
        var level: Logger.Level
        var message: String
    }

    private let logger: Logger
    private let defaultLevel: Logger.Level
    private let now: @Sendable () -> ContinuousClock.Instant
    private let summarizer: Mutex<RepeatSummarizer<Kind>>

    package init(
        logger: Logger, level: Logger.Level, summaryInterval: Duration = CallLogging.summaryIntervalDefault,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.logger = logger
        self.defaultLevel = level
        self.now = now
        self.summarizer = Mutex(RepeatSummarizer(interval: summaryInterval))
    }

    /// `message` at `level` (the default level when nil); `metadata` goes on
    /// the line when it is written, and is not part of what repeats.
    package func log(_ message: String, level: Logger.Level? = nil, metadata: Logger.Metadata = [:]) {
        let level = level ?? defaultLevel
        guard logger.logLevel <= level else { return }
        let verdict = summarizer.withLock { $0.record(Kind(level: level, message: message), at: now()) }
        guard case .log(let ended) = verdict else { return }
        if let ended { summarize(ended) }
        logger.log(level: level, "\(message)", metadata: metadata)
    }

    /// Writes the summaries of intervals that have ended.
    package func flushSummaries() {
        let due = summarizer.withLock { $0.due(at: now()) }
        for summary in due { summarize(summary) }
    }

    private func summarize(_ summary: RepeatSummarizer<Kind>.Summary) {
        logger.log(
            level: summary.kind.level, "the same message again (not logged one by one)",
            metadata: [
                "repeated": .string(summary.kind.message),
                "count": .stringConvertible(summary.count),
                "interval_s": .stringConvertible(summary.interval.components.seconds),
            ])
    }
}
