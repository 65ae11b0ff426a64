import Synchronization

/// Runs `flush` every `interval` (the summarizers' summaries are written when
/// their intervals end, whether or not another event of the kind comes).
package final class SummaryTicker: Sendable {
    package static let intervalDefault: Duration = .seconds(1)
    private let interval: Duration
    private let flush: @Sendable () -> Void
    private let task = Mutex<Task<Void, Never>?>(nil)

    package init(interval: Duration = intervalDefault, _ flush: @escaping @Sendable () -> Void) {
        self.interval = interval
        self.flush = flush
    }

    package func start() {
        let interval = interval
        let flush = flush
        task.withLock {
            $0 = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    flush()
                }
            }
        }
    }

    /// Stops ticking and flushes once more.
    package func stop() {
        task.withLock { $0?.cancel() }
        flush()
    }
}
