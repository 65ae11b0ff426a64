/// What the metrics endpoint makes of a request's head (its request line;
/// headers are read and ignored). A pure function of the bytes, tested
/// without a socket.
package enum MetricsRequest: Equatable, Sendable {
    /// GET /metrics (HEAD: the same without a body). A query string is
    /// ignored.
    case metrics(withBody: Bool)
    case notFound
    case methodNotAllowed
    case badRequest

    /// Parses the head up to (not including) the blank line.
    package static func parse(_ head: ArraySlice<UInt8>) -> MetricsRequest {
        let line = head.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
        let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].starts(with: "HTTP/1.".utf8), parts[2].count == 8,
            parts[1].first == UInt8(ascii: "/")
        else { return .badRequest }
        let path = parts[1].prefix { $0 != UInt8(ascii: "?") }
        let withBody: Bool
        switch String(decoding: parts[0], as: UTF8.self) {
        case "GET": withBody = true
        case "HEAD": withBody = false
        default: return .methodNotAllowed
        }
        return path.elementsEqual("/metrics".utf8) ? .metrics(withBody: withBody) : .notFound
    }
}
