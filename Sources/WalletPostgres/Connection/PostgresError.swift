import WalletDomain

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

    /// What this failure means for the work that met it (see `FailureClass`).
    package var failureClass: FailureClass {
        switch kind {
        case .connection, .unexpectedResult:
            // unexpectedResult: libpq's protocol state is unknown and the
            // connection is closed; treated like a broken connection.
            return .connectionLost
        case .invalidConnectionString, .invalidParameter:
            return .permanent
        case .server:
            guard let sqlState else { return .permanent }
            return FailureClass.of(sqlState: sqlState)
        }
    }

    /// The connection is gone (or never came up): the statement's effect is unknown
    /// unless it ran outside a transaction that had not yet committed.
    package var isConnectionFailure: Bool { failureClass == .connectionLost }

    /// Running the whole transaction again, now or later, may succeed.
    ///
    /// A connection failure during COMMIT leaves the outcome unknown, so a retry
    /// is only safe when the work is idempotent (the ledger's idempotency keys).
    package var isRetryable: Bool { failureClass != .permanent }

    /// The server refused a write because it is read-only (a standby, a
    /// demoted primary, `default_transaction_read_only`): a session opened
    /// again may find the read-write server of a multi-host URL.
    package var isReadOnly: Bool { sqlState == "25006" }

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

/// What a database failure means for the work that met it. Every SQLSTATE
/// class the store can meet is in `of(sqlState:)`, the one table the store
/// decides by (retry, split a batch, answer UNAVAILABLE or INTERNAL), and
/// `LedgerError.storageFailure` is the one place a class becomes an answer.
/// docs/operations.md lists the table for operators.
package enum FailureClass: String, Sendable, Equatable, CaseIterable {
    /// Another transaction got in the way (serialization failure, deadlock,
    /// lock not available): the same work, run again at once, may succeed.
    case conflict
    /// The session is gone or never came up (network, restart, shutdown,
    /// terminated backend): reconnect and run again. Around COMMIT the
    /// outcome is unknown.
    case connectionLost
    /// The database is there but cannot take the work now (read-only, disk
    /// full, out of memory or connections, query canceled, an I/O error, the
    /// database or role missing): nothing was recorded, and the caller may
    /// retry later. Answered UNAVAILABLE, never INTERNAL: a game service
    /// treats INTERNAL as final.
    case unavailable
    /// The database refuses the statement itself (a bug, a schema out of
    /// step with the binary, corrupt data, a constraint): the same work will
    /// fail again. Answered INTERNAL.
    case permanent

    /// Codes that differ from their class's rule.
    static let byCode: [String: FailureClass] = [
        "25006": .unavailable,  // read_only_sql_transaction: a standby or a read-only primary
        "25P03": .connectionLost,  // idle_in_transaction_session_timeout: the server closed the session
        "40002": .permanent,  // transaction_integrity_constraint_violation (deferred constraint at COMMIT)
        "40003": .connectionLost,  // statement_completion_unknown: the outcome is unknown
        "55P03": .conflict,  // lock_not_available
        "55006": .unavailable,  // object_in_use (e.g. the database being dropped or restored)
        "57P01": .connectionLost,  // admin_shutdown
        "57P02": .connectionLost,  // crash_shutdown
        "57P03": .connectionLost,  // cannot_connect_now (starting up, shutting down, in recovery)
        "57P04": .connectionLost,  // database_dropped
        "57P05": .connectionLost,  // idle_session_timeout
    ]

    /// Every SQLSTATE class (the first two characters) and what it means
    /// here; a class not listed is `permanent`.
    static let byClass: [String: FailureClass] = [
        "08": .connectionLost,  // connection_exception
        "28": .unavailable,  // invalid_authorization_specification (a rotated password, a dropped role)
        "3D": .unavailable,  // invalid_catalog_name (the database is missing: a restore under way?)
        "40": .conflict,  // transaction_rollback: serialization_failure, deadlock_detected
        "53": .unavailable,  // insufficient_resources: disk_full, out_of_memory, too_many_connections
        "57": .unavailable,  // operator_intervention: query_canceled (statement_timeout, pg_cancel_backend)
        "58": .unavailable,  // system_error: io_error, undefined_file (outside Postgres)
        "72": .unavailable,  // snapshot_too_old
        "F0": .unavailable,  // config_file_error
        // Permanent, listed so that the table names every class:
        "03": .permanent,  // sql_statement_not_yet_complete
        "09": .permanent,  // triggered_action_exception
        "0A": .permanent,  // feature_not_supported
        "0B": .permanent,  // invalid_transaction_initiation
        "0F": .permanent,  // locator_exception
        "0L": .permanent,  // invalid_grantor
        "0P": .permanent,  // invalid_role_specification
        "0Z": .permanent,  // diagnostics_exception
        "20": .permanent,  // case_not_found
        "21": .permanent,  // cardinality_violation
        "22": .permanent,  // data_exception (the balance row count check divides by zero)
        "23": .permanent,  // integrity_constraint_violation (a duplicate transaction id is retried by the executor)
        "24": .permanent,  // invalid_cursor_state
        "25": .permanent,  // invalid_transaction_state (25006 and 25P03 excepted above)
        "26": .permanent,  // invalid_sql_statement_name
        "27": .permanent,  // triggered_data_change_violation
        "2B": .permanent,  // dependent_privilege_descriptors_still_exist
        "2D": .permanent,  // invalid_transaction_termination
        "2F": .permanent,  // sql_routine_exception
        "34": .permanent,  // invalid_cursor_name
        "38": .permanent,  // external_routine_exception
        "39": .permanent,  // external_routine_invocation_exception
        "3B": .permanent,  // savepoint_exception
        "3F": .permanent,  // invalid_schema_name
        "42": .permanent,  // syntax_error_or_access_rule_violation (a schema out of step, a revoked grant)
        "44": .permanent,  // with_check_option_violation
        "54": .permanent,  // program_limit_exceeded (the same statement would exceed it again)
        "55": .permanent,  // object_not_in_prerequisite_state (55P03, 55006 excepted above)
        "HV": .permanent,  // fdw_error
        "P0": .permanent,  // plpgsql_error (the append-only triggers raise here)
        "XX": .permanent,  // internal_error, data_corrupted, index_corrupted
    ]

    package static func of(sqlState: String) -> FailureClass {
        if let exception = byCode[sqlState] { return exception }
        return byClass[String(sqlState.prefix(2))] ?? .permanent
    }
}

