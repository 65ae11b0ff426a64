/// A failure reported by libpq or by the server.
///
/// The description names the target only by host, port, database and user:
/// a connection string can carry a password, so it never appears here.
package struct PostgresError: Error, CustomStringConvertible, Sendable {
    package enum Kind: Sendable, Equatable {
        /// Could not connect, or the connection broke under a statement.
        case connection
        /// libpq cannot parse the connection string: connecting again will
        /// not help. The message says why without quoting the string.
        case invalidConnectionString
        /// The server rejected a statement; `sqlState` says why.
        case server
        /// libpq handed back something this wrapper does not handle
        /// (COPY, a pipeline in a bad state, an empty result).
        case unexpectedResult
        /// The caller passed a value libpq cannot carry (for example a NUL
        /// byte in a text parameter, which libpq would silently truncate).
        case invalidParameter
    }

    package let kind: Kind
    /// Five-character SQLSTATE from the server (`PG_DIAG_SQLSTATE`), when it sent one.
    package let sqlState: String?
    package let message: String
    package let detail: String?
    /// Name of the violated constraint, so a caller can tell one unique index from another.
    package let constraint: String?
    /// "host=… port=… dbname=… user=…": never the password or the raw connection string.
    package let target: String?

    package init(
        kind: Kind,
        sqlState: String? = nil,
        message: String,
        detail: String? = nil,
        constraint: String? = nil,
        target: String? = nil
    ) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.constraint = constraint
        self.target = target
    }

    /// The connection is gone (or never came up): the statement's effect is unknown
    /// unless it ran outside a transaction that had not yet committed.
    package var isConnectionFailure: Bool {
        if kind == .connection { return true }
        guard let sqlState else { return false }
        // Class 08: connection exception. 57P01..57P03: admin shutdown, crash
        // shutdown, cannot connect now — the server is going away or not ready.
        return sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(sqlState)
    }

    /// Running the whole transaction again may succeed.
    ///
    /// A connection failure during COMMIT leaves the outcome unknown, so a retry
    /// is only safe when the work is idempotent (the ledger's idempotency keys).
    package var isRetryable: Bool {
        if isConnectionFailure { return true }
        switch sqlState {
        case "40001",  // serialization_failure
            "40P01",  // deadlock_detected
            "55P03":  // lock_not_available
            return true
        default:
            return false
        }
    }

    package var isUniqueViolation: Bool { sqlState == "23505" }

    package var description: String {
        var text = "PostgresError(\(kind)"
        if let sqlState { text += " \(sqlState)" }
        text += "): \(message)"
        if let detail { text += " — \(detail)" }
        if let constraint { text += " [constraint \(constraint)]" }
        if let target { text += " [\(target)]" }
        return text
    }

    /// Only host, port, dbname and user of a libpq connection string (URL or
    /// key=value form); the password and every other option are dropped.
    package static func redacted(url: String) -> String {
        ConnectionString.redacted(url)
    }
}
