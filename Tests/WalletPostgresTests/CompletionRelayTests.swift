import Foundation
import Synchronization
import Testing
import WalletDomain
import WalletTestSupport

@testable import WalletPostgres

/// The thread that answers a worker's committed commands.
@Suite struct CompletionRelayTests {
    /// Records which deliveries ran, in what order, on which thread.
    final class Log: Sendable {
        let entries = Mutex<[(index: Int, thread: pthread_t)]>([])

        func delivery(_ index: Int) -> CompletionRelay.Delivery {
            (
                completion: { _ in
                    self.entries.withLock { $0.append((index, pthread_self())) }
                },
                result: .failure(.unavailable("delivery \(index)"))
            )
        }

        var indexes: [Int] { entries.withLock { $0.map(\.index) } }
    }

    @Test func deliveriesRunInOrderOnTheRelaysOwnThread() async throws {
        let relay = CompletionRelay()
        relay.start(name: "relay-test")
        let log = Log()
        let poster = try await onOwnThread {
            relay.post((0..<100).map(log.delivery))
            relay.post([])
            relay.post((100..<250).map(log.delivery))
            return pthread_self()
        }
        #expect(await waitUntil { log.indexes.count == 250 })
        relay.stop()
        #expect(log.indexes == Array(0..<250))
        let threads = log.entries.withLock { $0.map(\.thread) }
        #expect(Set(threads).count == 1)
        #expect(threads.first != poster)
    }

    @Test func stopAnswersEverythingQueuedBeforeItReturns() async throws {
        let relay = CompletionRelay()
        relay.start(name: "relay-test")
        let log = Log()
        let slow: CompletionRelay.Delivery = (
            completion: { _ in Thread.sleep(forTimeInterval: 0.05) }, result: .failure(.unavailable("slow"))
        )
        let counted = try await onOwnThread {
            relay.post([slow] + (0..<500).map(log.delivery))
            relay.stop()
            return log.indexes.count
        }
        #expect(counted == 500)
    }

    @Test func aPostAfterStopRunsOnThePostersThread() async throws {
        let relay = CompletionRelay()
        relay.start(name: "relay-test")
        relay.stop()
        let log = Log()
        let (counted, poster) = try await onOwnThread {
            relay.post([log.delivery(7)])
            return (log.indexes.count, pthread_self())
        }
        #expect(counted == 1)
        #expect(log.entries.withLock { $0.first?.thread } == poster)
    }

    /// Read answers are counted apart from write answers: the worker holds
    /// writes back on the write count only, so a burst of reads never makes
    /// a write QUEUE_FULL.
    @Test func readAnswersAreCountedApartFromWriteAnswers() async throws {
        let relay = CompletionRelay()
        let log = Log()
        relay.post((0..<2).map(log.delivery))
        relay.post(actions: (0..<3).map { _ in {} })
        #expect(relay.backlog.load(ordering: .relaxed) == 2)
        #expect(relay.readBacklog.load(ordering: .relaxed) == 3)
        relay.start(name: "relay-test")
        #expect(
            await waitUntil {
                relay.backlog.load(ordering: .relaxed) == 0 && relay.readBacklog.load(ordering: .relaxed) == 0
            })
        relay.stop()
    }

    @Test func stopWithoutStartDeliversWhatWasPosted() async throws {
        let relay = CompletionRelay()
        let log = Log()
        relay.post((0..<3).map(log.delivery))
        let finished = Atomic<Bool>(false)
        Thread.detachNewThread {
            relay.stop()
            finished.store(true, ordering: .relaxed)
        }
        #expect(await waitUntil { finished.load(ordering: .relaxed) })
        #expect(log.indexes == [0, 1, 2])
        #expect(relay.backlog.load(ordering: .relaxed) == 0)
    }

    /// A completion that stops the relay (a shutdown started by an answer)
    /// must not wait for its own thread; what was queued behind it is still
    /// delivered.
    @Test func stopFromADeliveryReturnsAndTheRestIsDelivered() async throws {
        let relay = CompletionRelay()
        relay.start(name: "relay-test")
        let log = Log()
        let stopReturned = Atomic<Bool>(false)
        let stopping: CompletionRelay.Delivery = (
            completion: { _ in
                relay.stop()
                stopReturned.store(true, ordering: .relaxed)
            },
            result: .failure(.unavailable("stop"))
        )
        relay.post([stopping] + (0..<50).map(log.delivery))
        #expect(await waitUntil { stopReturned.load(ordering: .relaxed) && log.indexes.count == 50 })
        #expect(log.indexes == Array(0..<50))
    }
}

