import Foundation
import MetricsTestKit
import Testing
import WalletDomain

@testable import WalletPostgres

/// What the store's workers record through swift-metrics, read back from a
/// test factory: queue depths, batch sizes, commit times, connection states.
@Suite struct StoreMetricsTests {
    /// Polls `condition` for up to ten seconds.
    static func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<1_000 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test func committedBatchesAreCountedAndTimedAndConnectionsAreUp() async throws {
        let metrics = TestMetrics()
        var configuration = StoreConfiguration(databaseURL: try TestDatabase.url(), poolSize: 2)
        configuration.metrics = StoreMetrics(factory: metrics)
        configuration.connectWorkersAtStart = true
        let store = try PostgresLedgerStore(configuration: configuration)
        defer { store.shutdown() }
        let up = try metrics.expectMeter(StoreMetrics.connectionsUpLabel)
        let down = try metrics.expectMeter(StoreMetrics.connectionsDownLabel)
        // Both workers connect as they start, before any command.
        #expect(await Self.eventually { up.lastValue == 2 && down.lastValue == 0 })

        try await StoreTests.seed(store, wallets: ["m-a", "m-b"], funds: 1_000)
        let debits = 200
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<debits {
                group.addTask {
                    _ = try await store.execute(
                        try StoreTests.debit("m-debit-\(index)", index % 2 == 0 ? "m-a" : "m-b", 1), deadline: nil)
                }
            }
            try await group.waitForAll()
        }
        let sizes = try metrics.expectRecorder(StoreMetrics.batchSizeLabel).values
        // Two fundings and 200 debits, in however many batches they took.
        #expect(sizes.reduce(0, +) == Double(debits + 2))
        #expect(sizes.allSatisfy { $0 >= 1 && $0 <= 512 })
        let commits = try metrics.expectTimer(StoreMetrics.commitDurationLabel).values
        #expect(commits.count == sizes.count)
        #expect(commits.allSatisfy { $0 > 0 })
        // Idle again: every lane's queue depth comes back to zero.
        for lane in ["wallet-db-0", "wallet-db-1"] {
            let depth = try metrics.expectGauge(StoreMetrics.laneQueueDepthLabel, [("lane", lane)])
            #expect(await Self.eventually { depth.lastValue == 0 })
        }
        #expect(up.lastValue == 2 && down.lastValue == 0)
    }

    @Test func aWorkerThatCannotConnectCountsAsDown() async throws {
        let metrics = TestMetrics()
        let settings = StoreWorker.Settings(
            databaseURL: "postgresql://wallet:s3cret@127.0.0.1:1/none?connect_timeout=2", houseSlot: nil,
            batchSizeMax: 512, queueDepthMax: 10, walletQueueDepthMax: 10, slowBatchMilliseconds: 0,
            batchWaitMicroseconds: 0, batchWaitTarget: 1, activity: WorkerActivity(), log: { _ in },
            metrics: StoreMetrics(factory: metrics), connectAtStart: true)
        let worker = StoreWorker(name: "nowhere", settings: settings, houseSlot: 0)
        let down = try metrics.expectMeter(StoreMetrics.connectionsDownLabel)
        #expect(down.lastValue == 1)
        worker.start()
        let outcome = await withCheckedContinuation { continuation in
            worker.enqueue(
                PendingCommand(
                    command: try! StoreTests.debit("nowhere-1", "w", 1), prepared: nil, hint: nil, queueKey: "w",
                    deadline: nil
                ) { continuation.resume(returning: $0) })
        }
        guard case .failure(let error) = outcome else {
            Issue.record("expected UNAVAILABLE, got \(outcome)")
            return
        }
        #expect(error.code == .unavailable)
        #expect(down.lastValue == 1)
        #expect(metrics.meters(label: StoreMetrics.connectionsUpLabel).allSatisfy { ($0.lastValue ?? 0) == 0 })
        await Task.detached { worker.stop() }.value
    }

    /// Up while its connection works; down once it breaks and a reconnect
    /// fails (here: its database dropped under it).
    @Test func aWorkerWhoseDatabaseGoesAwayMovesFromUpToDown() async throws {
        let metrics = TestMetrics()
        let url = try TestDatabase.url()
        do {
            let store = try StoreTests.makeStore(url, pool: 1)
            defer { store.shutdown() }
            try await StoreTests.seed(store, wallets: ["gone"], funds: 100)
        }
        let settings = StoreWorker.Settings(
            databaseURL: url, houseSlot: nil, batchSizeMax: 512, queueDepthMax: 10, walletQueueDepthMax: 10,
            slowBatchMilliseconds: 0, batchWaitMicroseconds: 0, batchWaitTarget: 1, activity: WorkerActivity(),
            log: { _ in }, metrics: StoreMetrics(factory: metrics), connectAtStart: true)
        let worker = StoreWorker(name: "going", settings: settings, houseSlot: 0)
        let up = try metrics.expectMeter(StoreMetrics.connectionsUpLabel)
        let down = try metrics.expectMeter(StoreMetrics.connectionsDownLabel)
        worker.start()
        #expect(await Self.eventually { up.lastValue == 1 && down.lastValue == 0 })

        let name = try #require(url.split(separator: " ").first { $0.hasPrefix("dbname=") }?.dropFirst("dbname=".count))
            .trimmingCharacters(in: ["'"])
        let maintenance = try #require(ConnectionString.replacingDatabase(in: url, with: "postgres"))
        let admin = try PostgresConnection(url: maintenance)
        defer { admin.close() }
        try admin.executeScript("DROP DATABASE \(LocalPostgres.quotedIdentifier(name)) WITH (FORCE)")

        let outcome = await withCheckedContinuation { continuation in
            worker.enqueue(
                PendingCommand(
                    command: try! StoreTests.debit("gone-1", "gone", 1), prepared: nil, hint: nil, queueKey: "gone",
                    deadline: nil
                ) { continuation.resume(returning: $0) })
        }
        guard case .failure(let error) = outcome else {
            Issue.record("expected UNAVAILABLE, got \(outcome)")
            return
        }
        #expect(error.code == .unavailable)
        #expect(up.lastValue == 0 && down.lastValue == 1)
        await Task.detached { worker.stop() }.value
    }
}