extension LedgerError {
    /// What a caller is told when storage failed: the one mapping from a
    /// database failure to an answer. UNAVAILABLE (retryable) unless the
    /// database refused the work itself; INTERNAL "storage error" then. The
    /// details go to the log, never to the caller. `outcomeUnknown`: the
    /// connection went away while a COMMIT was on its way, so the work may
    /// have been recorded; the caller must retry with the same
    /// transaction_id (which then answers as a replay), and is not told
    /// "nothing was recorded".
    package static func storageFailure(_ error: any Error, outcomeUnknown: Bool = false) -> LedgerError {
        if outcomeUnknown {
            return .unavailable("the database went away during commit; retry with the same transaction_id")
        }
        if let error = error as? LedgerError { return error }
        guard let error = error as? PostgresError else {
            return .internalError("storage error; nothing was recorded")
        }
        switch error.failureClass {
        case .conflict:
            return .unavailable("contention: retry later; nothing was recorded")
        case .connectionLost:
            return .unavailable("the database is unreachable; nothing was recorded")
        case .unavailable:
            return .unavailable(
                error.isReadOnly
                    ? "the database is read-only; nothing was recorded"
                    : "the database cannot take writes now; nothing was recorded")
        case .permanent:
            return .internalError("storage error; nothing was recorded")
        }
    }
}
