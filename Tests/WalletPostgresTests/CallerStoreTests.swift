import Testing
import WalletDomain
import WalletPostgres

/// The caller's identity on transaction rows (migration 5): written with
/// every row a command creates, kept by status changes, and read back by
/// every path that returns a transaction.
@Suite struct CallerStoreTests {
    static let game = "spiffe://casino/game-service"
    static let backOffice = "backoffice"
    static let auditor = "auditor"

    static func sent(_ command: Command, by caller: String) -> Command {
        var command = command
        command.caller = caller
        return command
    }

    /// The scenario's writes, each with the caller it is sent by.
    static func writes() throws -> [(command: Command, caller: String)] {
        try [
            (StoreTests.credit("c1", "alice", 500), game),
            (StoreTests.debit("d1", "alice", 100), game),
            (
                .authorize(
                    try Authorize(
                        transactionID: "h1", walletID: "alice", asset: "USD", amount: 300, funding: [],
                        metadata: [:], expiresInMilliseconds: 0)), game
            ),
            (
                .authorize(
                    try Authorize(
                        transactionID: "h2", walletID: "alice", asset: "USD", amount: 200, funding: [],
                        metadata: [:], expiresInMilliseconds: 0)), game
            ),
            (
                .settle(
                    try Settle(
                        transactionID: "s1", authorizationID: "h1", captureAmount: 0, payout: 0, payoutBucket: "",
                        destinationWalletID: "pot", metadata: [:])), backOffice
            ),
            (.rollback(try Rollback(transactionID: "r1", targetTransactionID: "h2", metadata: [:])), backOffice),
            (.rollback(try Rollback(transactionID: "r2", targetTransactionID: "d1", metadata: [:])), backOffice),
            (
                .transfer(
                    try Transfer(
                        transactionID: "t1", fromWalletID: "pot", toWalletID: "alice", asset: "USD", amount: 50,
                        bucket: "", metadata: [:])), game
            ),
            (
                .reverse(try Reverse(transactionID: "v1", originalTransactionID: "c1", reason: "x", metadata: [:])),
                auditor
            ),
        ]
    }

    @Test(arguments: [WriteMode.lanes, WriteMode.perRequest])
    func theCallerIsStoredAndReturnedByEveryRead(mode: WriteMode) async throws {
        let url = try TestDatabase.url()
        var store = try StoreTests.makeStore(url, mode: mode)
        try await StoreTests.seed(store, wallets: ["alice", "pot"], funds: 1_000)
        var expected: [String: String] = ["fund-alice": "", "fund-pot": ""]
        for (command, caller) in try Self.writes() {
            let result = try await store.execute(Self.sent(command, by: caller), deadline: nil)
            #expect(result.transaction.caller == caller, "\(command.transactionID)")
            expected[command.transactionID] = caller
        }
        // A pinned rejection records its caller too.
        do throws(LedgerError) {
            _ = try await store.execute(
                Self.sent(try StoreTests.debit("big", "alice", 1_000_000), by: Self.game), deadline: nil)
            Issue.record("a debit beyond the balance was applied")
        } catch {
            #expect(error.reason == "INSUFFICIENT_FUNDS")
        }
        expected["big"] = Self.game
        store.shutdown()

        // A new instance reads everything from the database.
        store = try StoreTests.makeStore(url, mode: mode)
        defer { store.shutdown() }
        for (id, caller) in expected {
            let record = try await store.transaction(id: id)
            #expect(record.caller == caller, "GetTransaction \(id)")
        }
        // Status changes kept each original's caller.
        let changed: [(String, TransactionStatus)] = [
            ("h1", .settled), ("h2", .rolledBack), ("d1", .rolledBack), ("c1", .reversed),
        ]
        for (id, status) in changed {
            let record = try await store.transaction(id: id)
            #expect(record.status == status, "\(id)")
            #expect(record.caller == Self.game, "\(id)")
        }
        for wallet in ["alice", "pot"] {
            var cursor: Int64? = nil
            var seen = 0
            repeat {
                let page = try await store.history(walletID: wallet, limit: 3, before: cursor)
                for record in page.transactions {
                    #expect(record.caller == expected[record.id], "ListTransactions \(wallet) \(record.id)")
                    seen += 1
                }
                cursor = page.nextCursor
            } while cursor != nil
            #expect(seen > 0)
        }
        // A replay by another identity is the original outcome, with the
        // original caller: not IDEMPOTENCY_MISMATCH.
        for (command, caller) in try Self.writes() {
            let replay = try await store.execute(Self.sent(command, by: "someone-else"), deadline: nil)
            #expect(replay.replayed, "\(command.transactionID)")
            #expect(replay.transaction.caller == caller, "\(command.transactionID)")
        }
        #expect(try await store.transaction(id: "c1").caller == Self.game)
        try StoreTests.expectClean(url)
    }

