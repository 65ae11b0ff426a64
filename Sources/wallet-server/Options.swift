import Foundation
import Logging
import WalletGRPC
import WalletObservability
import WalletPostgres

/// Command line and environment: flags win over the environment, which wins
/// over the defaults.
struct Options {
    enum Subcommand: String {
        case serve, migrate, verify, postgres
    }

    var subcommand = Subcommand.serve
    var listen = "127.0.0.1:50051"
    var databaseURL: String?
    /// Nil: chosen by write mode (see `effectivePoolSize`).
    var poolSize: Int?
    var writeMode = WriteMode.lanes
    var batchSizeMax = StoreConfiguration.defaults.batchSizeMax
    var queueDepthMax = StoreConfiguration.defaults.queueDepthMax
    var walletQueueDepthMax = StoreConfiguration.defaults.walletQueueDepthMax
    var slowBatchMilliseconds = StoreConfiguration.defaults.slowBatchMilliseconds
    var batchWaitMicroseconds = StoreConfiguration.defaults.batchWaitMicroseconds
    /// The wait was asked for (flag or environment), not just the default.
    var batchWaitGiven = false
    var batchWaitTarget = StoreConfiguration.defaults.batchWaitTarget
    var dataDirectory = ".data"
    var embeddedPort = 54329
    var drainTimeoutMilliseconds = 10_000
    var sweepIntervalMilliseconds = 500
    /// TLS: both or neither; the client CA turns on mutual TLS.
    var tlsCertificateFile: String?
    var tlsKeyFile: String?
    var tlsClientCAFile: String?
    var permissionsFile: String?
    /// Plaintext on an address other than loopback.
    var allowInsecure = false
    var transport = TransportSettings()
    /// How often the listener is checked; 0: never.
    var listenerProbeMilliseconds = 5_000
    /// Where `GET /metrics` is served; nil: no metrics (the default).
    var metricsListen: ListenAddress?
    var logLevel = Logger.Level.info
    /// How often the store probes the database when idle or down; 0: never.
    var databaseProbeMilliseconds = StoreConfiguration.databaseProbeIntervalMillisecondsServing

