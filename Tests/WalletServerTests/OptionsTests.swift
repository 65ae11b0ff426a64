import Logging
import Testing
import WalletObservability
import WalletPostgres

@testable import wallet_server

/// `wallet-server`'s command line: flags beat the environment, which beats
/// the defaults; every bad value is a usage error with a reason.
@Suite struct OptionsTests {
    private func parse(_ arguments: [String], _ environment: [String: String] = [:]) throws -> Options {
        try Options.parse(arguments, environment: environment)
    }

    /// The reason a parse fails with, or nil when it does not fail.
    private func refusal(_ arguments: [String], _ environment: [String: String] = [:]) -> String?? {
        do {
            _ = try parse(arguments, environment)
            return nil
        } catch let error as UsageError {
            return .some(error.message)
        } catch {
            return .some("unexpected error \(error)")
        }
    }

    @Test func noArgumentsServeOnTheDefaults() throws {
        let options = try parse([])
        #expect(options.subcommand == .serve)
        #expect(options.listen == "127.0.0.1:50051")
        #expect(options.databaseURL == nil)
        #expect(options.poolSize == nil)
        #expect(options.writeMode == .lanes)
        #expect(options.batchSizeMax == StoreConfiguration.defaults.batchSizeMax)
        #expect(options.batchWaitMicroseconds == StoreConfiguration.defaults.batchWaitMicroseconds)
        #expect(!options.batchWaitGiven)
        #expect(options.dataDirectory == ".data")
        #expect(options.embeddedPort == 54329)
    }

    @Test func aFlagBeatsTheEnvironmentWhichBeatsTheDefault() throws {
        let environment = [
            "WALLET_POOL_SIZE": "3", "WALLET_LISTEN": "0.0.0.0:7000", "WALLET_WRITE_MODE": "per-request",
            "DATABASE_URL": "postgresql://env/db", "WALLET_ALLOW_INSECURE": "1",
        ]
        let options = try parse(["--pool-size", "5", "--database-url=postgresql://flag/db"], environment)
        #expect(options.poolSize == 5)
        #expect(options.databaseURL == "postgresql://flag/db")
        #expect(options.listen == "0.0.0.0:7000")
        #expect(options.writeMode == .perRequest)
    }

    @Test func anEmptyDatabaseURLMeansTheEmbeddedCluster() throws {
        #expect(try parse([], ["DATABASE_URL": ""]).databaseURL == nil)
    }

    @Test func theSubcommandComesFirst() throws {
        #expect(try parse(["verify", "--database-url", "postgresql://x/y"]).subcommand == .verify)
        #expect(try parse(["postgres", "--data-dir", "/tmp/d"]).dataDirectory == "/tmp/d")
        // Only in first place is a bare word a subcommand.
        #expect(refusal(["--listen", "a:1", "migrate"]) == .some("unknown option migrate"))
    }

    @Test func aBatchWaitOfZeroIsAskedForAndTurnsTheWaitOff() throws {
        let flag = try parse(["--batch-wait-us", "0"])
        #expect(flag.batchWaitMicroseconds == 0 && flag.batchWaitGiven)
        #expect(flag.startupSummary.contains("batch wait off"))
        let environment = try parse([], ["WALLET_BATCH_WAIT_US": "0"])
        #expect(environment.batchWaitMicroseconds == 0 && environment.batchWaitGiven)
    }

    @Test(arguments: [
        (["--pool-size", "0"], "--pool-size must be a positive integer"),
        (["--pool-size=-4"], "--pool-size must be a positive integer"),
        (["--batch-size-max", "many"], "--batch-size-max must be a positive integer"),
        (["--pool-size"], "--pool-size needs a value"),
        (["--batch-wait-us", "1000001"], "--batch-wait-us must be an integer from 0 (off) to 1000000"),
        (["--batch-wait-us", "-1"], "--batch-wait-us must be an integer from 0 (off) to 1000000"),
        (["--write-mode", "fast"], "write mode must be one of: lanes, per-request"),
        (["--bogus"], "unknown option --bogus"),
    ])
    func aBadFlagIsRefusedWithItsReason(arguments: [String], reason: String) {
        #expect(refusal(arguments) == .some(reason))
    }

