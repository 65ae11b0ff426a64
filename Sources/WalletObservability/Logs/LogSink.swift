import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where finished log lines go.
package protocol LogSink: Sendable {
    /// One whole line, newline included.
    func write(_ line: [UInt8])
}

/// A file descriptor (standard error by default). Each line goes out whole
/// under a lock, so lines from different threads never interleave.
package final class FileDescriptorSink: LogSink {
    package static let standardError = FileDescriptorSink(fileDescriptor: 2)

    private let fileDescriptor: Int32
    private let lock = Mutex(())

    package init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
    }

    package func write(_ line: [UInt8]) {
        lock.withLock { _ in
            line.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = writeBytes(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return  // nowhere left to say it
                    }
                    offset += written
                }
            }
        }
    }
}

/// write(2), named apart from `LogSink.write`.
private func writeBytes(_ fileDescriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(fileDescriptor, bytes, count)
}
