import Logging
import Synchronization

/// Free-text messages (the store's: "wallet-db-0: database unreachable:
/// …") through a logger, with exact repeats summarized as failed calls are
/// (`CallLogging`): during an outage every worker says the same thing on
/// every cycle.
package final class RepeatedMessageLog: Sendable {
    private let logger: Logger
    private let level: Logger.Level
    private let now: @Sendable () -> ContinuousClock.Instant
    private let summarizer: Mutex<RepeatSummarizer<String>>

    package init(
        logger: Logger, level: Logger.Level, summaryInterval: Duration = CallLogging.summaryIntervalDefault,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.logger = logger
        self.level = level
        self.now = now
        self.summarizer = Mutex(RepeatSummarizer(interval: summaryInterval))
    }

    package func log(_ message: String) {
        guard logger.logLevel <= level else { return }
        let verdict = summarizer.withLock { $0.record(message, at: now()) }
        guard case .log(let ended) = verdict else { return }
        if let ended { summarize(ended) }
        logger.log(level: level, "\(message)")
    }

    /// Writes the summaries of intervals that have ended.
    package func flushSummaries() {
        let due = summarizer.withLock { $0.due(at: now()) }
        for summary in due { summarize(summary) }
    }

    private func summarize(_ summary: RepeatSummarizer<String>.Summary) {
        logger.log(
            level: level, "the same message again (not logged one by one)",
            metadata: [
                "repeated": .string(summary.kind),
                "count": .stringConvertible(summary.count),
                "interval_s": .stringConvertible(summary.interval.components.seconds),
            ])
    }
}
