import Foundation
import Synchronization
import WalletPostgres

#if canImport(Glibc)
    import Glibc
#endif

/// Hands each test a fresh, empty database so tests can run in parallel
/// without seeing each other's rows or schema_migrations.
///
/// With DATABASE_URL set, the databases are created on that server (its role
/// needs CREATEDB). Otherwise a local cluster under /tmp/wallet-test-pg-<uid>
/// on port 55432 is started once per process and left running for the next
/// run. Failing to start it fails the test: these tests never skip.
enum TestDatabase {
    static let port = 55_432
    static var dataDirectory: String { "/tmp/wallet-test-pg-\(getuid())" }

    /// URL of the server's maintenance database, set once per process.
    private static let serverURL = Mutex<String?>(nil)
    private static let databaseCounter = Atomic<Int>(0)

    /// A URL (key=value form) for a new empty database.
    static func url() throws -> String {
        let server = try serverConnectionURL()
        let number = databaseCounter.add(1, ordering: .relaxed).newValue
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let name = "wallet_test_\(getpid())_\(number)_\(suffix)"
        let connection = try PostgresConnection(url: server)
        try connection.executeScript("CREATE DATABASE \(LocalPostgres.quotedIdentifier(name))")
        guard let url = ConnectionString.replacingDatabase(in: server, with: name) else {
            throw TestDatabaseError(description: "cannot rewrite the server URL for database \(name)")
        }
        return url
    }

    private static func serverConnectionURL() throws -> String {
        try serverURL.withLock { cached throws -> String in
            if let cached { return cached }
            let url: String
            if let environment = ProcessInfo.processInfo.environment["DATABASE_URL"], !environment.isEmpty {
                url = environment
            } else {
                url = try LocalPostgres.start(dataDirectory: dataDirectory, port: port, databaseName: "postgres")
                try dropDatabasesOfFinishedRuns(url)
            }
            cached = url
            return url
        }
    }

    /// Databases are left behind when a run ends; the next run in the local
    /// cluster drops those whose process is gone, so the directory stays small.
    private static func dropDatabasesOfFinishedRuns(_ serverURL: String) throws {
        let connection = try PostgresConnection(url: serverURL)
        let rows = try connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'wallet\\_test\\_%'"
        )
        for row in 0..<rows.rowCount {
            guard let name = rows.string(row: row, column: 0) else { continue }
            let parts = name.split(separator: "_")
            guard parts.count >= 3, let pid = Int32(parts[2]) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                _ = try? connection.executeScript(
                    "DROP DATABASE IF EXISTS \(LocalPostgres.quotedIdentifier(name)) WITH (FORCE)"
                )
            }
        }
    }
}

struct TestDatabaseError: Error, CustomStringConvertible {
    let description: String
}
