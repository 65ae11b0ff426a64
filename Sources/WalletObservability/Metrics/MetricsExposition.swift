import Prometheus

/// The text `GET /metrics` answers: the registry's series, each family with
/// its `# HELP` line (swift-metrics has no place for one, so it is added
/// here from `WalletSeries.help`), then the process's own.
package enum MetricsExposition {
    package static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    package static func render(
        _ registry: PrometheusCollectorRegistry, help: [String: String] = WalletSeries.help,
        process: ProcessMetrics? = ProcessMetrics.sample()
    ) -> [UInt8] {
        var emitted: [UInt8] = []
        registry.emit(into: &emitted)
        var text = withHelp(emitted, help: help)
        if let process { text.append(contentsOf: process.exposition.utf8) }
        return text
    }

    /// `text` with `# HELP name …` before each `# TYPE name …` line that has
    /// no HELP line yet and whose name `help` describes.
    static func withHelp(_ text: [UInt8], help: [String: String]) -> [UInt8] {
        let typePrefix = Array("# TYPE ".utf8)
        let helpPrefix = Array("# HELP ".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.count + help.count * 100)
        var previousWasHelp = false
        for line in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if line.starts(with: typePrefix), !previousWasHelp {
                let name = line.dropFirst(typePrefix.count).prefix { $0 != UInt8(ascii: " ") }
                if let description = help[String(decoding: name, as: UTF8.self)] {
                    out.append(contentsOf: helpPrefix)
                    out.append(contentsOf: name)
                    out.append(UInt8(ascii: " "))
                    out.append(contentsOf: escapedHelp(description).utf8)
                    out.append(UInt8(ascii: "\n"))
                }
            }
            previousWasHelp = line.starts(with: helpPrefix)
            out.append(contentsOf: line)
            out.append(UInt8(ascii: "\n"))
        }
        // split kept the text's final newline as an empty last line.
        if out.last == UInt8(ascii: "\n"), text.last == UInt8(ascii: "\n") || text.isEmpty { out.removeLast() }
        return out
    }

    /// HELP text escapes backslash and newline.
    static func escapedHelp(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
