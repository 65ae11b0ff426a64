/// One numbered, forward-only schema change. `sql` may hold several
/// statements; it runs inside a transaction, so it must not contain its own
/// BEGIN/COMMIT or statements that refuse transactions (CREATE INDEX CONCURRENTLY).
package struct Migration: Sendable {
    package let version: Int
    package let name: String
    package let sql: String

    package init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// Why the migrator refused to touch the database.
package enum MigrationError: Error, CustomStringConvertible {
    /// The database was migrated by newer code (or code with migrations this
    /// build does not have); running against it could corrupt data.
    case unknownAppliedVersions([Int], knownMax: Int)
    /// A migration's SQL failed; its transaction was rolled back, and the
    /// migrations before it stay applied.
    case migrationFailed(version: Int, name: String, underlying: PostgresError)

    package var description: String {
        switch self {
        case .unknownAppliedVersions(let versions, let knownMax):
            "database has schema migrations \(versions) that this build does not know "
                + "(it knows up to \(knownMax)); refusing to run against a newer schema"
        case .migrationFailed(let version, let name, let underlying):
            "migration \(version) (\(name)) failed: \(underlying)"
        }
    }
}

/// Brings a database's schema up to date, one migration per transaction.
package enum Migrator {
    /// Session advisory lock key, so that two servers starting at once apply
    /// each migration exactly once. ASCII "walletmg".
    package static let advisoryLockKey: Int64 = 0x7761_6C6C_6574_6D67

    /// Applies the migrations the database lacks, in version order, and
    /// returns the versions it applied (empty when already current).
    @discardableResult
    package static func apply(_ migrations: [Migration], on connection: PostgresConnection) throws -> [Int] {
        let ordered = migrations.sorted { $0.version < $1.version }
        for (earlier, later) in zip(ordered, ordered.dropFirst()) {
            precondition(earlier.version != later.version, "two migrations numbered \(later.version)")
        }
        precondition(ordered.allSatisfy { $0.version > 0 }, "migration versions start at 1")
        precondition(!connection.isInTransaction, "migrations run outside any transaction")

        // Blocks until any other migrator on the same database finishes.
        try connection.execute("SELECT pg_advisory_lock($1)", [String(advisoryLockKey)])
        defer {
            // If the connection died the server has released the lock already.
            _ = try? connection.execute("SELECT pg_advisory_unlock($1)", [String(advisoryLockKey)])
        }

        try connection.executeScript(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    int PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        let rows = try connection.execute("SELECT version FROM schema_migrations ORDER BY version")
        var applied = Set<Int>()
        for row in 0..<rows.rowCount {
            guard let version = rows.int64(row: row, column: "version") else { continue }
            applied.insert(Int(version))
        }

        let known = Set(ordered.map(\.version))
        let unknown = applied.subtracting(known).sorted()
        guard unknown.isEmpty else {
            throw MigrationError.unknownAppliedVersions(unknown, knownMax: ordered.last?.version ?? 0)
        }

        var newlyApplied: [Int] = []
        for migration in ordered where !applied.contains(migration.version) {
            do {
                try connection.transaction {
                    try connection.executeScript(migration.sql)
                    try connection.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())",
                        [String(migration.version), migration.name]
                    )
                }
            } catch let error as PostgresError where !error.isConnectionFailure {
                // Connection failures stay PostgresErrors so callers can retry them.
                throw MigrationError.migrationFailed(
                    version: migration.version, name: migration.name, underlying: error)
            }
            newlyApplied.append(migration.version)
        }
        return newlyApplied
    }
}
