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

    init(store: PostgresLedgerStore, intervalMilliseconds: Int) {
        self.store = store
        self.intervalMilliseconds = intervalMilliseconds
    }

    func start() {
        let store = store
        let interval = intervalMilliseconds
        task.withLock {
            $0 = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(interval))
                    guard let holds = try? await store.expiredHolds(limit: Self.holdsPerSweepMax) else { continue }
                    for holdID in holds where !Task.isCancelled {
                        _ = try? await store.execute(.expire(holdID: holdID), deadline: nil)
                    }
                }
            }
        }
    }

    func stop() {
        task.withLock { $0?.cancel() }
    }
}
