import WalletGRPC

/// Defines the asset, creates and funds every wallet of the plan before the
/// clock starts. Funding credits are booked like any acknowledged operation.
enum SetupPhase {
    /// Setup calls in flight at once.
    static let callsInFlightMax = 256
    static let progressEveryWallets = 20_000

    static func run(workload: Workload, channel: GRPCChannel, timeoutMilliseconds: Int, log: @Sendable (String) -> Void)
        async throws
    {
        let asset = await channel.unary(
            method: WalletMethod.defineAsset.path, request: workload.defineAssetRequest(),
            timeoutMilliseconds: timeoutMilliseconds)
        try expectOK(asset, doing: "DefineAsset \(workload.plan.asset)")

        let total = workload.plan.totalWalletCount
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func addNext() {
                let wallet = next
                next += 1
                group.addTask {
                    try await prepare(
                        wallet: wallet, workload: workload, channel: channel, timeoutMilliseconds: timeoutMilliseconds)
                }
            }
            while next < min(callsInFlightMax, total) { addNext() }
            var done = 0
            while try await group.next() != nil {
                done += 1
                if done % progressEveryWallets == 0 { log("setup: \(done)/\(total) wallets") }
                if next < total { addNext() }
            }
        }
    }

    private static func prepare(wallet: Int, workload: Workload, channel: GRPCChannel, timeoutMilliseconds: Int)
        async throws
    {
        let walletID = workload.plan.walletID(wallet)
        let created = await channel.unary(
            method: WalletMethod.createWallet.path, request: workload.createWalletRequest(wallet: wallet),
            timeoutMilliseconds: timeoutMilliseconds)
        try expectOK(created, doing: "CreateWallet \(walletID)")
        guard let funding = workload.fundingOperation(wallet: wallet) else { return }
        let credited = await channel.unary(
            method: funding.method.path, request: funding.request, timeoutMilliseconds: timeoutMilliseconds)
        let code: Int32 = if case .failed(let status) = credited { status.code } else { RPCStatus.okCode }
        var caller = workload.makeCaller(seed: UInt64(wallet))
        workload.complete(funding, outcome: CallOutcome(code: code, replayed: nil), caller: &caller)
        try expectOK(credited, doing: "Credit \(walletID)")
    }

    private static func expectOK(_ result: ClientResult, doing what: String) throws {
        guard case .failed(let status) = result else { return }
        let reason = ResponseDecoding.reason(statusDetails: status.details).map { " \($0)" } ?? ""
        throw BenchError("setup failed: \(what): \(StatusCodeName.of(status.code))\(reason) \(status.message)")
    }
}
