import Foundation

/// One line per event on standard error, with a UTC timestamp. Callers pass
/// redacted text: a connection string is never logged whole.
enum Log {
    private static let lock = NSLock()

    static func info(_ message: String) {
        let line = "\(Date().formatted(.iso8601)) wallet-server \(message)\n"
        lock.lock()
        FileHandle.standardError.write(Data(line.utf8))
        lock.unlock()
    }
}