    static let usage = """
        usage: wallet-server [serve|migrate|verify|postgres] [options]

          serve      (default) run the gRPC server
          migrate    apply database migrations and exit
          verify     re-check every ledger invariant; exit 1 with a report if one breaks
          postgres   provision/start the embedded Postgres under --data-dir and print its URL

        options (environment variable in brackets):
          --listen HOST:PORT         [WALLET_LISTEN]        default 127.0.0.1:50051
          --database-url URL         [DATABASE_URL]         default: embedded Postgres under --data-dir
          --pool-size N              [WALLET_POOL_SIZE]     connections (= lanes); default: lanes max(2, cores),
                                                            per-request max(8, 4 x cores)
          --write-mode MODE          [WALLET_WRITE_MODE]    lanes (default) or per-request
          --batch-size-max N         [WALLET_BATCH_SIZE_MAX] commands per database transaction, default \(StoreConfiguration.defaults.batchSizeMax)
          --queue-depth-max N        [WALLET_QUEUE_DEPTH_MAX] queued commands per lane, default \(StoreConfiguration.defaults.queueDepthMax)
          --wallet-queue-depth-max N [WALLET_WALLET_QUEUE_DEPTH_MAX] queued commands per wallet, default \(StoreConfiguration.defaults.walletQueueDepthMax)
          --slow-batch-ms N          [WALLET_SLOW_BATCH_MS] log a batch slower than this, with its steps;
                                                            default \(StoreConfiguration.defaults.slowBatchMilliseconds)
          --batch-wait-us N          [WALLET_BATCH_WAIT_US] lanes: before a batch of fewer than the target,
                                                            while another lane is busy, wait up to N us
                                                            while more commands arrive; 0: off; default \(StoreConfiguration.defaults.batchWaitMicroseconds)
          --batch-wait-target N      [WALLET_BATCH_WAIT_TARGET] batch size that ends that wait, default \(StoreConfiguration.defaults.batchWaitTarget)
          --data-dir DIR             [WALLET_DATA_DIR]      default .data
          --embedded-port N          [WALLET_EMBEDDED_PORT] default 54329
          --drain-timeout-ms N                              default 10000
          --sweep-interval-ms N                             how often expired holds are looked for, default 500

        logs and metrics (docs/operations.md):
          --log-level LEVEL          [WALLET_LOG_LEVEL]     trace, debug (a line per call), info (default: a line
                                                            per failed call, repeats summarized), notice, warning,
                                                            error, critical; JSON lines on stderr
          --metrics-listen HOST:PORT [WALLET_METRICS_LISTEN] serve Prometheus text on GET /metrics (off by default);
                                                            PORT alone means 127.0.0.1:PORT; another address is
                                                            served as given, with a warning at start

        callers (SIGHUP reloads the certificate, key, client CA and permissions):
          --tls-cert FILE            [WALLET_TLS_CERT]      serve TLS with this certificate chain (PEM)
          --tls-key FILE             [WALLET_TLS_KEY]       and this key (PEM)
          --tls-client-ca FILE       [WALLET_TLS_CLIENT_CA] mutual TLS: clients need a certificate signed by this CA
          --permissions FILE         [WALLET_PERMISSIONS]   JSON: identity -> methods it may call (docs/security.md)
          --allow-insecure           [WALLET_ALLOW_INSECURE=1] plaintext on an address other than loopback

        transport limits (0: gRPC core's default):
          --max-concurrent-streams N      streams per connection, default \(TransportSettings().maxConcurrentStreams)
          --max-connection-idle-ms N      close a connection idle this long, default \(TransportSettings().maxConnectionIdleMilliseconds)
          --max-connection-age-ms N       close a connection this old (0: never), default \(TransportSettings().maxConnectionAgeMilliseconds)
          --max-connection-age-grace-ms N calls' grace after that, default \(TransportSettings().maxConnectionAgeGraceMilliseconds)
          --keepalive-time-ms N           ping a connection this often, default \(TransportSettings().keepaliveTimeMilliseconds)
          --keepalive-timeout-ms N        close it when a ping is unanswered this long, default \(TransportSettings().keepaliveTimeoutMilliseconds)
          --max-receive-message-bytes N   largest request message, default \(TransportSettings().maxReceiveMessageBytes)
          --max-header-list-bytes N       largest request header list, default \(TransportSettings().maxHeaderListBytes)
          --handshake-timeout-ms N        TLS and HTTP/2 handshake time limit, default \(TransportSettings().handshakeTimeoutMilliseconds)
          --listener-probe-ms N           check the listener accepts this often (0: off), default 5000
          --database-probe-ms N           probe the database this often when idle or down (0: off), default \(StoreConfiguration.databaseProbeIntervalMillisecondsServing)
        """

