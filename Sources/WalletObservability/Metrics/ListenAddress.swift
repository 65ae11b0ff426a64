#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where the metrics endpoint listens: a numeric IPv4 or IPv6 address (or
/// `localhost`) and a port. `PORT` or `:PORT` alone means 127.0.0.1:PORT:
/// metrics stay on this machine unless the operator names another address.
package struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// Numeric, IPv6 without brackets.
    package var host: String
    /// 0: any free port (the endpoint reports the one it got).
    package var port: Int

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    package struct Invalid: Error, Equatable, CustomStringConvertible {
        package var description: String
    }

    package static func parse(_ text: String) throws(Invalid) -> ListenAddress {
        var host = "127.0.0.1"
        var portText = Substring(text)
        if let colon = text.lastIndex(of: ":") {
            let hostPart = text[..<colon]
            portText = text[text.index(after: colon)...]
            if hostPart.hasPrefix("["), hostPart.hasSuffix("]") {
                host = String(hostPart.dropFirst().dropLast())
                guard isIPv6(host) else { throw Invalid(description: "\(hostPart) is not an IPv6 address") }
            } else if hostPart == "localhost" {
                host = "127.0.0.1"
            } else if !hostPart.isEmpty {
                host = String(hostPart)
                guard isIPv4(host) else {
                    throw Invalid(
                        description: "\(hostPart) is not a numeric address (IPv4, [IPv6] or localhost)")
                }
            }
        }
        guard let port = Int(portText), (0...65_535).contains(port) else {
            throw Invalid(description: "the port must be a number from 0 to 65535 (HOST:PORT)")
        }
        return ListenAddress(host: host, port: port)
    }

    package var isIPv6: Bool { host.contains(":") }

    /// 127.0.0.0/8 or ::1.
    package var isLoopback: Bool {
        if isIPv6 {
            var address = in6_addr()
            guard inet_pton(AF_INET6, host, &address) == 1 else { return false }
            return withUnsafeBytes(of: address) { bytes in bytes.dropLast().allSatisfy { $0 == 0 } && bytes.last == 1 }
        }
        return host.hasPrefix("127.")
    }

    package var description: String {
        isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    private static func isIPv4(_ host: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, host, &address) == 1
    }

    private static func isIPv6(_ host: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, host, &address) == 1
    }
}
