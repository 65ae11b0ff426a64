import WalletGRPC

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// wallet-bench: load the wallet server through the gRPC core shim, then
/// audit what it acknowledged. Exit status 0 = ok, 1 = a check failed,
/// 2 = bad usage or setup.

/// Progress and failures go to standard error, so stdout stays the report.
@Sendable func log(_ line: String) {
    let text = line + "\n"
    text.utf8CString.withUnsafeBufferPointer { buffer in
        _ = write(STDERR_FILENO, buffer.baseAddress, buffer.count - 1)
    }
}

func runBench() async throws -> BenchReport {
    let options = try BenchOptions.parse(Array(CommandLine.arguments.dropFirst()))
    let tls = try options.tlsCAFile.map { ca in
        ClientTLS(
            rootPEM: try readText(ca), certificateChainPEM: try options.tlsCertificateFile.map(readText),
            keyPEM: try options.tlsKeyFile.map(readText))
    }
    let channels = try (0..<options.connections).map { _ in
        try GRPCChannel(target: options.target, threadCount: 1, tls: tls)
    }
    defer { for channel in channels { channel.close() } }

    var workload: Workload?
    if options.scenario != .echo {
        let plan = WorkloadPlan(scenario: options.scenario, walletCount: options.walletCount)
        let created = Workload(plan: plan, zipfExponent: options.zipfExponent, retryShare: options.retryShare)
        log("setup: run \(plan.runID), \(plan.totalWalletCount) wallets")
        let setupStart = monotonicNanoseconds()
        try await SetupPhase.run(
            workload: created, channel: channels[0], timeoutMilliseconds: options.timeoutMilliseconds, log: log)
        log("setup: done in \(format(Double(monotonicNanoseconds() - setupStart) / 1e9, 1)) s")
        workload = created
    }

    var runner = LoadRunner(
        channels: channels, workload: workload, concurrency: options.concurrency,
        durationSeconds: options.durationSeconds, rate: options.rate, timeoutMilliseconds: options.timeoutMilliseconds)
    runner.retryTransient = options.retryTransient
    let result = await runner.run()
    if options.retryTransient {
        log("retried transient failures: \(transientRetries.load(ordering: .relaxed)) resends")
    }

    var audit: LedgerAudit.Report?
    if let databaseURL = options.databaseURL, let workload {
        log("audit: verifying the ledger and \(workload.numbersIssued) transaction ids")
        do {
            audit = try LedgerAudit.run(databaseURL: databaseURL, workload: workload)
        } catch {
            audit = LedgerAudit.Report(problems: ["audit could not run: \(error)"])
        }
    }
    return BenchReport(
        options: options, runID: workload?.plan.runID, walletCount: workload?.plan.totalWalletCount ?? 0,
        result: result, bookkeeping: workload?.bookkeeping(), audit: audit)
}

do {
    let report = try await runBench()
    print(report.text)
    if report.options.json { print(report.json) }
    exit(report.ok ? 0 : 1)
} catch {
    log("wallet-bench: \(error)")
    exit(2)
}

/// A PEM file's text.
func readText(_ path: String) throws -> String {
    guard let file = fopen(path, "r") else { throw BenchError("cannot read \(path)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count == 0 { break }
        bytes += buffer.prefix(count)
    }
    return String(decoding: bytes, as: UTF8.self)
}
