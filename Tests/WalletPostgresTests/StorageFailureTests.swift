import Foundation
import Synchronization
import Testing
import WalletDomain
import WalletTestSupport

@testable import WalletPostgres

/// Every SQLSTATE class the store can meet, what it means (`FailureClass`)
/// and what the caller is told: UNAVAILABLE (retryable, nothing recorded)
/// unless the database refused the work itself (INTERNAL).
@Suite struct FailureClassTests {
    /// One code per class of Postgres's appendix A, plus every code that
    /// differs from its class.
    static let table: [(sqlState: String, failureClass: FailureClass)] = [
        ("03000", .permanent), ("08000", .connectionLost), ("08003", .connectionLost), ("08006", .connectionLost),
        ("08001", .connectionLost), ("08P01", .connectionLost), ("09000", .permanent), ("0A000", .permanent),
        ("0B000", .permanent), ("0F000", .permanent), ("0L000", .permanent), ("0P000", .permanent),
        ("0Z000", .permanent), ("20000", .permanent), ("21000", .permanent), ("22012", .permanent),
        ("22003", .permanent), ("23505", .permanent), ("23503", .permanent), ("24000", .permanent),
        ("25001", .permanent), ("25P02", .permanent), ("25006", .unavailable), ("25P03", .connectionLost),
        ("26000", .permanent), ("27000", .permanent), ("28000", .unavailable), ("28P01", .unavailable),
        ("2B000", .permanent), ("2D000", .permanent), ("2F000", .permanent), ("34000", .permanent),
        ("38000", .permanent), ("39000", .permanent), ("3B000", .permanent), ("3D000", .unavailable),
        ("3F000", .permanent), ("40000", .conflict), ("40001", .conflict), ("40P01", .conflict),
        ("40002", .permanent), ("40003", .connectionLost), ("42000", .permanent), ("42501", .permanent),
        ("42P01", .permanent), ("44000", .permanent), ("53000", .unavailable), ("53100", .unavailable),
        ("53200", .unavailable), ("53300", .unavailable), ("53400", .unavailable), ("54000", .permanent),
        ("55000", .permanent), ("55006", .unavailable), ("55P03", .conflict), ("57000", .unavailable),
        ("57014", .unavailable), ("57P01", .connectionLost), ("57P02", .connectionLost),
        ("57P03", .connectionLost), ("57P04", .connectionLost), ("57P05", .connectionLost),
        ("58000", .unavailable), ("58030", .unavailable), ("72000", .unavailable), ("F0000", .unavailable),
        ("HV000", .permanent), ("P0001", .permanent), ("XX000", .permanent), ("XX001", .permanent),
    ]

    @Test(arguments: table)
    func classifiesEverySQLStateClass(sqlState: String, failureClass: FailureClass) {
        let error = PostgresError(kind: .server, sqlState: sqlState, message: "x")
        #expect(error.failureClass == failureClass)
        let answer = LedgerError.storageFailure(error)
        let expected: ErrorCode = failureClass == .permanent ? .internal : .unavailable
        #expect(answer.code == expected)
        if expected == .unavailable { #expect(answer.message.contains("nothing was recorded")) }
        // Whatever the class: a commit whose outcome is unknown is never
        // "nothing was recorded".
        let unknown = LedgerError.storageFailure(error, outcomeUnknown: true)
        #expect(unknown.code == .unavailable)
        #expect(!unknown.message.contains("nothing was recorded"))
    }

    /// The table above names every class the store's table names, and the
    /// store's table names every class of the test's: a class added to one
    /// must be added to the other.
    @Test func theTestCoversEveryClassOfTheStoresTable() {
        let tested = Set(Self.table.map { String($0.sqlState.prefix(2)) })
        #expect(Set(FailureClass.byClass.keys) == tested)
        #expect(Set(FailureClass.byCode.keys).isSubset(of: Set(Self.table.map(\.sqlState))))
    }

    @Test(arguments: [
        (PostgresError.Kind.connection, FailureClass.connectionLost),
        (.unexpectedResult, .connectionLost),
        (.invalidConnectionString, .permanent),
        (.invalidParameter, .permanent),
        (.server, .permanent),  // a server error without a SQLSTATE
    ])
    func classifiesFailuresWithoutASQLState(kind: PostgresError.Kind, failureClass: FailureClass) {
        #expect(PostgresError(kind: kind, message: "x").failureClass == failureClass)
    }

    @Test func aReadOnlyRefusalSaysSo() {
        let answer = LedgerError.storageFailure(PostgresError(kind: .server, sqlState: "25006", message: "x"))
        #expect(answer.code == .unavailable)
        #expect(answer.message.contains("read-only"))
    }
}

/// What a worker does after a failed batch attempt.
@Suite struct BatchRecoveryTests {
    static func error(_ sqlState: String) -> PostgresError {
        PostgresError(kind: .server, sqlState: sqlState, message: "x")
    }

