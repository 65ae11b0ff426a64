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
    /// A lane's settings for these tests: only the wait, its target and the
    /// shared activity differ.
    static func settings(
        _ url: String, waitMicroseconds: Int, target: Int, activity: WorkerActivity = WorkerActivity()
    ) -> StoreWorker.Settings {
        StoreWorker.Settings(
            databaseURL: url, houseSlot: nil, batchSizeMax: 512, queueDepthMax: 100, walletQueueDepthMax: 100,
            slowBatchMilliseconds: 0, batchWaitMicroseconds: waitMicroseconds, batchWaitTarget: target,
            activity: activity, log: { _ in })
    }

    /// `command` as a lane queues it, without a hint or queue key.
    static func pending(
        _ command: Command, deadline: ContinuousClock.Instant? = nil,
        _ completion: @escaping PendingCommand.Completion
    ) -> PendingCommand {
        PendingCommand(
            command: command, prepared: PreparedRow(command), hint: nil, queueKey: nil, deadline: deadline,
            completion: completion)
    }

    /// With a wait, while another worker of the store is running a batch, a
    /// command that arrives 50 ms into the wait (inside its first 125 ms
    /// step) joins the waiting one's transaction. Without a wait, or with
    /// one but no other worker busy (a lone lane is the bottleneck itself
    /// and must not idle), the lane has committed the first alone by then.
    @Test(arguments: [(1_000_000, true), (0, true), (1_000_000, false)])
    func aCommandArrivingDuringTheWaitJoinsTheWaitingOnesTransaction(
        waitMicroseconds: Int, anotherWorkerBusy: Bool
    ) async throws {
        let url = try TestDatabase.url()
        // The store migrates the database and creates the asset, its house
        // wallets and the two funded wallets.
        do {
            let store = try StoreTests.makeStore(url, pool: 1)
            defer { store.shutdown() }
            try await StoreTests.seed(store, wallets: ["wa", "wb"], funds: 100)
        }
        let first = try StoreTests.debit("gather-a", "wa", 1)
        let second = try StoreTests.debit("gather-b", "wb", 1)

        let settings = Self.settings(url, waitMicroseconds: waitMicroseconds, target: 2)
        // Stands for a sibling worker in the middle of a batch.
        settings.activity.running.store(anotherWorkerBusy ? 1 : 0, ordering: .relaxed)
        let worker = StoreWorker(name: "batch-wait-test", settings: settings, houseSlot: 0)
        worker.start()
        let answeredBoth = try await onOwnThread {
            defer { worker.stop() }
            // The lane is up and connected before the clock starts.
            let ready = DispatchSemaphore(value: 0)
            worker.enqueueRead { _ in ready.signal() }
            guard ready.wait(timeout: .now() + 30) == .success else { return false }
            let answered = DispatchSemaphore(value: 0)
            func queue(_ command: Command) {
                worker.enqueue(
                    Self.pending(command) { outcome in
                        if case .failure(let error) = outcome { Issue.record("\(error)") }
                        answered.signal()
                    })
            }
            queue(first)
            Thread.sleep(forTimeInterval: 0.050)
            queue(second)
            return answered.wait(timeout: .now() + 30) == .success && answered.wait(timeout: .now() + 30) == .success
        }
        #expect(answeredBoth)
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        let transactions = try connection.execute(
            "SELECT count(DISTINCT xmin::text) FROM transactions WHERE transaction_id IN ('gather-a', 'gather-b')")
        // The worker counted itself in and out of its own batches.
        #expect(settings.activity.running.load(ordering: .relaxed) == (anotherWorkerBusy ? 1 : 0))
        let waited = waitMicroseconds > 0 && anotherWorkerBusy
        #expect(transactions.int64(row: 0, column: 0) == (waited ? 1 : 2))
        try StoreTests.expectClean(url)
    }

    /// A waiting batch never waits past half the time left to the earliest
    /// deadline it holds: with a one-second wait and commands arriving every
    /// 40 ms (each step brings more, so the wait alone would last the whole
    /// second), a command whose caller gives it 600 ms is applied, not
    /// expired while the batch waits for company.
    @Test func theWaitEndsInTimeForTheEarliestDeadline() async throws {
        let url = try TestDatabase.url()
        do {
            let store = try StoreTests.makeStore(url, pool: 1)
            defer { store.shutdown() }
            try await StoreTests.seed(store, wallets: ["wa", "wb"], funds: 100)
        }
        let settings = Self.settings(url, waitMicroseconds: 1_000_000, target: 100)
        // Stands for a sibling worker in the middle of a batch: the wait applies.
        settings.activity.running.store(1, ordering: .relaxed)
        let worker = StoreWorker(name: "batch-wait-deadline", settings: settings, houseSlot: 0)
        worker.start()
        let urgent = try StoreTests.debit("urgent", "wa", 1)
        let followers = try (0..<30).map { try StoreTests.debit("follower-\($0)", "wb", 1) }
        let outcome = try await onOwnThread { () -> Result<OperationResult, LedgerError>? in
            defer { worker.stop() }
            let ready = DispatchSemaphore(value: 0)
            worker.enqueueRead { _ in ready.signal() }
            guard ready.wait(timeout: .now() + 30) == .success else { return nil }
            let answered = DispatchSemaphore(value: 0)
            let result = Mutex<Result<OperationResult, LedgerError>?>(nil)
            worker.enqueue(
                Self.pending(urgent, deadline: .now + .milliseconds(600)) { outcome in
                    result.withLock { $0 = outcome }
                    answered.signal()
                })
            let followed = DispatchSemaphore(value: 0)
            for follower in followers {
                Thread.sleep(forTimeInterval: 0.040)
                worker.enqueue(
                    Self.pending(follower) { _ in followed.signal() })
            }
            guard answered.wait(timeout: .now() + 30) == .success else { return nil }
            for _ in followers { _ = followed.wait(timeout: .now() + 30) }
            return result.withLock { $0 }
        }
        guard case .success(let result) = outcome else {
            Issue.record("the urgent debit was not applied: \(String(describing: outcome))")
            return
        }
        #expect(result.balance?.posted == 99)
        try StoreTests.expectClean(url)
    }

    /// The sibling rule with two real workers of one store: while worker A
    /// is inside a batch (held up here on a wallet lock the test holds), a
    /// command reaching worker B waits for company, and one arriving 50 ms
    /// later joins its transaction; A counts itself in and out of its batch.
    @Test func aWorkerWaitsWhileItsSiblingIsInsideABatch() async throws {
        let url = try TestDatabase.url()
        do {
            let store = try StoreTests.makeStore(url, pool: 1)
            defer { store.shutdown() }
            try await StoreTests.seed(store, wallets: ["wa", "wb", "wc"], funds: 100)
        }
        let activity = WorkerActivity()
        // Each worker its own house slot, as in a store: a debit locks its
        // worker's house wallet, which must not be the one the sibling holds.
        func worker(_ name: String, houseSlot: Int) -> StoreWorker {
            StoreWorker(
                name: name,
                settings: Self.settings(url, waitMicroseconds: 1_000_000, target: 2, activity: activity),
                houseSlot: houseSlot)
        }
        let sibling = worker("sibling-a", houseSlot: 0)
        let waiter = worker("sibling-b", houseSlot: 1)
        sibling.start()
        waiter.start()
        // Used from the test's own thread only, one statement at a time.
        nonisolated(unsafe) let blocker = try PostgresConnection(url: url)
        defer { blocker.close() }
        try blocker.executeScript("BEGIN; SELECT 1 FROM wallets WHERE wallet_id = 'wc' FOR UPDATE")
        let held = try StoreTests.debit("held-c", "wc", 1)
        let first = try StoreTests.debit("company-a", "wa", 1)
        let second = try StoreTests.debit("company-b", "wb", 1)
        let answered = try await onOwnThread { () -> Bool in
            defer {
                sibling.stop()
                waiter.stop()
            }
            let done = DispatchSemaphore(value: 0)
            func queue(_ command: Command, on worker: StoreWorker) {
                worker.enqueue(
                    Self.pending(command) { outcome in
                        if case .failure(let error) = outcome { Issue.record("\(error)") }
                        done.signal()
                    })
            }
            queue(held, on: sibling)
            // The sibling is inside its batch, waiting for the lock.
            let inside = ContinuousClock.now + .seconds(30)
            while activity.running.load(ordering: .relaxed) == 0, ContinuousClock.now < inside {
                Thread.sleep(forTimeInterval: 0.005)
            }
            guard activity.running.load(ordering: .relaxed) == 1 else { return false }
            queue(first, on: waiter)
            Thread.sleep(forTimeInterval: 0.050)
            queue(second, on: waiter)
            let both = done.wait(timeout: .now() + 30) == .success && done.wait(timeout: .now() + 30) == .success
            try? blocker.executeScript("ROLLBACK")
            return both && done.wait(timeout: .now() + 30) == .success
        }
        #expect(answered)
        #expect(activity.running.load(ordering: .relaxed) == 0)
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        let transactions = try connection.execute(
            "SELECT count(DISTINCT xmin::text) FROM transactions WHERE transaction_id IN ('company-a', 'company-b')")
        #expect(transactions.int64(row: 0, column: 0) == 1)
        let heldApplied = try connection.execute("SELECT count(*) FROM transactions WHERE transaction_id = 'held-c'")
        #expect(heldApplied.int64(row: 0, column: 0) == 1)
        try StoreTests.expectClean(url)
    }
}
