import Logging
import WalletGRPC
import WalletObservability

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
    /// gRPC core's own lines (its errors: a refused TLS handshake, a port in
    /// use), which it would otherwise print to standard error as plain text.
    /// Repeats are summarized per minute: on a TLS port the listener probe's
    /// plain bytes make gRPC core log a failed handshake at every probe.
    static let grpcCore = RepeatedMessageLog(
        logger: Logger(label: "grpc-core"), level: .error, summaryInterval: grpcCoreSummaryInterval)
    static let grpcCoreSummaryInterval: Duration = .seconds(60)

    /// Sends gRPC core's lines through `grpcCore`; before the first server.
    static func redirectGRPCCore() {
        GRPCCoreLog.redirect { severity, file, line, message in
            let level: Logger.Level =
                switch severity {
                case .debug: .debug
                case .info: .info
                case .error: .error
                }
            grpcCore.log(message, level: level, metadata: ["source_file": "\(file):\(line)"])
        }
    }
}
