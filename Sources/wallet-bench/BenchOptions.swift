/// Command-line options of wallet-bench.
struct BenchOptions: Sendable {
    static let durationSecondsMax = 3_600.0
    static let concurrencyMax = 10_000
    static let connectionsMax = 64
    static let walletsMax = 10_000_000
    static let rateMax = 1_000_000.0

    static let usage = """
        usage: wallet-bench --target HOST:PORT --scenario NAME --duration SECONDS --concurrency N
                            [--rate R] [--json] [--database-url URL] [--wallets N] [--echo]
                            [--connections N] [--timeout-ms MS] [--retry-share FRACTION] [--zipf-exponent S]
                            [--retry-transient] [--timeline] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]

          --target HOST:PORT       the wallet server (loopback only)
          --scenario NAME          hot | pot | uniform | zipf | mixed (ignored with --echo)
          --duration SECONDS       timed phase (default 10)
          --concurrency N          closed loop: callers; open loop: most calls in flight (default 16)
          --rate R                 open loop at R calls/s instead of a closed loop
          --json                   print one JSON object as the last line
          --database-url URL       after the run: verify the ledger and audit every answer
          --wallets N              wallets (uniform, zipf, mixed) or players (pot); default 10000, 1000 for pot/mixed
          --echo                   call grpc.health.v1.Health/Check only: the transport ceiling
          --connections N          HTTP/2 connections, each with its own completion-queue thread (default 2)
          --timeout-ms MS          deadline of each call (default 10000)
          --retry-share FRACTION   mixed: share of calls that resend an earlier request (default 0.1)
          --zipf-exponent S        zipf: skew (default 1.1)
          --retry-transient        resend a call answered UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED
                                   (same bytes, same transaction_id) with backoff until it gets a final
                                   answer, as the game service does; for runs that restart the server
          --tls-ca FILE            speak TLS, trusting this CA for the server's certificate
          --tls-cert FILE          mutual TLS: this client certificate (its identity is the caller)
          --tls-key FILE           and its key
          --timeline               also print completions and the slowest call of every quarter second
                                   (open loop: also the pacer's worst late wake-up, a machine stall meter)
        """

    var target = ""
    var scenario = Scenario.hot
    var durationSeconds = 10.0
    var concurrency = 16
    var rate: Double?
    var json = false
    var databaseURL: String?
    var wallets: Int?
    var connections = 2
    var timeoutMilliseconds = 10_000
    var retryShare = 0.1
    var zipfExponent = 1.1
    var retryTransient = false
    var timeline = false
    var tlsCAFile: String?
    var tlsCertificateFile: String?
    var tlsKeyFile: String?

    /// Wallets of the plan: the flag, or the scenario's default.
    var walletCount: Int {
        switch scenario {
        case .hot, .echo: 1
        case .pot, .mixed: wallets ?? 1_000
        case .uniform, .zipf: wallets ?? 10_000
        }
    }

    static func parse(_ arguments: [String]) throws -> BenchOptions {
        var options = BenchOptions()
        var scenarioGiven = false
        var echo = false
        var index = 0
        func value(_ flag: String) throws -> String {
            index += 1
            guard index < arguments.count else { throw BenchError("\(flag) needs a value") }
            return arguments[index]
        }
        func number<T: LosslessStringConvertible & Comparable>(_ flag: String, _ range: ClosedRange<T>) throws -> T {
            let text = try value(flag)
            guard let parsed = T(text), range.contains(parsed) else {
                throw BenchError("\(flag) must be a number in \(range.lowerBound)...\(range.upperBound), got \(text)")
            }
            return parsed
        }
        while index < arguments.count {
            let flag = arguments[index]
            switch flag {
            case "--target": options.target = try value(flag)
            case "--scenario":
                let name = try value(flag)
                guard let scenario = Scenario(rawValue: name), scenario != .echo else {
                    throw BenchError("unknown scenario \(name) (hot, pot, uniform, zipf, mixed)")
                }
                options.scenario = scenario
                scenarioGiven = true
            case "--duration": options.durationSeconds = try number(flag, 0.1...durationSecondsMax)
            case "--concurrency": options.concurrency = try number(flag, 1...concurrencyMax)
            case "--rate": options.rate = try number(flag, 1...rateMax)
            case "--json": options.json = true
            case "--database-url": options.databaseURL = try value(flag)
            case "--wallets": options.wallets = try number(flag, 1...walletsMax)
            case "--echo": echo = true
            case "--connections": options.connections = try number(flag, 1...connectionsMax)
            case "--timeout-ms": options.timeoutMilliseconds = try number(flag, 1...3_600_000)
            case "--retry-share": options.retryShare = try number(flag, 0.0...1.0)
            case "--zipf-exponent": options.zipfExponent = try number(flag, 0.0...10.0)
            case "--retry-transient": options.retryTransient = true
            case "--timeline": options.timeline = true
            case "--tls-ca": options.tlsCAFile = try value(flag)
            case "--tls-cert": options.tlsCertificateFile = try value(flag)
            case "--tls-key": options.tlsKeyFile = try value(flag)
            case "--help", "-h": throw BenchError(usage)
            default: throw BenchError("unknown option \(flag)\n\(usage)")
            }
            index += 1
        }
        guard !options.target.isEmpty else { throw BenchError("--target is required\n\(usage)") }
        guard (options.tlsCertificateFile == nil) == (options.tlsKeyFile == nil),
            options.tlsCertificateFile == nil || options.tlsCAFile != nil
        else { throw BenchError("--tls-cert and --tls-key go together, and need --tls-ca") }
        try LoopbackTarget.check(options.target)
        if echo {
            options.scenario = .echo
        } else if !scenarioGiven {
            throw BenchError("--scenario or --echo is required\n\(usage)")
        }
        return options
    }
}

/// The bench only ever loads a server on this machine.
enum LoopbackTarget {
    static func check(_ target: String) throws {
        guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]),
            (1...65_535).contains(port)
        else { throw BenchError("--target must be HOST:PORT, got \(target)") }
        var host = String(target[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        let isIPv4Loopback = octets.count == 4 && octets.first == "127" && octets.allSatisfy { UInt8($0) != nil }
        guard host == "localhost" || host == "::1" || isIPv4Loopback else {
            throw BenchError("--target must be a loopback address (127.0.0.0/8, ::1, localhost), got \(host)")
        }
    }
}