extension WorkerAnswersTests {
    /// A worker stopped before it started answers what was queued (nothing
    /// recorded) instead of waiting for a thread that never ran.
    @Test func aWorkerNeverStartedAnswersItsQueueWhenStopped() async throws {
        let settings = StoreWorker.Settings(
            databaseURL: "postgresql://nowhere.invalid/none", houseSlot: nil, batchSizeMax: 512,
            queueDepthMax: 10, walletQueueDepthMax: 10, slowBatchMilliseconds: 0, batchWaitMicroseconds: 0,
            batchWaitTarget: 1, activity: WorkerActivity(), log: { _ in })
        let worker = StoreWorker(name: "never-started", settings: settings, houseSlot: 0)
        let outcome = Mutex<Result<OperationResult, LedgerError>?>(nil)
        let command = try StoreTests.debit("never-ran", "w", 1)
        worker.enqueue(
            PendingCommand(
                command: command, prepared: PreparedRow(command), hint: nil, queueKey: "w", deadline: nil
            ) { result in outcome.withLock { $0 = result } })
        let finished = Atomic<Bool>(false)
        Thread.detachNewThread {
            worker.stop()
            finished.store(true, ordering: .relaxed)
        }
        #expect(await waitUntil { finished.load(ordering: .relaxed) })
        guard case .failure(let error)? = outcome.withLock({ $0 }) else {
            Issue.record("not answered with a failure: \(String(describing: outcome.withLock { $0 }))")
            return
        }
        #expect(error.code == .unavailable)
    }
}