    static func parse(_ arguments: [String], environment: [String: String]) throws -> Options {
        var options = Options()
        if let value = environment["WALLET_LISTEN"] { options.listen = value }
        if let value = environment["DATABASE_URL"], !value.isEmpty { options.databaseURL = value }
        if let value = environment["WALLET_POOL_SIZE"] { options.poolSize = try number(value, "WALLET_POOL_SIZE") }
        if let value = environment["WALLET_WRITE_MODE"] { options.writeMode = try mode(value) }
        if let value = environment["WALLET_BATCH_SIZE_MAX"] {
            options.batchSizeMax = try number(value, "WALLET_BATCH_SIZE_MAX")
        }
        if let value = environment["WALLET_QUEUE_DEPTH_MAX"] {
            options.queueDepthMax = try number(value, "WALLET_QUEUE_DEPTH_MAX")
        }
        if let value = environment["WALLET_WALLET_QUEUE_DEPTH_MAX"] {
            options.walletQueueDepthMax = try number(value, "WALLET_WALLET_QUEUE_DEPTH_MAX")
        }
        if let value = environment["WALLET_SLOW_BATCH_MS"] {
            options.slowBatchMilliseconds = try number(value, "WALLET_SLOW_BATCH_MS")
        }
        if let value = environment["WALLET_BATCH_WAIT_US"] {
            options.batchWaitMicroseconds = try waitMicroseconds(value, "WALLET_BATCH_WAIT_US")
            options.batchWaitGiven = true
        }
        if let value = environment["WALLET_BATCH_WAIT_TARGET"] {
            options.batchWaitTarget = try number(value, "WALLET_BATCH_WAIT_TARGET")
        }
        if let value = environment["WALLET_DATA_DIR"] { options.dataDirectory = value }
        if let value = environment["WALLET_EMBEDDED_PORT"] {
            options.embeddedPort = try number(value, "WALLET_EMBEDDED_PORT")
        }
        if let value = environment["WALLET_TLS_CERT"], !value.isEmpty { options.tlsCertificateFile = value }
        if let value = environment["WALLET_TLS_KEY"], !value.isEmpty { options.tlsKeyFile = value }
        if let value = environment["WALLET_TLS_CLIENT_CA"], !value.isEmpty { options.tlsClientCAFile = value }
        if let value = environment["WALLET_PERMISSIONS"], !value.isEmpty { options.permissionsFile = value }
        if let value = environment["WALLET_ALLOW_INSECURE"] { options.allowInsecure = value == "1" || value == "true" }
        if let value = environment["WALLET_LOG_LEVEL"], !value.isEmpty {
            options.logLevel = try logLevel(value, "WALLET_LOG_LEVEL")
        }
        if let value = environment["WALLET_METRICS_LISTEN"], !value.isEmpty {
            options.metricsListen = try listenAddress(value, "WALLET_METRICS_LISTEN")
        }

        var rest = arguments[...]
        if let first = rest.first, let subcommand = Subcommand(rawValue: first) {
            options.subcommand = subcommand
            rest = rest.dropFirst()
        }
        while let flag = rest.popFirst() {
            var name = flag
            var inlineValue: String?
            if let equals = flag.firstIndex(of: "="), flag.hasPrefix("--") {
                name = String(flag[..<equals])
                inlineValue = String(flag[flag.index(after: equals)...])
            }
            func value() throws -> String {
                if let inlineValue { return inlineValue }
                guard let next = rest.popFirst() else { throw UsageError("\(name) needs a value") }
                return next
            }
            switch name {
            case "--listen": options.listen = try value()
            case "--database-url": options.databaseURL = try value()
            case "--pool-size": options.poolSize = try number(try value(), name)
            case "--write-mode": options.writeMode = try mode(try value())
            case "--batch-size-max": options.batchSizeMax = try number(try value(), name)
            case "--queue-depth-max": options.queueDepthMax = try number(try value(), name)
            case "--wallet-queue-depth-max": options.walletQueueDepthMax = try number(try value(), name)
            case "--slow-batch-ms": options.slowBatchMilliseconds = try number(try value(), name)
            case "--batch-wait-us":
                options.batchWaitMicroseconds = try waitMicroseconds(try value(), name)
                options.batchWaitGiven = true
            case "--batch-wait-target": options.batchWaitTarget = try number(try value(), name)
            case "--data-dir": options.dataDirectory = try value()
            case "--embedded-port": options.embeddedPort = try number(try value(), name)
            case "--drain-timeout-ms": options.drainTimeoutMilliseconds = try number(try value(), name)
            case "--sweep-interval-ms": options.sweepIntervalMilliseconds = try number(try value(), name)
            case "--tls-cert": options.tlsCertificateFile = try value()
            case "--tls-key": options.tlsKeyFile = try value()
            case "--tls-client-ca": options.tlsClientCAFile = try value()
            case "--permissions": options.permissionsFile = try value()
            case "--allow-insecure": options.allowInsecure = true
            case "--max-concurrent-streams": options.transport.maxConcurrentStreams = try limit(try value(), name)
            case "--max-connection-idle-ms":
                options.transport.maxConnectionIdleMilliseconds = try limit(try value(), name)
            case "--max-connection-age-ms": options.transport.maxConnectionAgeMilliseconds = try limit(try value(), name)
            case "--max-connection-age-grace-ms":
                options.transport.maxConnectionAgeGraceMilliseconds = try limit(try value(), name)
            case "--keepalive-time-ms": options.transport.keepaliveTimeMilliseconds = try limit(try value(), name)
            case "--keepalive-timeout-ms": options.transport.keepaliveTimeoutMilliseconds = try limit(try value(), name)
            case "--max-receive-message-bytes":
                options.transport.maxReceiveMessageBytes = try limit(try value(), name)
            case "--max-header-list-bytes": options.transport.maxHeaderListBytes = try limit(try value(), name)
            case "--handshake-timeout-ms": options.transport.handshakeTimeoutMilliseconds = try limit(try value(), name)
            case "--listener-probe-ms": options.listenerProbeMilliseconds = try limit(try value(), name)
            case "--log-level": options.logLevel = try logLevel(try value(), name)
            case "--metrics-listen": options.metricsListen = try listenAddress(try value(), name)
            case "--database-probe-ms": options.databaseProbeMilliseconds = try limit(try value(), name)
            case "-h", "--help": throw UsageError(nil)
            default: throw UsageError("unknown option \(flag)")
            }
        }
        try options.checkTransportSecurity()
        return options
    }

