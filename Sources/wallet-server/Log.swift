import Logging
import WalletGRPC

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
    static let grpcCore = Logger(label: "grpc-core")

    /// Sends gRPC core's lines through `grpcCore`; before the first server.
    static func redirectGRPCCore() {
        GRPCCoreLog.redirect { severity, file, line, message in
            let metadata: Logger.Metadata = ["source_file": "\(file):\(line)"]
            switch severity {
            case .debug: grpcCore.debug("\(message)", metadata: metadata)
            case .info: grpcCore.info("\(message)", metadata: metadata)
            case .error: grpcCore.error("\(message)", metadata: metadata)
            }
        }
    }
}
