import Foundation
import Synchronization
import WalletObservability

/// A log sink that keeps every line, for tests to read back as JSON.
final class CapturedLines: LogSink {
    private let lines = Mutex<[[UInt8]]>([])

    func write(_ line: [UInt8]) {
        lines.withLock { $0.append(line) }
    }

    var texts: [String] { lines.withLock { $0.map { String(decoding: $0, as: UTF8.self) } } }

    /// Each line parsed as a JSON object (a line that is not one fails the
    /// test that reads it).
    var objects: [[String: Any]] {
        get throws {
            try lines.withLock { $0 }.map { line in
                guard line.last == UInt8(ascii: "\n"), line.dropLast().allSatisfy({ $0 != UInt8(ascii: "\n") }) else {
                    throw NotOneLine(text: String(decoding: line, as: UTF8.self))
                }
                guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw NotOneLine(text: String(decoding: line, as: UTF8.self))
                }
                return object
            }
        }
    }

    struct NotOneLine: Error {
        var text: String
    }
}
