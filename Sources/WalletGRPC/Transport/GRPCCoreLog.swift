import CGRPCShim
import Synchronization

/// gRPC core's own log lines (its errors, by default), handed to the
/// application instead of going to standard error as plain text.
package enum GRPCCoreLog {
    package enum Severity: Sendable {
        case debug, info, error
    }

    package typealias Sink = @Sendable (_ severity: Severity, _ file: String, _ line: Int, _ message: String) -> Void

    private static let sink = Mutex<Sink?>(nil)

    /// From now on every line gRPC core logs goes to `sink`. Call before the
    /// first server or channel; once per process.
    package static func redirect(to sink: @escaping Sink) {
        Self.sink.withLock { $0 = sink }
        wgrpc_set_log_sink { severity, file, line, message in
            guard let sink = GRPCCoreLog.sink.withLock({ $0 }) else { return }
            let level: Severity =
                switch Int(severity) {
                case WGRPC_LOG_DEBUG: .debug
                case WGRPC_LOG_INFO: .info
                default: .error
                }
            sink(
                level, file.map { String(cString: $0) } ?? "", Int(line), message.map { String(cString: $0) } ?? "")
        }
    }
}
