import CoreMetrics
import Synchronization
import WalletGRPC

/// Counts calls by method and code and times them by method, in the seam:
/// `wallet_grpc_calls_total{method,code}` and
/// `wallet_grpc_call_duration_seconds{method}` (a stream's duration is its
/// lifetime). Labels are the routed method's path and the code's name, both
/// from fixed sets: never an id from a request.
package final class CallMetrics: CallInterceptor {
    package static let callsLabel = "wallet_grpc_calls_total"
    package static let durationLabel = "wallet_grpc_call_duration_seconds"

    /// One method's series: its timer, and a counter per code made on the
    /// code's first use.
    private struct MethodSeries {
        let timer: Timer
        var counters: [Counter?]
    }

    private let factory: any MetricsFactory
    private let series = Mutex<[String: MethodSeries]>([:])

    /// `factory`: where the series live (the process's `MetricsSystem` by
    /// default, which the server bootstraps with Prometheus).
    package init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    package func admit(_ context: CallContext) -> RPCStatus? { nil }

    package var observesOutcome: Bool { true }

    package func completed(_ outcome: CallOutcome) {
        let method = outcome.context.method
        let code = outcome.code
        // Codes outside 0...16 (none are sent) share the last slot.
        let slot = (0...RPCStatus.codeMax).contains(code) ? Int(code) : Self.otherCodeSlot
        let (counter, timer) = series.withLock { series in
            if let entry = series[method], let counter = entry.counters[slot] { return (counter, entry.timer) }
            var entry =
                series[method]
                ?? MethodSeries(
                    timer: Timer(label: Self.durationLabel, dimensions: [("method", method)], factory: factory),
                    counters: Array(repeating: nil, count: Self.otherCodeSlot + 1))
            let counter = Counter(
                label: Self.callsLabel, dimensions: [("method", method), ("code", RPCStatus.name(of: code))],
                factory: factory)
            entry.counters[slot] = counter
            series[method] = entry
            return (counter, entry.timer)
        }
        counter.increment()
        let elapsed = outcome.elapsed.components
        timer.recordNanoseconds(elapsed.seconds &* 1_000_000_000 &+ elapsed.attoseconds / 1_000_000_000)
    }

    private static let otherCodeSlot = Int(RPCStatus.codeMax) + 1
}
