import Foundation
import Synchronization
import Testing
import WalletDomain
import WalletTestSupport

@testable import WalletPostgres

/// `--batch-wait-us`, on a lane driven directly: its commands are queued
/// from a thread of the test's own, so their timing does not depend on the
/// (busy, two-thread) cooperative pool.
@Suite struct BatchWaitTests {
    @Test func aCommandArrivingDuringTheWaitJoinsTheWaitingOnesTransaction() async throws {
        let url = try TestDatabase.url()
        // The store migrates the database and creates the asset, its house
        // wallets and the two funded wallets.
        let store = try StoreTests.makeStore(url, pool: 1)
        try await StoreTests.seed(store, wallets: ["wa", "wb"], funds: 100)
        store.shutdown()

        let settings = StoreWorker.Settings(
            databaseURL: url, houseSlot: nil, batchSizeMax: 512, queueDepthMax: 100, walletQueueDepthMax: 100,
            slowBatchMilliseconds: 0, batchWaitMicroseconds: 1_000_000, batchWaitTarget: 2, log: { _ in })
        let worker = StoreWorker(name: "batch-wait-test", settings: settings, houseSlot: 0)
        worker.start()
        let outcomes = try await onOwnThread {
            let answered = DispatchSemaphore(value: 0)
            let outcomes = Mutex<[Result<OperationResult, LedgerError>]>([])
            func queue(_ command: Command) {
                worker.enqueue(
                    PendingCommand(
                        command: command, prepared: PreparedRow(command), hint: nil, queueKey: nil, deadline: nil
                    ) { outcome in
                        outcomes.withLock { $0.append(outcome) }
                        answered.signal()
                    })
            }
            // The lane takes the first, finds it alone (under the target of
            // 2) and waits in steps of 125 ms; the second comes 2 ms later.
            queue(try StoreTests.debit("gather-a", "wa", 1))
            Thread.sleep(forTimeInterval: 0.002)
            queue(try StoreTests.debit("gather-b", "wb", 1))
            answered.wait()
            answered.wait()
            worker.stop()
            return outcomes.withLock { $0 }
        }
        #expect(outcomes.count == 2)
        for outcome in outcomes {
            if case .failure(let error) = outcome { Issue.record("\(error)") }
        }
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        let transactions = try connection.execute(
            "SELECT count(DISTINCT xmin::text) FROM transactions WHERE transaction_id IN ('gather-a', 'gather-b')")
        #expect(transactions.int64(row: 0, column: 0) == 1)
        try StoreTests.expectClean(url)
    }
}
