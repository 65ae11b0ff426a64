import Foundation
import Synchronization
import Testing
import WalletDomain
import WalletPostgres

/// The ledger as a stream, against a real server: two store instances on one
/// database writing concurrently, consumers on each (one filtered by
/// wallet), and at the end every consumer's events equal the ledger exactly:
/// every transaction record and status change once, per-wallet commit order,
/// nothing extra; a batch that commits after a higher position is not
/// skipped; from_now and resuming after a cursor.
@Suite struct EventFeedTests {
    typealias Seen = (position: EventPosition, id: String, status: TransactionStatus, record: TransactionRecord)

    /// What a consumer has read, shared with its task.
    final class Received: Sendable {
        let events = Mutex<[Seen]>([])
    }

    /// Reads from `source` until cancelled; what it read so far.
    final class Consumer: Sendable {
        private let received = Received()
        private let task: Task<Void, Never>

        init(_ source: any EventSource, start: EventReadState = EventReadState(position: .origin), wallet: String? = nil)
        {
            let received = received
            task = Task {
                var state = start
                while !Task.isCancelled {
                    do throws(LedgerError) {
                        guard let page = try await source.next(after: &state, walletID: wallet, limit: 97)
                        else { return }
                        received.events.withLock { seen in
                            seen += page.map { ($0.position, $0.transaction.id, $0.transaction.status, $0.transaction) }
                        }
                    } catch {
                        Issue.record("read failed: \(error)")
                        return
                    }
                }
            }
        }

        var seen: [Seen] { received.events.withLock { $0 } }

        /// Waits (bounded) until the consumer has read through `position`.
        func waitUntil(passed batch: Int64, seconds: Int = 30) async -> Bool {
            for _ in 0..<(seconds * 50) {
                if let last = seen.last, last.position.batch >= batch { return true }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return false
        }

        func stop() async {
            task.cancel()
            await task.value
        }
    }

    static func highestPosition(_ url: String) throws -> Int64 {
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        return try connection.execute("SELECT coalesce(max(position), 0) FROM event_batches").int64(row: 0, column: 0)
            ?? 0
    }

