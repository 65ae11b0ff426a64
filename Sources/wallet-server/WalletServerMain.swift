import Dispatch
import Foundation
import Logging
import WalletDomain
import WalletGRPC
import WalletObservability
import WalletPostgres

@main
struct WalletServerMain {
    static func main() {
        let options: Options
        do {
            options = try Options.parse(
                Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment)
        } catch let error as UsageError {
            // Before the level is known and logging set up: this one line is
            // written by a handler of its own, JSON like every other.
            if let message = error.message {
                JSONLinesLogHandler(label: "wallet-server", level: .error)
                    .log(
                        event: LogEvent(
                            level: .error, message: "error: \(message)", metadata: nil, source: nil, file: #fileID,
                            function: #function, line: #line))
            }
            print(Options.usage)
            exit(error.message == nil ? 0 : 2)
        } catch {
            exit(2)
        }
        JSONLogs.bootstrap(level: options.logLevel)
        Log.redirectGRPCCore()
        PostgresNotices.route { Log.store.debug("postgres: \($0)") }
        do {
            switch options.subcommand {
            case .serve: try serve(options)
            case .migrate:
                let applied = try PostgresLedgerStore.migrate(databaseURL: try databaseURL(options))
                print(
                    applied.isEmpty
                        ? "migrations: up to date"
                        : "migrations applied: \(applied.map(String.init).joined(separator: ", "))")
            case .verify:
                let problems = try LedgerVerifier.verify(databaseURL: try databaseURL(options))
                if problems.isEmpty {
                    print("verify: every invariant holds")
                } else {
                    print("verify: \(problems.count) problem(s)")
                    for problem in problems { print("  - \(problem)") }
                    exit(1)
                }
            case .postgres:
                print(try embeddedDatabase(options))
            }
        } catch {
            Log.server.critical("error: \(error)")
            exit(1)
        }
    }

    /// DATABASE_URL when given, else the embedded cluster under the data directory.
    static func databaseURL(_ options: Options) throws -> String {
        if let url = options.databaseURL { return url }
        return try embeddedDatabase(options)
    }

    static func embeddedDatabase(_ options: Options) throws -> String {
        let directory = URL(fileURLWithPath: options.dataDirectory).appendingPathComponent("postgres").path
        Log.server.info("no DATABASE_URL: using the embedded Postgres in \(directory) on port \(options.embeddedPort)")
        return try LocalPostgres.start(dataDirectory: directory, port: options.embeddedPort, databaseName: "wallet")
    }

    static func serve(_ options: Options) throws {
        Log.server.info("starting (\(options.startupSummary))")
        // Bound first, so that a metrics port in use stops the start before
        // anything else; swift-metrics is bootstrapped before any metric is
        // made (the store's, the interceptors').
        let metrics = try options.metricsListen.map { address in
            do throws(MetricsEndpoint.StartError) {
                return try PrometheusMetrics.bootstrap(listen: address)
            } catch {
                throw StartupError("metrics: \(error.description)")
            }
        }
        if let metrics {
            metrics.start()
            Log.server.info("metrics on http://\(ListenAddress(host: metrics.address.host, port: metrics.port))/metrics")
            if !metrics.address.isLoopback {
                Log.server.warning(
                    """
                    metrics listen on \(metrics.address), not a loopback address: anyone who reaches it can read \
                    call counts and latencies (no ids, no amounts)
                    """)
            }
        }
        let security = try CallerSecurity(options)
        Log.server.info("callers: \(security.summary)")
        if options.tlsCertificateFile == nil, !Options.isLoopback(options.listen) {
            Log.server.warning(
                """
                warning: plaintext on \(options.listen) (--allow-insecure): anyone who reaches this address may \
                call, and calls carry no identity
                """)
        }
        let files = OpenFileLimit.raiseToHardLimit()
        Log.server.info(
            files.after > files.before
                ? "open-file limit raised from \(files.before) to \(files.after) (the hard limit)"
                : "open-file limit \(files.after) (already the hard limit)")
        if options.writeMode == .perRequest, options.batchWaitGiven, options.batchWaitMicroseconds > 0 {
            Log.server.notice("note: --batch-wait-us applies to lanes only; per-request mode ignores it")
        }
        let url = try databaseURL(options)
        let storeMessages = RepeatedMessageLog(logger: Log.store, level: .warning)
        var configuration = StoreConfiguration(
            databaseURL: url, poolSize: options.effectivePoolSize, writeMode: options.writeMode,
            batchSizeMax: options.batchSizeMax, queueDepthMax: options.queueDepthMax,
            log: { storeMessages.log($0) })
        configuration.slowBatchMilliseconds = options.slowBatchMilliseconds
        configuration.walletQueueDepthMax = options.walletQueueDepthMax
        configuration.batchWaitMicroseconds = options.batchWaitMicroseconds
        configuration.batchWaitTarget = options.batchWaitTarget
        configuration.connectWorkersAtStart = true
        configuration.databaseProbeIntervalMilliseconds = options.databaseProbeMilliseconds
        let store = try PostgresLedgerStore(configuration: configuration)
        Log.server.info("database ready at \(ConnectionString.redacted(url))")
        let wallet = WalletService(
            store: store, pageTokens: store.pageTokens,
            events: EventStreams(source: store.events, cursors: store.events.cursors))
        // Observers after the admission rules; they see refused calls too.
        var interceptors = security.interceptors
        if metrics != nil { interceptors.append(CallMetrics()) }
        // Failed calls log at info: below that level nothing per call is
        // logged, and the interceptor (a closure per call) is left out.
        let callLogging = Log.calls.logLevel <= .info ? CallLogging(logger: Log.calls) : nil
        if let callLogging { interceptors.append(callLogging) }
        let summaries = SummaryTicker {
            callLogging?.flushSummaries()
            storeMessages.flushSummaries()
            Log.grpcCore.flushSummaries()
        }
        summaries.start()
        let server = try WalletServer(
            listen: options.listen, wallet: wallet, interceptors: interceptors,
            settings: options.transport, tls: security.tls)
        security.warnOfUnservedMethods(served: Set(server.router.paths))
        let host = options.listen.split(separator: ":").dropLast().joined(separator: ":")
        Log.server.info("listening on \(host):\(server.port)")
        let probe = ListenerProbe(
            listen: options.listen, port: server.port, intervalMilliseconds: options.listenerProbeMilliseconds
        ) { accepting in
            server.health.set(.listenerStopped, holds: !accepting)
            if accepting {
                Log.server.notice("listener accepts connections again on \(host):\(server.port): health is SERVING")
            } else {
                Log.server.critical(
                    """
                    listener stopped accepting connections on \(host):\(server.port) (gRPC core does not \
                    recover from a failed accept): health is NOT_SERVING; restart this instance
                    """)
            }
        }
        probe?.start()
        // NOT_SERVING while the database cannot take writes; SERVING again
        // by itself once it can (the store logs each change and why).
        store.observeDatabaseStatus { status in
            let reasons: [(HealthService.NotServingReason, Bool)] = [
                (.databaseUnreachable, status == .unreachable), (.databaseReadOnly, status == .readOnly),
            ]
            // Raise the new reason before clearing the old, so that a move
            // from one to the other never shows SERVING in between.
            for (reason, holds) in reasons where holds { server.health.set(reason, holds: true) }
            for (reason, holds) in reasons where !holds { server.health.set(reason, holds: false) }
        }

        let sweeper = HoldSweeper(store: store, intervalMilliseconds: options.sweepIntervalMilliseconds)
        sweeper.start()

        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            sources.append(source)
        }
        signal(SIGHUP, SIG_IGN)
        let reload = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        reload.setEventHandler { security.reload() }
        reload.resume()
        sources.append(reload)
        stop.wait()
        Log.server.info("stopping: draining in-flight calls")
        probe?.stop()
        sweeper.stop()
        server.shutdown(drainTimeoutMilliseconds: options.drainTimeoutMilliseconds)
        store.shutdown()
        summaries.stop()
        metrics?.stop()
        Log.server.info("stopped")
        exit(0)
    }
}