/// A worker answers through its relay: the lane thread neither encodes nor
/// sends, for a committed command or a refused one.
@Suite struct WorkerAnswersTests {
    /// The kernel's name of the calling thread.
    static func threadName() -> String {
        (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
    }

    /// A new database with `wallet` funded, and a started worker on it (no
    /// batch wait), its relay thread named "lane-test-acks".
    static func startWorker(funding wallet: String, queueDepthMax: Int) async throws -> (
        url: String, worker: StoreWorker
    ) {
        let url = try TestDatabase.url()
        do {
            let store = try StoreTests.makeStore(url, pool: 1)
            defer { store.shutdown() }
            try await StoreTests.seed(store, wallets: [wallet], funds: 100)
        }
        let settings = StoreWorker.Settings(
            databaseURL: url, houseSlot: nil, batchSizeMax: 512, queueDepthMax: queueDepthMax,
            walletQueueDepthMax: 100, slowBatchMilliseconds: 0, batchWaitMicroseconds: 0, batchWaitTarget: 1,
            activity: WorkerActivity(), log: { _ in })
        let worker = StoreWorker(name: "lane-test", relayName: "lane-test-acks", settings: settings, houseSlot: 0)
        worker.start()
        return (url, worker)
    }

    @Test func aCommittedAndAnExpiredCommandAreBothAnsweredOnTheRelay() async throws {
        let (url, worker) = try await Self.startWorker(funding: "relay-a", queueDepthMax: 100)
        let answers = Mutex<[String: (thread: String, ok: Bool)]>([:])
        let answered = try await onOwnThread {
            defer { worker.stop() }
            let done = DispatchSemaphore(value: 0)
            func queue(_ command: Command, deadline: ContinuousClock.Instant?) {
                worker.enqueue(
                    PendingCommand(
                        command: command, prepared: PreparedRow(command), hint: nil, queueKey: nil,
                        deadline: deadline
                    ) { outcome in
                        let ok = if case .success = outcome { true } else { false }
                        answers.withLock { $0[command.transactionID] = (Self.threadName(), ok) }
                        done.signal()
                    })
            }
            queue(try StoreTests.debit("relay-ok", "relay-a", 1), deadline: nil)
            queue(try StoreTests.debit("relay-late", "relay-a", 1), deadline: .now - .seconds(1))
            return done.wait(timeout: .now() + 30) == .success && done.wait(timeout: .now() + 30) == .success
        }
        #expect(answered)
        let seen = answers.withLock { $0 }
        #expect(seen["relay-ok"]?.ok == true)
        #expect(seen["relay-late"]?.ok == false)
        #expect(seen["relay-ok"]?.thread == "lane-test-acks")
        #expect(seen["relay-late"]?.thread == "lane-test-acks")
        try StoreTests.expectClean(url)
    }
}

extension WorkerAnswersTests {
    /// An answer the relay has not delivered yet still holds a place in the
    /// worker's queue: a stuck relay holds new commands back (QUEUE_FULL,
    /// nothing recorded) instead of piling answers up without bound.
    @Test func answersNotYetSentCountAgainstTheQueueLimit() async throws {
        let (url, worker) = try await Self.startWorker(funding: "relay-b", queueDepthMax: 3)
        let outcomes = Mutex<[String: Result<OperationResult, LedgerError>]>([:])
        let finished = try await onOwnThread {
            defer { worker.stop() }
            let answered = DispatchSemaphore(value: 0)
            let firstArrived = DispatchSemaphore(value: 0)
            let releaseRelay = DispatchSemaphore(value: 0)
            func queue(_ id: String, blockRelay: Bool = false) throws {
                let command = try StoreTests.debit(id, "relay-b", 1)
                worker.enqueue(
                    PendingCommand(
                        command: command, prepared: PreparedRow(command), hint: nil, queueKey: nil, deadline: nil
                    ) { outcome in
                        outcomes.withLock { $0[id] = outcome }
                        if blockRelay {
                            firstArrived.signal()
                            releaseRelay.wait()
                        }
                        answered.signal()
                    })
            }
            // The first answer blocks the relay; two more commit behind it.
            try queue("backlog-1", blockRelay: true)
            guard firstArrived.wait(timeout: .now() + 30) == .success else { return false }
            try queue("backlog-2")
            try queue("backlog-3")
            let deadline = Date().addingTimeInterval(30)
            while worker.relay.backlog.load(ordering: .relaxed) < 3, Date() < deadline {
                Thread.sleep(forTimeInterval: 0.005)
            }
            // Three answers unsent and a limit of three: refused at once.
            try queue("backlog-4")
            releaseRelay.signal()
            for _ in 0..<4 where answered.wait(timeout: .now() + 30) != .success { return false }
            // Once they are sent, there is room again.
            try queue("backlog-5")
            return answered.wait(timeout: .now() + 30) == .success
        }
        #expect(finished)
        let seen = outcomes.withLock { $0 }
        for id in ["backlog-1", "backlog-2", "backlog-3", "backlog-5"] {
            #expect((try? seen[id]?.get()) != nil, "\(id): \(String(describing: seen[id]))")
        }
        guard case .failure(let refusal)? = seen["backlog-4"] else {
            Issue.record("backlog-4 was not refused: \(String(describing: seen["backlog-4"]))")
            return
        }
        #expect(refusal.code == .resourceExhausted && refusal.reason == "QUEUE_FULL")
        #expect(worker.relay.backlog.load(ordering: .relaxed) == 0)
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        let recorded = try connection.execute(
            "SELECT count(*) FROM transactions WHERE transaction_id = 'backlog-4'")
        #expect(recorded.int64(row: 0, column: 0) == 0)
        try StoreTests.expectClean(url)
    }
}
