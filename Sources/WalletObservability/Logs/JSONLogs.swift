import Logging

/// The process's logging: every `Logger` writes JSON lines to standard
/// error at `level` and above.
package enum JSONLogs {
    /// Once per process, before the first line (swift-log's rule).
    package static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in JSONLinesLogHandler(label: label, level: level) }
    }
}