    /// A rollback that arrives first leaves a tombstone (with its caller);
    /// the late bet's pinned rejection replaces the row, with the late
    /// bet's caller. An expiry, written by the sweeper, has none.
    @Test func aReplacedTombstoneAndAnExpiryCarryTheirOwnCaller() async throws {
        let url = try TestDatabase.url()
        let store = try StoreTests.makeStore(url)
        defer { store.shutdown() }
        try await StoreTests.seed(store, wallets: ["alice"], funds: 1_000)
        let cancel = try await store.execute(
            Self.sent(
                .rollback(try Rollback(transactionID: "r1", targetTransactionID: "late", metadata: [:])),
                by: Self.backOffice),
            deadline: nil)
        #expect(!cancel.targetFound && cancel.transaction.caller == Self.backOffice)
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        func storedCaller(_ id: String) throws -> String? {
            try connection.execute("SELECT caller FROM transactions WHERE transaction_id = $1", [id])
                .string(row: 0, column: 0)
        }
        #expect(try storedCaller("late") == Self.backOffice)

        do throws(LedgerError) {
            _ = try await store.execute(
                Self.sent(try StoreTests.debit("late", "alice", 10), by: Self.game), deadline: nil)
            Issue.record("a bet after its rollback was applied")
        } catch {
            #expect(error.reason == "ALREADY_ROLLED_BACK")
        }
        let pinned = try await store.transaction(id: "late")
        #expect(pinned.status == .rejected && pinned.caller == Self.game)
        #expect(try storedCaller("late") == Self.game)

        _ = try await store.execute(
            Self.sent(
                .authorize(
                    try Authorize(
                        transactionID: "h1", walletID: "alice", asset: "USD", amount: 100, funding: [],
                        metadata: [:], expiresInMilliseconds: 1)), by: Self.game),
            deadline: nil)
        try await Task.sleep(for: .milliseconds(20))
        let expiry = try await store.execute(.expire(holdID: "h1"), deadline: nil)
        #expect(expiry.transaction.kind == .expire && expiry.transaction.caller == "")
        #expect(try storedCaller(expiry.transaction.id) == "")
        let hold = try await store.transaction(id: "h1")
        #expect(hold.status == .expired && hold.caller == Self.game)
        try StoreTests.expectClean(url)
    }

    /// Commands of many callers applied together (one batch, one row array
    /// per column): each row gets its own command's caller.
    @Test func aBatchWritesEachRowsOwnCaller() async throws {
        let url = try TestDatabase.url()
        let store = try StoreTests.makeStore(url)
        defer { store.shutdown() }
        try await StoreTests.seed(store, wallets: ["hot"], funds: 10_000)
        let count = 64
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask {
                    let command = Self.sent(try StoreTests.debit("bet-\(index)", "hot", 1), by: "caller-\(index)")
                    let result = try await store.execute(command, deadline: nil)
                    #expect(result.transaction.caller == "caller-\(index)")
                }
            }
            try await group.waitForAll()
        }
        let page = try await store.history(walletID: "hot", limit: count + 1, before: nil)
        #expect(page.transactions.count == count + 1)
        for record in page.transactions where record.id.hasPrefix("bet-") {
            #expect(record.caller == "caller-\(record.id.dropFirst(4))", "\(record.id)")
        }
        try StoreTests.expectClean(url)
    }

    /// Rows written before migration 5 (made here by undoing it) read back
    /// with an empty caller; the previous build's insert, which does not
    /// name the column, fails instead of recording a row without its caller.
    @Test func migrationFiveGivesEarlierRowsAnEmptyCaller() async throws {
        let url = try TestDatabase.url()
        var store = try StoreTests.makeStore(url)
        try await StoreTests.seed(store, wallets: ["p"], funds: 1_000)
        store.shutdown()
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        try connection.executeScript(
            """
            ALTER TABLE transactions DROP COLUMN caller;
            DELETE FROM schema_migrations WHERE version = 5;
            """)
        store = try StoreTests.makeStore(url)
        defer { store.shutdown() }
        #expect(try await store.transaction(id: "fund-p").caller == "")
        let refused = try #require(throws: PostgresError.self) {
            _ = try connection.execute(
                """
                INSERT INTO transactions (transaction_id, kind, status, wallet_id, asset, amount, created_at,
                    request_hash, entry_wallets, entry_sequences)
                VALUES ('old-build', 'CREDIT', 'POSTED', 'p', 'USD', 1, 0, '\\x00', '{}', '{}')
                """)
        }
        #expect(refused.sqlState == "23502")  // not_null_violation
        let credit = try await store.execute(
            Self.sent(try StoreTests.credit("c1", "p", 5), by: Self.game), deadline: nil)
        #expect(credit.transaction.caller == Self.game)
        #expect(try await store.transaction(id: "c1").caller == Self.game)
        try StoreTests.expectClean(url)
    }
}