    enum Expected: Sendable { case retry, split, unavailable, internalError, unavailableOutcomeUnknown }

    static let cases:
        [(
            sqlState: String, outcomeUnknown: Bool, possiblyCommitted: Bool, attempts: Int, size: Int,
            expected: Expected
        )] = [
            // Conflicts: again at once, then one by one, then give up retryably.
            ("40001", false, false, 1, 10, .retry),
            ("40P01", false, false, 8, 10, .retry),
            ("40001", false, false, 9, 10, .split),
            ("55P03", false, false, 9, 1, .unavailable),
            // A lost connection: again (reconnecting); an unreachable database answers at once.
            ("08006", false, false, 1, 10, .retry),
            ("57P01", false, false, 9, 10, .unavailable),
            // The database cannot take writes: the whole batch, at once, UNAVAILABLE; no split.
            ("25006", false, false, 1, 10, .unavailable),
            ("53100", false, false, 1, 10, .unavailable),
            ("53200", false, false, 1, 1, .unavailable),
            ("57014", false, false, 1, 10, .unavailable),
            // Refused for itself: one by one, so one bad command fails alone.
            ("22012", false, false, 1, 10, .split),
            ("22012", false, false, 1, 1, .internalError),
            // The COMMIT may have gone through: only again (answered as replays)
            // or "retry with the same transaction_id", never "nothing recorded".
            ("08006", true, false, 1, 10, .retry),
            ("08006", true, false, 9, 10, .unavailableOutcomeUnknown),
            ("25006", false, true, 2, 10, .unavailableOutcomeUnknown),
            ("22012", false, true, 2, 10, .unavailableOutcomeUnknown),
            ("40001", false, true, 2, 10, .retry),
        ]

    @Test(arguments: cases)
    func decides(
        sqlState: String, outcomeUnknown: Bool, possiblyCommitted: Bool, attempts: Int, size: Int, expected: Expected
    ) {
        let recovery = BatchRecovery.after(
            Self.error(sqlState), outcomeUnknown: outcomeUnknown, possiblyCommitted: possiblyCommitted,
            attempts: attempts, batchSize: size)
        switch (recovery, expected) {
        case (.retry, .retry), (.split, .split): break
        case (.fail(let error), .unavailable):
            #expect(error.code == .unavailable && error.message.contains("nothing was recorded"), "\(error)")
        case (.fail(let error), .unavailableOutcomeUnknown):
            #expect(error.code == .unavailable && error.message.contains("same transaction_id"), "\(error)")
        case (.fail(let error), .internalError):
            #expect(error.code == .internal, "\(error)")
        default:
            Issue.record("\(sqlState): \(recovery), expected \(expected)")
        }
    }
}

/// The database refusing writes, for real: a batch is rolled back whole,
/// every command in it answered UNAVAILABLE, nothing recorded, and the same
/// transaction ids apply once the database takes writes again.
@Suite struct StorageRefusalTests {
    static let batchCommands = 40

    /// Runs every SQL statement on a session of its own.
    static func sql(_ url: String, _ statements: String...) throws {
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        for statement in statements { try connection.executeScript(statement) }
    }

    /// A database's name, and the URL of the server's maintenance database,
    /// from where ALTER DATABASE may change it (not from inside: a session
    /// of a read-only database cannot, and no one may refuse connections to
    /// the database they are in).
    static func administration(_ url: String) throws -> (database: String, maintenance: String) {
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        let name = try #require(try connection.execute("SELECT current_database()").string(row: 0, column: 0))
        let maintenance = try #require(ConnectionString.replacingDatabase(in: url, with: "postgres"))
        return (name, maintenance)
    }

    /// ALTER DATABASE `change`, then ends every session of it (the store's
    /// workers and probe), so that their next statement opens a new one.
    static func alter(_ administration: (database: String, maintenance: String), _ change: String) throws {
        let (name, maintenance) = administration
        try sql(
            maintenance, "ALTER DATABASE \(LocalPostgres.quotedIdentifier(name)) \(change)",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)'")
    }

    /// Sends `batchCommands` credits at once to one lane; returns the answers by id.
    static func credits(_ store: PostgresLedgerStore, prefix: String) async throws
        -> [String: Result<OperationResult, LedgerError>]
    {
        try await withThrowingTaskGroup(of: (String, Result<OperationResult, LedgerError>).self) { group in
            for index in 0..<batchCommands {
                let id = "\(prefix)-\(index)"
                let command = try StoreTests.credit(id, "saver", 5)
                group.addTask {
                    do throws(LedgerError) {
                        return (id, .success(try await store.execute(command, deadline: nil)))
                    } catch {
                        return (id, .failure(error))
                    }
                }
            }
            var answers: [String: Result<OperationResult, LedgerError>] = [:]
            for try await (id, answer) in group { answers[id] = answer }
            return answers
        }
    }

