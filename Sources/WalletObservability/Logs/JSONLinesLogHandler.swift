import Logging

/// swift-log's records as JSON lines: `time`, `level`, `message`, then the
/// record's metadata (the logger's, overridden by the call's), keys sorted,
/// and `logger` (the logger's label). Metadata keys equal to one of the three
/// fixed ones are dropped rather than written twice.
package struct JSONLinesLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?
    package var logLevel: Logger.Level
    private let label: String
    private let sink: any LogSink
    private let clock: @Sendable () -> LogTimestamp

    package init(
        label: String, level: Logger.Level, sink: any LogSink = FileDescriptorSink.standardError,
        clock: @escaping @Sendable () -> LogTimestamp = LogTimestamp.now
    ) {
        self.label = label
        self.logLevel = level
        self.sink = sink
        self.clock = clock
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        sink.write(line(event))
    }

    /// The line `event` becomes (tests read it).
    func line(_ event: LogEvent) -> [UInt8] {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let own = event.metadata { fields.merge(own) { _, new in new } }
        if let error = event.error { fields["error"] = .string("\(error)") }
        fields["logger"] = .string(label)
        var line = JSONLine()
        line.field("time", clock().text)
        line.field("level", event.level.rawValue)
        line.field("message", event.message.description)
        for key in fields.keys.sorted() where !Self.fixedKeys.contains(key) {
            line.field(key, fields[key]!)
        }
        return line.finish()
    }

    private static let fixedKeys: Set<String> = ["time", "level", "message"]
}
