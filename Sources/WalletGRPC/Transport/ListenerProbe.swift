#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Synchronization

/// Checks, every interval, that the server's listening socket still accepts
/// connections. gRPC core 1.51 stops accepting for good after one failed
/// accept (EMFILE when the process is out of file descriptors) while the
/// process stays up: from the outside the instance looks alive and takes no
/// calls. The probe connects and sends a few bytes that are neither an
/// HTTP/2 preface nor a TLS hello; a listener that accepts answers them by
/// closing the connection (or with bytes of its own), one that does not
/// leaves them unread in its backlog until the probe's timeout.
package final class ListenerProbe: Sendable {
    /// Consecutive unanswered probes before the listener counts as stopped.
    package static let failuresBeforeStopped = 2

    private let address: ProbeAddress
    private let intervalMilliseconds: Int
    private let timeoutMilliseconds: Int
    private let onChange: @Sendable (_ accepting: Bool) -> Void
    private let state = Mutex<(stopping: Bool, thread: pthread_t?)>((false, nil))
    private let wake = Mutex<Bool>(false)

    /// `listen` is the server's "HOST:PORT" (a wildcard host is probed on
    /// loopback) and `port` its bound port. `onChange` runs on the probe's
    /// thread each time the verdict changes (first: `false` when stopped).
    package init?(
        listen: String, port: Int, intervalMilliseconds: Int,
        onChange: @escaping @Sendable (_ accepting: Bool) -> Void
    ) {
        guard intervalMilliseconds > 0, let address = ProbeAddress(listen: listen, port: port) else { return nil }
        self.address = address
        self.intervalMilliseconds = intervalMilliseconds
        self.timeoutMilliseconds = min(2_000, max(100, intervalMilliseconds))
        self.onChange = onChange
    }

    /// One probe now: true when the listener answered.
    package func probeOnce() -> Bool? {
        address.probe(timeoutMilliseconds: timeoutMilliseconds)
    }

    package func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { argument in
                let probe = Unmanaged<ListenerProbe>.fromOpaque(argument!).takeRetainedValue()
                probe.run()
                return nil
            }, box)
        precondition(created == 0, "cannot start the listener probe thread")
        state.withLock { $0.thread = thread }
    }

    /// Stops the probe and waits for its thread.
    package func stop() {
        let thread = state.withLock { state -> pthread_t? in
            state.stopping = true
            defer { state.thread = nil }
            return state.thread
        }
        if let thread { pthread_join(thread, nil) }
    }

    private var stopping: Bool { state.withLock { $0.stopping } }

    private func run() {
        var failures = 0
        var accepting = true
        while !sleepInterval() {
            // Nil: inconclusive (this process could not open a socket).
            guard let answered = address.probe(timeoutMilliseconds: timeoutMilliseconds) else { continue }
            failures = answered ? 0 : failures + 1
            let verdict = failures < Self.failuresBeforeStopped
            if verdict != accepting {
                accepting = verdict
                onChange(verdict)
            }
        }
    }

    /// Sleeps one interval in short steps; true when asked to stop.
    private func sleepInterval() -> Bool {
        var slept = 0
        while slept < intervalMilliseconds {
            if stopping { return true }
            let step = min(100, intervalMilliseconds - slept)
            usleep(UInt32(step * 1_000))
            slept += step
        }
        return stopping
    }
}

/// Where the probe connects: the listen address, or loopback for a wildcard.
private struct ProbeAddress: Sendable {
    let isIPv6: Bool
    let host: String
    let port: UInt16

    init?(listen: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = UInt16(exactly: port) else { return nil }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        switch host {
        case "", "0.0.0.0", "localhost": host = "127.0.0.1"
        case "::": host = "::1"
        default: break
        }
        self.isIPv6 = host.contains(":")
        self.host = host
        self.port = port
    }

    /// True: the listener took the connection and answered; false: nothing
    /// came back in time; nil: no socket could be made here.
    func probe(timeoutMilliseconds: Int) -> Bool? {
        let descriptor = socket(isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(to: descriptor) else { return false }
        // Not a preface, not a TLS record: the server closes on it.
        let bytes: [UInt8] = Array("wallet-listener-probe\r\n\r\n".utf8)
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if received >= 0 { return true }  // bytes, or the server closed
        return errno != EAGAIN && errno != EWOULDBLOCK  // reset: answered too
    }

    private func connect(to descriptor: Int32) -> Bool {
        if isIPv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { return false }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0
                }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return false }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