    @Test func aBadEnvironmentValueIsRefusedWithItsName() {
        #expect(refusal([], ["WALLET_POOL_SIZE": "0"]) == .some("WALLET_POOL_SIZE must be a positive integer"))
        #expect(
            refusal([], ["WALLET_BATCH_WAIT_US": "2000000"])
                == .some("WALLET_BATCH_WAIT_US must be an integer from 0 (off) to 1000000"))
        #expect(refusal([], ["WALLET_WRITE_MODE": "LANES"]) == .some("write mode must be one of: lanes, per-request"))
    }

    @Test func helpIsAUsageErrorWithoutAReason() {
        #expect(refusal(["--help"]) == .some(nil))
        #expect(refusal(["serve", "-h"]) == .some(nil))
    }

    @Test func thePoolSizeFollowsTheWriteModeUnlessGiven() throws {
        #expect(try parse([]).effectivePoolSize >= 2)
        #expect(try parse(["--write-mode", "per-request"]).effectivePoolSize >= 8)
        #expect(try parse(["--write-mode", "per-request", "--pool-size", "3"]).effectivePoolSize == 3)
    }

    @Test func theStartupSummaryNamesWhatShapesThroughput() throws {
        let lanes = try parse(["--pool-size", "2", "--batch-size-max", "64", "--batch-wait-target", "16"])
        #expect(
            lanes.startupSummary
                == "write mode lanes, pool 2, batch size max 64, batch wait \(StoreConfiguration.defaults.batchWaitMicroseconds) us for 16"
        )
        // A wait target above the batch size is capped by the worker; the
        // summary shows what the worker uses.
        let capped = try parse(["--batch-size-max", "8", "--batch-wait-target", "32"])
        #expect(capped.startupSummary.hasSuffix("us for 8"))
        let perRequest = try parse(["--write-mode", "per-request", "--pool-size", "9"])
        #expect(perRequest.startupSummary == "write mode per-request, pool 9")
    }

    @Test(arguments: [
        ("127.0.0.1:50051", true), ("127.0.0.2:1", true), ("localhost:50051", true), ("[::1]:50051", true),
        ("0.0.0.0:50051", false), ("[::]:50051", false), ("10.0.0.5:50051", false), ("wallet.internal:50051", false),
        ("127.0.0.1.example.com:1", false), (":50051", false),
    ])
    func loopbackAddresses(listen: String, loopback: Bool) {
        #expect(Options.isLoopback(listen) == loopback)
    }

    @Test func plaintextOffLoopbackNeedsAllowInsecure() throws {
        #expect(throws: UsageError.self) { try parse(["--listen", "0.0.0.0:50051"], [:]) }
        let allowed = try parse(["--listen", "0.0.0.0:50051", "--allow-insecure"], [:])
        #expect(allowed.allowInsecure)
        let tls = try parse(["--listen", "0.0.0.0:50051", "--tls-cert", "c.pem", "--tls-key", "k.pem"], [:])
        #expect(tls.tlsCertificateFile == "c.pem" && tls.tlsKeyFile == "k.pem")
        // migrate and verify do not listen.
        #expect(try parse(["verify"], ["WALLET_LISTEN": "0.0.0.0:1"]).subcommand == .verify)
    }

    @Test func tlsFlagsGoTogether() {
        #expect(throws: UsageError.self) { try parse(["--tls-cert", "c.pem"], [:]) }
        #expect(throws: UsageError.self) { try parse(["--tls-key", "k.pem"], [:]) }
        #expect(throws: UsageError.self) { try parse(["--tls-client-ca", "ca.pem"], [:]) }
    }

    @Test func securityFlagsHaveEnvironmentVariables() throws {
        let options = try parse(
            [],
            [
                "WALLET_TLS_CERT": "c.pem", "WALLET_TLS_KEY": "k.pem", "WALLET_TLS_CLIENT_CA": "ca.pem",
                "WALLET_PERMISSIONS": "p.json",
            ])
        #expect(options.tlsCertificateFile == "c.pem")
        #expect(options.tlsKeyFile == "k.pem")
        #expect(options.tlsClientCAFile == "ca.pem")
        #expect(options.permissionsFile == "p.json")
    }

    @Test func transportLimitsAreSettable() throws {
        let options = try parse(
            [
                "--max-concurrent-streams", "7", "--max-connection-idle-ms", "1000", "--max-connection-age-ms", "0",
                "--keepalive-time-ms", "2000", "--keepalive-timeout-ms", "300", "--max-receive-message-bytes", "65536",
                "--max-header-list-bytes", "4096", "--handshake-timeout-ms", "500", "--listener-probe-ms", "0",
            ], [:])
        #expect(options.transport.maxConcurrentStreams == 7)
        #expect(options.transport.maxConnectionIdleMilliseconds == 1000)
        #expect(options.transport.maxConnectionAgeMilliseconds == 0)
        #expect(options.transport.keepaliveTimeMilliseconds == 2000)
        #expect(options.transport.keepaliveTimeoutMilliseconds == 300)
        #expect(options.transport.maxReceiveMessageBytes == 65536)
        #expect(options.transport.maxHeaderListBytes == 4096)
        #expect(options.transport.handshakeTimeoutMilliseconds == 500)
        #expect(options.listenerProbeMilliseconds == 0)
        #expect(throws: UsageError.self) { try parse(["--max-concurrent-streams", "-1"], [:]) }
    }

    @Test func logsAtInfoAndNoMetricsByDefault() throws {
        let options = try parse([])
        #expect(options.logLevel == .info)
        #expect(options.metricsListen == nil)
    }

    @Test func logLevelAndMetricsAddressFromFlagsOrEnvironment() throws {
        let fromEnvironment = try parse([], ["WALLET_LOG_LEVEL": "debug", "WALLET_METRICS_LISTEN": "9464"])
        #expect(fromEnvironment.logLevel == .debug)
        #expect(fromEnvironment.metricsListen == ListenAddress(host: "127.0.0.1", port: 9464))
        let fromFlags = try parse(
            ["--log-level", "WARNING", "--metrics-listen=0.0.0.0:9100"],
            ["WALLET_LOG_LEVEL": "debug", "WALLET_METRICS_LISTEN": "9464"])
        #expect(fromFlags.logLevel == .warning)
        #expect(fromFlags.metricsListen == ListenAddress(host: "0.0.0.0", port: 9100))
        #expect(fromFlags.metricsListen?.isLoopback == false)
    }

    @Test(arguments: [
        (["--log-level", "loud"], "--log-level must be one of: trace, debug, info, notice, warning, error, critical"),
        (["--metrics-listen", "example.com:9464"], "--metrics-listen: example.com is not a numeric address (IPv4, [IPv6] or localhost)"),
        (["--metrics-listen", "127.0.0.1:99999"], "--metrics-listen: the port must be a number from 0 to 65535 (HOST:PORT)"),
    ])
    func badLogAndMetricsValuesAreRefused(arguments: [String], reason: String) {
        #expect(refusal(arguments) == .some(reason))
    }

    @Test func theDatabaseProbeIntervalIsAFlag() throws {
        #expect(try parse([], [:]).databaseProbeMilliseconds == 1000)
        #expect(try parse(["--database-probe-ms", "250"], [:]).databaseProbeMilliseconds == 250)
        #expect(try parse(["--database-probe-ms", "0"], [:]).databaseProbeMilliseconds == 0)
        #expect(throws: UsageError.self) { try parse(["--database-probe-ms", "-5"], [:]) }
    }
}
