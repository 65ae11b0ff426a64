import Foundation
import Testing

@testable import WalletObservability

/// The /metrics endpoint over real loopback sockets.
@Suite(.serialized) struct MetricsEndpointTests {
    /// Connects to 127.0.0.1:`port`, sends `request` (in pieces, if asked),
    /// reads until the server closes, and returns what it read.
    static func exchange(port: Int, _ request: [UInt8], closeWriteAfter: Bool = false) throws -> String {
        let socket = try connected(port: port)
        defer { close(socket) }
        _ = request.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if closeWriteAfter { shutdown(socket, Int32(SHUT_WR)) }
        return readAll(socket)
    }

    static func connected(port: Int) throws -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else { throw ConnectFailed() }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return socket
    }

    static func readAll(_ socket: Int32) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    struct ConnectFailed: Error {}

    func withEndpoint(_ body: (MetricsEndpoint) throws -> Void) throws {
        let endpoint = try MetricsEndpoint(address: ListenAddress(host: "127.0.0.1", port: 0)) {
            Array("# TYPE up gauge\nup 1\n".utf8)
        }
        endpoint.start()
        defer { endpoint.stop() }
        try body(endpoint)
    }

    @Test func getMetricsAnswersPrometheusText() throws {
        try withEndpoint { endpoint throws in
            #expect(endpoint.port > 0)
            let answer = try Self.exchange(
                port: endpoint.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n".utf8))
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(answer.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
            #expect(answer.contains("Content-Length: 21\r\n"))
            #expect(answer.contains("Connection: close\r\n"))
            #expect(answer.hasSuffix("\r\n\r\n# TYPE up gauge\nup 1\n"))
            // A query string is ignored; HEAD has the headers alone.
            #expect(try Self.exchange(port: endpoint.port, Array("GET /metrics?x=1 HTTP/1.0\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 200 OK"))
            let head = try Self.exchange(port: endpoint.port, Array("HEAD /metrics HTTP/1.1\r\n\r\n".utf8))
            #expect(head.hasPrefix("HTTP/1.1 200 OK") && head.hasSuffix("\r\n\r\n"))
        }
    }

    @Test func otherPathsAndMethodsAreRefused() throws {
        try withEndpoint { endpoint throws in
            #expect(try Self.exchange(port: endpoint.port, Array("GET / HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 404 "))
            #expect(try Self.exchange(port: endpoint.port, Array("GET /metricsx HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 404 "))
            let post = try Self.exchange(port: endpoint.port, Array("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n".utf8))
            #expect(post.hasPrefix("HTTP/1.1 405 ") && post.contains("Allow: GET, HEAD\r\n"))
            #expect(try Self.exchange(port: endpoint.port, Array("nonsense\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 400 "))
        }
    }

    @Test func anOversizedRequestHeadIsRefused() throws {
        try withEndpoint { endpoint throws in
            let huge = "GET /metrics HTTP/1.1\r\nX-Fill: " + String(repeating: "a", count: 20_000) + "\r\n\r\n"
            #expect(try Self.exchange(port: endpoint.port, Array(huge.utf8)).hasPrefix("HTTP/1.1 431 "))
            // Still serving.
            #expect(try Self.exchange(port: endpoint.port, Array("GET /metrics HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 200"))
        }
    }

    /// A client that connects and says nothing holds the endpoint for
    /// `requestTimeMax` at most; the next scrape is answered after that.
    @Test func aSilentClientIsCutOffAndTheNextIsServed() throws {
        try withEndpoint { endpoint throws in
            let silent = try Self.connected(port: endpoint.port)
            defer { close(silent) }
            let started = ContinuousClock.now
            let answer = try Self.exchange(port: endpoint.port, Array("GET /metrics HTTP/1.1\r\n\r\n".utf8))
            let waited = ContinuousClock.now - started
            #expect(answer.hasPrefix("HTTP/1.1 200 OK"))
            #expect(waited < MetricsEndpoint.requestTimeMax + .seconds(2))
            #expect(Self.readAll(silent).hasPrefix("HTTP/1.1 408 "))
        }
    }

    @Test func aClientThatLeavesEarlyDoesNotStopTheEndpoint() throws {
        try withEndpoint { endpoint throws in
            _ = try Self.exchange(port: endpoint.port, Array("GET /met".utf8), closeWriteAfter: true)
            #expect(try Self.exchange(port: endpoint.port, Array("GET /metrics HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 200"))
        }
    }

    @Test func aPortInUseFailsAtBind() throws {
        try withEndpoint { endpoint throws in
            #expect(throws: MetricsEndpoint.StartError.self) {
                _ = try MetricsEndpoint(address: ListenAddress(host: "127.0.0.1", port: endpoint.port)) { [] }
            }
        }
    }

    @Test func stopReleasesThePort() throws {
        var port = 0
        try withEndpoint { port = $0.port }
        let again = try MetricsEndpoint(address: ListenAddress(host: "127.0.0.1", port: port)) { [] }
        again.start()
        again.stop()
    }
}

@Suite struct MetricsRequestTests {
    @Test(arguments: [
        ("GET /metrics HTTP/1.1", MetricsRequest.metrics(withBody: true)),
        ("GET /metrics?name[]=x HTTP/1.0", .metrics(withBody: true)),
        ("HEAD /metrics HTTP/1.1", .metrics(withBody: false)),
        ("GET / HTTP/1.1", .notFound),
        ("GET /metrics/ HTTP/1.1", .notFound),
        ("PUT /metrics HTTP/1.1", .methodNotAllowed),
        ("GET /metrics HTTP/2.0", .badRequest),
        ("GET /metrics", .badRequest),
        ("GET  /metrics HTTP/1.1", .badRequest),
        ("GET metrics HTTP/1.1", .badRequest),
        ("", .badRequest),
    ])
    func theRequestLineDecides(line: String, expected: MetricsRequest) {
        #expect(MetricsRequest.parse(Array((line + "\r\nHost: x").utf8)[...]) == expected)
    }
}

@Suite struct ListenAddressTests {
    @Test(arguments: [
        ("9464", "127.0.0.1", 9464, true),
        (":9464", "127.0.0.1", 9464, true),
        ("localhost:9464", "127.0.0.1", 9464, true),
        ("127.0.0.1:0", "127.0.0.1", 0, true),
        ("0.0.0.0:9464", "0.0.0.0", 9464, false),
        ("10.1.2.3:9464", "10.1.2.3", 9464, false),
        ("[::1]:9464", "::1", 9464, true),
        ("[::]:9464", "::", 9464, false),
    ])
    func addressesParse(text: String, host: String, port: Int, loopback: Bool) throws {
        let address = try ListenAddress.parse(text)
        #expect(address.host == host)
        #expect(address.port == port)
        #expect(address.isLoopback == loopback)
    }

    @Test(arguments: ["", "host:9464", "example.com:9464", "1.2.3:80", "127.0.0.1:65536", "127.0.0.1:-1", "::1:9464", "[zz]:1", "127.0.0.1:"])
    func badAddressesAreRefused(text: String) {
        #expect(throws: ListenAddress.Invalid.self) { try ListenAddress.parse(text) }
    }
}
