import Logging

/// The server's loggers (JSON lines on standard error once
/// `JSONLogs.bootstrap` ran; main does that first). Callers pass redacted
/// text: a connection string is never logged whole, a password never.
enum Log {
    /// Start, stop, reloads, the listener probe, configuration notes.
    static let server = Logger(label: "wallet-server")
    /// The store's messages (database unreachable, slow or failed batches).
    static let store = Logger(label: "wallet-store")
    /// One line per failed call (and per call at debug).
    static let calls = Logger(label: "wallet-calls")
}