    /// TLS flags that make sense together, and plaintext only where only
    /// this machine can reach it (or where the operator says so).
    func checkTransportSecurity() throws {
        if (tlsCertificateFile == nil) != (tlsKeyFile == nil) {
            throw UsageError("--tls-cert and --tls-key go together")
        }
        if tlsClientCAFile != nil, tlsCertificateFile == nil {
            throw UsageError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)")
        }
        if subcommand == .serve, tlsCertificateFile == nil, !allowInsecure, !Self.isLoopback(listen) {
            throw UsageError(
                "refusing plaintext on \(listen), which is not a loopback address: serve TLS (--tls-cert, --tls-key, "
                    + "--tls-client-ca) or pass --allow-insecure")
        }
    }

    /// Whether "HOST:PORT" names a loopback host (127.0.0.0/8, ::1,
    /// localhost).
    static func isLoopback(_ listen: String) -> Bool {
        var host = Substring(listen)
        if let colon = host.lastIndex(of: ":") { host = host[..<colon] }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        if host == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) else { return false }
        return octets[0] == "127"
    }

    /// Lanes batch best when there are few of them (bigger batches, fewer
    /// commits) but at least one per core; one transaction per operation
    /// needs many connections to overlap its round trips and lock waits.
    var effectivePoolSize: Int {
        if let poolSize { return poolSize }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        switch writeMode {
        case .lanes: return max(2, cores)
        case .perRequest: return max(8, 4 * cores)
        }
    }

    /// The settings that shape throughput, for the startup log line.
    var startupSummary: String {
        var parts = ["write mode \(writeMode.rawValue)", "pool \(effectivePoolSize)"]
        if writeMode == .lanes {
            parts.append("batch size max \(batchSizeMax)")
            parts.append(
                batchWaitMicroseconds > 0
                    // The worker caps the target at the batch size, and so does the log.
                    ? "batch wait \(batchWaitMicroseconds) us for \(min(batchWaitTarget, batchSizeMax))"
                    : "batch wait off")
        }
        return parts.joined(separator: ", ")
    }

    /// A limit: 0 (gRPC core's default, or off) or a positive count.
    private static func limit(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text), (0...Int(Int32.max)).contains(value) else {
            throw UsageError("\(name) must be an integer from 0 to \(Int32.max)")
        }
        return value
    }

    private static func number(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text), value > 0 else { throw UsageError("\(name) must be a positive integer") }
        return value
    }

    /// 0 (off) to one second.
    private static func waitMicroseconds(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text), (0...1_000_000).contains(value) else {
            throw UsageError("\(name) must be an integer from 0 (off) to 1000000")
        }
        return value
    }

    private static func logLevel(_ text: String, _ name: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw UsageError(
                "\(name) must be one of: \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return level
    }

    private static func listenAddress(_ text: String, _ name: String) throws -> ListenAddress {
        do {
            return try ListenAddress.parse(text)
        } catch {
            throw UsageError("\(name): \(error.description)")
        }
    }

    private static func mode(_ text: String) throws -> WriteMode {
        guard let mode = WriteMode(rawValue: text) else {
            throw UsageError("write mode must be one of: \(WriteMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return mode
    }
}

struct UsageError: Error {
    let message: String?
    init(_ message: String?) { self.message = message }
}
