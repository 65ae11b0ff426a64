import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A tiny HTTP/1.1 server for `GET /metrics`, on a thread of its own (no
/// NIO, nothing on the cooperative pool or the transport's threads). It
/// serves one connection at a time, each within `requestTimeMax` and
/// `requestBytesMax` for its request head, answers and closes: a scraper
/// every few seconds needs no more, and a client that stalls or floods it
/// holds it up for two seconds at most. It shares nothing with the gRPC
/// path but the metrics' own short locks, which a scrape takes one at a
/// time while it copies each value.
package final class MetricsEndpoint: Sendable {
    /// A request head larger than this is answered 431 and closed.
    package static let requestBytesMax = 8_192
    /// Reading a request and writing its answer must fit in this; a client
    /// slower than that is cut off.
    package static let requestTimeMax: Duration = .seconds(2)
    /// What a 408 may take once `requestTimeMax` has run out.
    static let refusalTimeMax: Duration = .milliseconds(100)
    /// Connections the kernel holds while one is served.
    static let backlogMax: Int32 = 16

    package struct StartError: Error, CustomStringConvertible {
        package var description: String
    }

    /// The port it listens on (the one the kernel chose for port 0).
    package let port: Int
    package let address: ListenAddress
    private let listener: Int32
    /// Written to by `stop` to wake the loop out of poll.
    private let wake: (read: Int32, write: Int32)
    private let body: @Sendable () -> [UInt8]
    private let done = DispatchSemaphore(value: 0)
    private let state = Mutex<(started: Bool, stopped: Bool)>((false, false))

    /// Binds and listens (so a port in use fails the server's start);
    /// serves nothing until `start`. `body` makes the text of each answer.
    package init(address: ListenAddress, body: @escaping @Sendable () -> [UInt8]) throws(StartError) {
        self.address = address
        self.body = body
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let socketType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let listener = socket(family, socketType, 0)
        guard listener >= 0 else { throw StartError(description: "socket: \(Self.lastError())") }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var bound: Int32
        if address.isIPv6 {
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = in_port_t(UInt16(address.port).bigEndian)
            inet_pton(AF_INET6, address.host, &socketAddress.sin6_addr)
            bound = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = in_port_t(UInt16(address.port).bigEndian)
            inet_pton(AF_INET, address.host, &socketAddress.sin_addr)
            bound = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard bound == 0, listen(listener, Self.backlogMax) == 0 else {
            let error = Self.lastError()
            close(listener)
            throw StartError(description: "cannot listen on \(address): \(error)")
        }
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else {
            let error = Self.lastError()
            close(listener)
            throw StartError(description: "pipe: \(error)")
        }
        for end in pipeEnds { Self.closeOnExec(end, nonBlocking: true) }
        self.listener = listener
        self.wake = (pipeEnds[0], pipeEnds[1])
        self.port = Self.localPort(listener) ?? address.port
    }

    deinit {
        precondition(!state.withLock { $0.started && !$0.stopped }, "MetricsEndpoint released while serving")
        if !state.withLock({ $0.started }) {
            close(listener)
            close(wake.read)
            close(wake.write)
        }
    }

    package func start() {
        state.withLock { $0.started = true }
        let thread = Thread { [self] in
            Self.nameThisThread("wallet-metrics")
            run()
            done.signal()
        }
        thread.name = "wallet-metrics"
        thread.start()
    }

    /// Stops serving (an answer being written is cut off) and closes the
    /// socket; returns once the thread has ended.
    package func stop() {
        let running = state.withLock { state in
            defer { state.stopped = true }
            return state.started && !state.stopped
        }
        guard running else { return }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        done.wait()
    }

    private func run() {
        defer {
            close(listener)
            close(wake.read)
            close(wake.write)
        }
        var descriptors = [
            pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            descriptors[0].revents = 0
            descriptors[1].revents = 0
            let ready = poll(&descriptors, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if descriptors[1].revents != 0 { return }
            guard descriptors[0].revents & Int16(POLLIN) != 0 else { continue }
            let connection = accept(listener, nil, nil)
            // EMFILE and the like: drop this one, keep serving; the pause
            // keeps a persistent error from spinning hot.
            guard connection >= 0 else {
                usleep(10_000)
                continue
            }
            // (accept4 is a GNU extension Swift's Glibc module does not show.)
            Self.closeOnExec(connection, nonBlocking: true)
            serve(connection)
            close(connection)
        }
    }

    /// Reads one request head and answers it, all before the deadline.
    private func serve(_ connection: Int32) {
        let deadline = ContinuousClock.now + Self.requestTimeMax
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        var request: MetricsRequest?
        while request == nil {
            guard wait(connection, for: Int16(POLLIN), until: deadline) else {
                // The time is up; the refusal gets a moment of its own.
                answer(connection, status: "408 Request Timeout", deadline: .now + Self.refusalTimeMax)
                return
            }
            let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { continue }
                return
            }
            if count == 0 { return }  // closed before a whole head
            received.append(contentsOf: chunk[..<count])
            if let end = Self.headEnd(received) {
                request = MetricsRequest.parse(received[..<end])
            } else if received.count > Self.requestBytesMax {
                answer(connection, status: "431 Request Header Fields Too Large", deadline: deadline)
                return
            }
        }
        switch request! {
        case .metrics(let withBody):
            let text = body()
            answer(
                connection, status: "200 OK", contentType: MetricsExposition.contentType, body: text,
                sendBody: withBody, deadline: deadline)
        case .notFound: answer(connection, status: "404 Not Found", deadline: deadline)
        case .methodNotAllowed:
            answer(connection, status: "405 Method Not Allowed", extraHeaders: "Allow: GET, HEAD\r\n", deadline: deadline)
        case .badRequest: answer(connection, status: "400 Bad Request", deadline: deadline)
        }
    }

    /// The index just past the head's blank line, or nil before it arrived
    /// (LF-only line ends are accepted too).
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\n") {
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\n") { return index }
                if index + 2 < bytes.count, bytes[index + 1] == UInt8(ascii: "\r"), bytes[index + 2] == UInt8(ascii: "\n") {
                    return index
                }
            }
            index += 1
        }
        return nil
    }

    private func answer(
        _ connection: Int32, status: String, contentType: String = "text/plain; charset=utf-8",
        extraHeaders: String = "", body: [UInt8]? = nil, sendBody: Bool = true,
        deadline: ContinuousClock.Instant
    ) {
        let content = body ?? Array("\(status.drop { $0 != " " }.dropFirst())\n".utf8)
        var response = Array(
            ("HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(content.count)\r\n"
                + "\(extraHeaders)Connection: close\r\n\r\n").utf8)
        if sendBody { response.append(contentsOf: content) }
        var offset = 0
        while offset < response.count {
            guard wait(connection, for: Int16(POLLOUT), until: deadline) else { return }
            let sent = response[offset...].withUnsafeBytes {
                send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { continue }
                return
            }
            offset += sent
        }
    }

    /// Whether `connection` became ready for `events` before `deadline`.
    private func wait(_ connection: Int32, for events: Int16, until deadline: ContinuousClock.Instant) -> Bool {
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return false }
            var descriptor = pollfd(fd: connection, events: events, revents: 0)
            let milliseconds = Int32(max(1, (left / .milliseconds(1)).rounded(.up)))
            let ready = poll(&descriptor, 1, milliseconds)
            if ready < 0, errno == EINTR { continue }
            return ready > 0
        }
    }

    private static func localPort(_ socket: Int32) -> Int? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        guard result == 0 else { return nil }
        return withUnsafeBytes(of: storage) { bytes in
            // sin_port and sin6_port sit at the same offset, after the family.
            Int(UInt16(bytes[2]) << 8 | UInt16(bytes[3]))
        }
    }

    /// FD_CLOEXEC (the embedded Postgres is a child process: it must not
    /// inherit these), and O_NONBLOCK when asked.
    private static func closeOnExec(_ descriptor: Int32, nonBlocking: Bool) {
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        if nonBlocking { _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK) }
    }

    /// The kernel's name for this thread (top -H, perf), 15 bytes at most.
    private static func nameThisThread(_ name: String) {
        let file = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard file >= 0 else { return }
        defer { close(file) }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(file, $0.baseAddress, $0.count) }
    }

    private static func lastError() -> String {
        String(cString: strerror(errno))
    }
}