    static func recorded(_ url: String, prefix: String) throws -> Int64 {
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        return try connection.execute(
            "SELECT count(*) FROM transactions WHERE transaction_id LIKE $1", [prefix + "-%"]
        ).int64(row: 0, column: 0) ?? -1
    }

    /// Every answer UNAVAILABLE "nothing was recorded", none recorded; then,
    /// once `restore` ran, the same ids apply fresh (not as replays).
    static func expectRefusedThenApplied(
        _ store: PostgresLedgerStore, url: String, prefix: String, restore: @escaping @Sendable () throws -> Void
    ) async throws {
        let refused = try await credits(store, prefix: prefix)
        #expect(refused.count == batchCommands)
        for (id, answer) in refused {
            guard case .failure(let error) = answer else {
                Issue.record("\(id) was applied while the database refused writes")
                continue
            }
            #expect(error.code == .unavailable, "\(id): \(error)")
            #expect(error.message.contains("nothing was recorded"), "\(id): \(error)")
        }
        #expect(try await onOwnThread { try recorded(url, prefix: prefix) } == 0)
        try await onOwnThread(restore)
        let applied = try await credits(store, prefix: prefix)
        for (id, answer) in applied {
            guard case .success(let outcome) = answer else {
                Issue.record("\(id) after the database took writes again: \(answer)")
                continue
            }
            #expect(!outcome.replayed, "\(id) was recorded while refused")
        }
        #expect(try await onOwnThread { try recorded(url, prefix: prefix) } == Int64(batchCommands))
        try await onOwnThread { try StoreTests.expectClean(url) }
    }

    @Test func aReadOnlyDatabaseAnswersUnavailableAndRecordsNothing() async throws {
        let url = try TestDatabase.url()
        let store = try StoreTests.makeStore(url, pool: 1)
        defer { store.shutdown() }
        try await StoreTests.seed(store, wallets: ["saver"], funds: 100)
        let administration = try await onOwnThread { try Self.administration(url) }
        try await onOwnThread { try Self.alter(administration, "SET default_transaction_read_only = on") }
        try await Self.expectRefusedThenApplied(store, url: url, prefix: "ro") {
            #expect(store.databaseStatus == .readOnly)
            try Self.alter(administration, "RESET default_transaction_read_only")
        }
        #expect(await waitUntil { store.databaseStatus == .available })
    }

    /// A full disk (53100), raised for real by the server from a trigger on
    /// entries: the batch's transaction rows, written before its entries in
    /// the same database transaction, are rolled back with them.
    @Test func aFullDiskAnswersUnavailableAndRollsTheBatchBackWhole() async throws {
        let url = try TestDatabase.url()
        let store = try StoreTests.makeStore(url, pool: 1)
        defer { store.shutdown() }
        try await StoreTests.seed(store, wallets: ["saver"], funds: 100)
        try await onOwnThread {
            try Self.sql(
                url,
                """
                CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$
                """,
                "CREATE TRIGGER test_disk_full BEFORE INSERT ON entries FOR EACH STATEMENT EXECUTE FUNCTION test_disk_full()"
            )
        }
        try await Self.expectRefusedThenApplied(store, url: url, prefix: "full") {
            try Self.sql(url, "DROP TRIGGER test_disk_full ON entries")
        }
    }

    /// The store notices a database it cannot reach, and notices it back,
    /// by itself (the probe; no calls are made meanwhile).
    @Test func theStoreNoticesTheDatabaseGoneAndBack() async throws {
        let url = try TestDatabase.url()
        var configuration = StoreConfiguration(databaseURL: url, poolSize: 1)
        configuration.databaseProbeIntervalMilliseconds = 100
        let store = try PostgresLedgerStore(configuration: configuration)
        defer { store.shutdown() }
        let seen = Mutex<[DatabaseStatus]>([])
        store.observeDatabaseStatus { status in seen.withLock { $0.append(status) } }
        let administration = try await onOwnThread { try Self.administration(url) }
        try await onOwnThread { try Self.alter(administration, "ALLOW_CONNECTIONS false") }
        #expect(await waitUntil { store.databaseStatus == .unreachable })
        try await onOwnThread { try Self.alter(administration, "ALLOW_CONNECTIONS true") }
        #expect(await waitUntil { store.databaseStatus == .available })
        #expect(seen.withLock { $0 } == [.available, .unreachable, .available])
    }
}
