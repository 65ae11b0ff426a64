import Synchronization
import WalletGRPC

/// Latencies and answers of the calls of one channel. Each channel's
/// completions run on its own thread, so the lock is rarely contended.
final class LoadRecorder: Sendable {
    struct Totals: Sendable {
        /// Latency of successful calls only: fast failures would flatter it.
        var histogram = LatencyHistogram()
        var succeeded = 0
        var failed = 0
        /// "CODE" or "CODE REASON" -> count.
        var errors: [String: Int] = [:]
        /// Answers the workload did not expect (a retry answered unlike its
        /// original).
        var unexpected = 0
        var lastCompletionNanoseconds: UInt64 = 0
        /// Completions per time slice of the run (`--timeline`): index ->
        /// (calls completed, slowest of them).
        var slices: [Int: (count: Int, maxNanoseconds: UInt64)] = [:]

        mutating func merge(_ other: Totals) {
            histogram.merge(other.histogram)
            succeeded += other.succeeded
            failed += other.failed
            errors.merge(other.errors, uniquingKeysWith: +)
            unexpected += other.unexpected
            lastCompletionNanoseconds = max(lastCompletionNanoseconds, other.lastCompletionNanoseconds)
            slices.merge(other.slices) { ($0.count + $1.count, max($0.maxNanoseconds, $1.maxNanoseconds)) }
        }
    }

    private let totals = Mutex(Totals())
    private let startNanoseconds: UInt64
    static let sliceNanoseconds: UInt64 = 250_000_000

    init(startNanoseconds: UInt64) { self.startNanoseconds = startNanoseconds }

    /// The timeline slice (`--timeline`) that the instant `at` falls in.
    static func slice(at: UInt64, start: UInt64) -> Int { Int((at &- start) / sliceNanoseconds) }

    func record(latencyNanoseconds: UInt64, completedAt: UInt64, result: ClientResult, expected: Bool) {
        var errorKey: String?
        if case .failed(let status) = result {
            let reason = ResponseDecoding.reason(statusDetails: status.details)
            errorKey = StatusCodeName.of(status.code) + (reason.map { " \($0)" } ?? "")
        }
        totals.withLock { totals in
            if let errorKey {
                totals.failed += 1
                totals.errors[errorKey, default: 0] += 1
            } else {
                totals.succeeded += 1
                totals.histogram.record(nanoseconds: latencyNanoseconds)
            }
            if !expected { totals.unexpected += 1 }
            totals.lastCompletionNanoseconds = max(totals.lastCompletionNanoseconds, completedAt)
            let slice = Self.slice(at: completedAt, start: startNanoseconds)
            let previous = totals.slices[slice] ?? (0, 0)
            totals.slices[slice] = (previous.count + 1, max(previous.maxNanoseconds, latencyNanoseconds))
        }
    }

    func snapshot() -> Totals { totals.withLock { $0 } }
}
