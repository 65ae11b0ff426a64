import CoreMetrics
import Foundation
import Synchronization
import WalletDomain
import WalletPostgres

/// Releases holds whose expiry passed. Expired holds already stop counting
/// against available on their own; this writes their EXPIRE transactions.
/// Any number of server instances may sweep: the EXPIRE's transaction_id is
/// derived from the hold's, and the hold's status is checked under its
/// wallet's lock, so each hold expires exactly once.
final class HoldSweeper: Sendable {
    static let holdsPerSweepMax = 500
    private let store: PostgresLedgerStore
    private let intervalMilliseconds: Int
    private let task = Mutex<Task<Void, Never>?>(nil)
    /// EXPIRE transactions this instance wrote (a hold another instance
    /// released first answers as a replay and is not counted).
    private let expired = Counter(label: "wallet_holds_expired_total")

    init(store: PostgresLedgerStore, intervalMilliseconds: Int) {
        self.store = store
        self.intervalMilliseconds = intervalMilliseconds
    }

    func start() {
        let store = store
        let interval = intervalMilliseconds
        let expired = expired
        task.withLock {
            $0 = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(interval))
                    guard let holds = try? await store.expiredHolds(limit: Self.holdsPerSweepMax) else { continue }
                    for holdID in holds where !Task.isCancelled {
                        if let result = try? await store.execute(.expire(holdID: holdID), deadline: nil),
                            !result.replayed
                        {
                            expired.increment()
                        }
                    }
                }
            }
        }
    }

    func stop() {
        task.withLock { $0?.cancel() }
    }
}
