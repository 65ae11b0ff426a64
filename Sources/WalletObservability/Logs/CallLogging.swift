import Logging
import Synchronization
import WalletGRPC

/// Logs calls as they end, in the seam: a failed call gets an info line
/// (method, code, reason, message, caller, trace and request ids, its
/// transaction id); every call gets a debug line when the level is debug.
/// Failed calls of one kind (method + code + reason) are summarized: the
/// first in each `summaryInterval` is logged, then one line with how many
/// more there were (`flushSummaries` writes those when the interval ends;
/// the server calls it every second). At debug every call has its own line
/// and nothing is summarized.
///
/// A successful call at info costs one comparison here.
package final class CallLogging: CallInterceptor {
    package struct FailureKind: Hashable, Sendable {
        package var method: String
        package var code: Int32
        package var reason: String
    }

    /// One line per kind per interval at most, plus its summary.
    package static let summaryIntervalDefault: Duration = .seconds(10)
    /// Caller-supplied text written to a line (request id) is cut to this.
    package static let headerValueBytesMax = 128

    private let logger: Logger
    private let everyCall: Bool
    private let now: @Sendable () -> ContinuousClock.Instant
    private let summarizer: Mutex<RepeatSummarizer<FailureKind>>

    package init(
        logger: Logger, summaryInterval: Duration = summaryIntervalDefault,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.logger = logger
        self.everyCall = logger.logLevel <= .debug
        self.now = now
        self.summarizer = Mutex(RepeatSummarizer(interval: summaryInterval))
    }

    package func admit(_ context: CallContext) -> RPCStatus? { nil }

    package var observesOutcome: Bool { true }

    package func completed(_ outcome: CallOutcome) {
        if outcome.code == RPCStatus.okCode {
            guard everyCall else { return }
            logger.debug("call", metadata: metadata(outcome))
            return
        }
        if everyCall {
            logger.info("call failed", metadata: metadata(outcome))
            return
        }
        let kind = FailureKind(method: outcome.context.method, code: outcome.code, reason: outcome.reason)
        let verdict = summarizer.withLock { $0.record(kind, at: now()) }
        guard case .log(let ended) = verdict else { return }
        if let ended { summarize(ended) }
        logger.info("call failed", metadata: metadata(outcome))
    }

    /// Writes the summaries of intervals that have ended.
    package func flushSummaries() {
        let due = summarizer.withLock { $0.due(at: now()) }
        for summary in due { summarize(summary) }
    }

    private func summarize(_ summary: RepeatSummarizer<FailureKind>.Summary) {
        var metadata: Logger.Metadata = [
            "method": .string(summary.kind.method),
            "code": .string(RPCStatus.name(of: summary.kind.code)),
            "count": .stringConvertible(summary.count),
            "interval_s": .stringConvertible(summary.interval.components.seconds),
        ]
        if !summary.kind.reason.isEmpty { metadata["reason"] = .string(summary.kind.reason) }
        logger.info("more calls failed alike (not logged one by one)", metadata: metadata)
    }

    private func metadata(_ outcome: CallOutcome) -> Logger.Metadata {
        let context = outcome.context
        var metadata: Logger.Metadata = [
            "method": .string(context.method),
            "code": .string(RPCStatus.name(of: outcome.code)),
            "elapsed_ms": .stringConvertible(Double(outcome.elapsed / .microseconds(1)).rounded() / 1_000),
        ]
        if let status = outcome.status {
            if !status.reason.isEmpty { metadata["reason"] = .string(status.reason) }
            metadata["error"] = .string(status.message)
        }
        if outcome.isStreaming { metadata["streaming"] = .stringConvertible(true) }
        if let caller = context.caller { metadata["caller"] = .string(caller) }
        if let traceID = TraceParent.traceID(context.traceparent) { metadata["trace_id"] = .string(traceID) }
        if let requestID = context.requestID {
            metadata["request_id"] = .string(String(decoding: requestID.utf8.prefix(Self.headerValueBytesMax), as: UTF8.self))
        }
        if let transactionID = outcome.transactionID { metadata["transaction_id"] = .string(transactionID) }
        return metadata
    }
}