    /// A random mix of every kind of write on `wallets`, on either store.
    static func workload(_ stores: [PostgresLedgerStore], wallets: [String], operations: Int, seed: UInt64) async {
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var random = SplitMix(seed: seed &+ UInt64(worker))
                    for step in 0..<(operations / 8) {
                        let store = stores[Int(random.next() % UInt64(stores.count))]
                        let wallet = wallets[Int(random.next() % UInt64(wallets.count))]
                        let other = wallets[Int(random.next() % UInt64(wallets.count))]
                        let id = "op-\(seed)-\(worker)-\(step)"
                        do throws(LedgerError) {
                            switch random.next() % 7 {
                            case 0:
                                _ = try await store.execute(try StoreTests.credit(id, wallet, 50), deadline: nil)
                            case 1:
                                // Sometimes more than the wallet has: a pinned rejection.
                                let amount = Int64(random.next() % 400) + 1
                                _ = try await store.execute(try StoreTests.debit(id, wallet, amount), deadline: nil)
                            case 2:
                                let hold = try Authorize(
                                    transactionID: id, walletID: wallet, asset: "USD", amount: 20, funding: [],
                                    metadata: [:], expiresInMilliseconds: 0)
                                _ = try await store.execute(.authorize(hold), deadline: nil)
                                if random.next() % 2 == 0 {
                                    let settle = try Settle(
                                        transactionID: id + "-s", authorizationID: id, captureAmount: 0, payout: 0,
                                        payoutBucket: "", destinationWalletID: other == wallet ? "" : other,
                                        metadata: [:])
                                    _ = try await store.execute(.settle(settle), deadline: nil)
                                } else {
                                    let rollback = try Rollback(
                                        transactionID: id + "-r", targetTransactionID: id, metadata: [:])
                                    _ = try await store.execute(.rollback(rollback), deadline: nil)
                                }
                            case 3 where other != wallet:
                                let transfer = try Transfer(
                                    transactionID: id, fromWalletID: wallet, toWalletID: other, asset: "USD",
                                    amount: 5, bucket: "", metadata: [:])
                                _ = try await store.execute(.transfer(transfer), deadline: nil)
                            case 4:
                                // A cancel that arrives before its bet: a tombstone (no event),
                                // and the Rollback's own record (an event).
                                let rollback = try Rollback(
                                    transactionID: id, targetTransactionID: id + "-never", metadata: [:])
                                _ = try await store.execute(.rollback(rollback), deadline: nil)
                            case 5:
                                // A debit, then its cancel: POSTED, then ROLLED_BACK.
                                _ = try await store.execute(try StoreTests.debit(id, wallet, 1), deadline: nil)
                                let rollback = try Rollback(
                                    transactionID: id + "-c", targetTransactionID: id, metadata: [:])
                                _ = try await store.execute(.rollback(rollback), deadline: nil)
                            default:
                                // A replay writes nothing and makes no event.
                                _ = try await store.execute(try StoreTests.credit(id, wallet, 7), deadline: nil)
                                _ = try await store.execute(try StoreTests.credit(id, wallet, 7), deadline: nil)
                            }
                        } catch {
                            // Business rejections are values; anything thrown here is a bug.
                            Issue.record("\(id): \(error)")
                        }
                    }
                }
            }
        }
    }

    /// What the ledger holds: each transaction's current status and the
    /// last sequence of each player wallet.
    static func ledger(_ url: String) throws -> (statuses: [String: TransactionStatus], lastSequences: [String: UInt64])
    {
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        var statuses: [String: TransactionStatus] = [:]
        let rows = try connection.execute("SELECT transaction_id, status FROM transactions WHERE kind <> 'TOMBSTONE'")
        for row in 0..<rows.rowCount {
            statuses[rows.string(row: row, column: 0)!] = TransactionStatus(rawValue: rows.string(row: row, column: 1)!)
        }
        var sequences: [String: UInt64] = [:]
        let wallets = try connection.execute(
            "SELECT wallet_id, last_sequence FROM wallets WHERE wallet_id NOT LIKE 'sys:%'")
        for row in 0..<wallets.rowCount {
            sequences[wallets.string(row: row, column: 0)!] = UInt64(wallets.int64(row: row, column: 1)!)
        }
        return (statuses, sequences)
    }

    /// Every check a consumer of the whole ledger must pass.
    static func expectExact(_ seen: [Seen], ledger: (statuses: [String: TransactionStatus], lastSequences: [String: UInt64]))
    {
        // In order, no position twice.
        for (earlier, later) in zip(seen, seen.dropFirst()) {
            #expect(earlier.position < later.position, "\(earlier.position) then \(later.position)")
        }
        // Every (transaction, status) once; every transaction's last event has its status now.
        var pairs = Set<String>()
        var last: [String: TransactionStatus] = [:]
        var firstEvent: [String: TransactionRecord] = [:]
        for event in seen {
            #expect(pairs.insert("\(event.id)|\(event.status)").inserted, "\(event.id) \(event.status) twice")
            last[event.id] = event.status
            if firstEvent[event.id] == nil { firstEvent[event.id] = event.record }
        }
        let missing = Set(ledger.statuses.keys).subtracting(last.keys)
        let extra = Set(last.keys).subtracting(ledger.statuses.keys)
        #expect(missing.isEmpty && extra.isEmpty, "without events: \(missing.sorted()); events of none: \(extra.sorted())")
        for (id, status) in ledger.statuses {
            #expect(last[id] == status, "\(id): last event \(String(describing: last[id])), ledger \(status)")
        }
        // Per wallet, the entries of each transaction's first event, in event
        // order: sequences 1, 2, 3, ... up to the wallet's head, none missing.
        var next: [String: UInt64] = [:]
        for event in seen where firstEvent[event.id] == event.record && event.record.status == event.status {
            for entry in event.record.entries where !Reserved.isReserved(entry.walletID) {
                let expected = (next[entry.walletID] ?? 0) + 1
                #expect(entry.sequence == expected, "\(entry.walletID): sequence \(entry.sequence), expected \(expected)")
                next[entry.walletID] = entry.sequence
            }
        }
        for (wallet, head) in ledger.lastSequences {
            #expect((next[wallet] ?? 0) == head, "\(wallet): events end at \(next[wallet] ?? 0), the chain at \(head)")
        }
    }

    @Test func twoInstancesWithConsumersOnEachSeeTheLedgerExactly() async throws {
        let url = try TestDatabase.url()
        let first = try StoreTests.makeStore(url, pool: 3)
        let second = try StoreTests.makeStore(url, pool: 3)
        defer {
            first.shutdown()
            second.shutdown()
        }
        let wallets = (0..<6).map { "ev-w\($0)" }
        try await StoreTests.seed(first, wallets: wallets, funds: 5_000)

        let onFirst = Consumer(first.events)
        let onSecond = Consumer(second.events)
        let filtered = Consumer(first.events, wallet: "ev-w3")
        await Self.workload([first, second], wallets: wallets, operations: 480, seed: 1)
        let high = try Self.highestPosition(url)
        #expect(await onFirst.waitUntil(passed: high))
        #expect(await onSecond.waitUntil(passed: high))
        await onFirst.stop()
        await onSecond.stop()
        await filtered.stop()

        let ledger = try Self.ledger(url)
        Self.expectExact(onFirst.seen, ledger: ledger)
        #expect(onSecond.seen.map { "\($0.position) \($0.id) \($0.status)" } == onFirst.seen.map {
            "\($0.position) \($0.id) \($0.status)"
        })
        let touchingW3 = onFirst.seen.filter { $0.record.walletIDs.contains("ev-w3") }
        #expect(!touchingW3.isEmpty)
        // The filtered consumer may stop before the last of them: a prefix, nothing else.
        let filteredSeen = filtered.seen.map { "\($0.position) \($0.id)" }
        #expect(filteredSeen == Array(touchingW3.map { "\($0.position) \($0.id)" }.prefix(filteredSeen.count)))
        #expect(filteredSeen.count > 0)

        // Resuming after any event, on the other instance, gives the rest.
        let all = onFirst.seen
        let middle = all[all.count / 2]
        let resumed = Consumer(second.events, start: EventReadState(position: middle.position))
        #expect(await resumed.waitUntil(passed: high))
        await resumed.stop()
        #expect(resumed.seen.map { "\($0.position) \($0.id)" } == all[(all.count / 2 + 1)...].map { "\($0.position) \($0.id)" })
        try StoreTests.expectClean(url)
    }

    @Test func aBatchThatCommitsAfterAHigherPositionIsNotSkipped() async throws {
        let url = try TestDatabase.url()
        let store = try StoreTests.makeStore(url, pool: 2)
        defer { store.shutdown() }
        try await StoreTests.seed(store, wallets: ["gap-a", "gap-b"], funds: 100)
        let before = try Self.highestPosition(url)
        let consumer = Consumer(store.events, start: EventReadState(position: EventPosition(batch: before, index: .max)))

        // Another writer takes a position and holds its transaction open, as
        // a batch does between its last statement and COMMIT.
        let held = try PostgresConnection(url: url)
        defer { held.close() }
        try held.executeScript("BEGIN")
        _ = try held.execute("SELECT pg_current_xact_id()")
        let heldPosition = try held.execute(
            "INSERT INTO event_batches (transaction_ids, statuses, wallet_ids) "
                + "VALUES ('{fund-gap-a}', '{POSTED}', '{gap-a}') RETURNING position"
        ).int64(row: 0, column: 0)!
        // A later batch commits with a higher position.
        _ = try await store.execute(try StoreTests.credit("after-held", "gap-b", 5), deadline: nil)
        #expect(try Self.highestPosition(url) > heldPosition)
        try await Task.sleep(for: .milliseconds(400))
        #expect(consumer.seen.isEmpty, "delivered past a position that could still commit: \(consumer.seen.map(\.id))")

        try held.executeScript("COMMIT")
        #expect(await consumer.waitUntil(passed: heldPosition + 1))
        await consumer.stop()
        #expect(consumer.seen.map(\.id) == ["fund-gap-a", "after-held"])
        #expect(consumer.seen.map(\.position.batch) == [heldPosition, heldPosition + 1])
    }

    /// The case a snapshot's list of running transactions misses: the late
    /// batch got its transaction id after the one that commits first, so
    /// that id is above every completed one when the frontier looks.
    @Test func aLateBatchWithANewerTransactionIdIsNotSkipped() async throws {
        let url = try TestDatabase.url()
        let store = try StoreTests.makeStore(url, pool: 2)
        defer { store.shutdown() }
        try await StoreTests.seed(store, wallets: ["xid-a", "xid-b"], funds: 100)
        let before = try Self.highestPosition(url)
        let consumer = Consumer(store.events, start: EventReadState(position: EventPosition(batch: before, index: .max)))
        let early = try PostgresConnection(url: url)
        let late = try PostgresConnection(url: url)
        defer {
            early.close()
            late.close()
        }
        try early.executeScript("BEGIN")
        _ = try early.execute("SELECT pg_current_xact_id()")
        try late.executeScript("BEGIN")
        _ = try late.execute("SELECT pg_current_xact_id()")
        let latePosition = try late.execute(
            "INSERT INTO event_batches (transaction_ids, statuses, wallet_ids) "
                + "VALUES ('{fund-xid-a}', '{POSTED}', '{xid-a}') RETURNING position"
        ).int64(row: 0, column: 0)!
        _ = try early.execute(
            "INSERT INTO event_batches (transaction_ids, statuses, wallet_ids) "
                + "VALUES ('{fund-xid-b}', '{POSTED}', '{xid-b}')")
        try early.executeScript("COMMIT")
        try await Task.sleep(for: .milliseconds(400))
        #expect(consumer.seen.isEmpty, "delivered past a position that could still commit: \(consumer.seen.map(\.id))")
        try late.executeScript("COMMIT")
        #expect(await consumer.waitUntil(passed: latePosition + 1))
        await consumer.stop()
        #expect(consumer.seen.map(\.id) == ["fund-xid-a", "fund-xid-b"])
    }

    @Test func aBatchThatRollsBackLeavesAHoleThatDoesNotHoldTheStreamUp() async throws {
        let url = try TestDatabase.url()
        let store = try StoreTests.makeStore(url, pool: 2)
        defer { store.shutdown() }
        try await StoreTests.seed(store, wallets: ["hole-a"], funds: 100)
        let before = try Self.highestPosition(url)
        let consumer = Consumer(store.events, start: EventReadState(position: EventPosition(batch: before, index: .max)))
        let aborted = try PostgresConnection(url: url)
        defer { aborted.close() }
        try aborted.executeScript("BEGIN")
        _ = try aborted.execute("SELECT pg_current_xact_id()")
        _ = try aborted.execute(
            "INSERT INTO event_batches (transaction_ids, statuses, wallet_ids) VALUES ('{fund-hole-a}', '{POSTED}', '{}')")
        _ = try await store.execute(try StoreTests.credit("after-hole", "hole-a", 5), deadline: nil)
        try aborted.executeScript("ROLLBACK")
        #expect(await consumer.waitUntil(passed: before + 2))
        await consumer.stop()
        #expect(consumer.seen.map(\.id) == ["after-hole"])
    }

    @Test func fromNowSeesOnlyWhatCommitsAfterTheCallStarts() async throws {
        let url = try TestDatabase.url()
        let store = try StoreTests.makeStore(url, pool: 2)
        defer { store.shutdown() }
        try await StoreTests.seed(store, wallets: ["now-a"], funds: 100)
        for index in 0..<5 { _ = try await store.execute(try StoreTests.credit("old-\(index)", "now-a", 1), deadline: nil) }
        let start = try await store.events.begin(.now)
        let consumer = Consumer(store.events, start: start)
        for index in 0..<3 { _ = try await store.execute(try StoreTests.credit("new-\(index)", "now-a", 1), deadline: nil) }
        #expect(await consumer.waitUntil(passed: try Self.highestPosition(url)))
        await consumer.stop()
        #expect(consumer.seen.map(\.id) == ["new-0", "new-1", "new-2"])
    }

    @Test func cursorsRoundTripAndForgeriesAreRefused() throws {
        let codec = EventCursorCodec(secret: Array("secret".utf8))
        let other = EventCursorCodec(secret: Array("another database".utf8))
        for position in [EventPosition.origin, EventPosition(batch: 1, index: 0), EventPosition(batch: 9_000_000_000, index: 511)] {
            #expect(try codec.decode(codec.encode(position)) == position)
            #expect(throws: LedgerError.self) { try other.decode(codec.encode(position)) }
        }
        for forged in ["", "1.0", "1.0.", "x.0.aa", "-5.0.aa", "1.-2.aa", "1.0.000000000000000000000000", "1.0.ab.cd"] {
            do {
                _ = try codec.decode(forged)
                Issue.record("\(forged) was accepted")
            } catch {
                #expect(error.reason == "INVALID_CURSOR")
            }
        }
    }
}

/// A small deterministic generator for workloads.
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
