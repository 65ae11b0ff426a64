/// What the service needs of storage. The Postgres store is the product; the
/// in-memory store (WalletTestSupport) is the reference for domain tests.
/// Every method either completes or throws a `LedgerError`; a thrown
/// UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED recorded nothing.
public protocol LedgerStore: Sendable {
    func execute(_ command: Command, deadline: ContinuousClock.Instant?) async throws(LedgerError) -> OperationResult
    /// `execute` without a task: returns at once and calls `completion`
    /// exactly once, on any thread, when the outcome is known (for a store
    /// that writes in batches: after the commit that holds it). The gRPC
    /// handlers use it for writes, so a call costs no task and no
    /// continuation; `completion` must not block.
    func submit(
        _ command: Command, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<OperationResult, LedgerError>) -> Void)
    func createWallet(_ request: CreateWallet) async throws(LedgerError) -> (wallet: WalletRecord, created: Bool)
    func defineAsset(_ request: DefineAsset) async throws(LedgerError) -> (asset: Asset, created: Bool)
    /// Empty `asset`: every asset the wallet holds.
    func balances(walletID: String, asset: String) async throws(LedgerError) -> [Balance]
    /// `balances` without a task, as `submit` is for writes; a store that
    /// queues reads answers DEADLINE_EXCEEDED to one still queued at `deadline`.
    func submitBalances(
        walletID: String, asset: String, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<[Balance], LedgerError>) -> Void)
    func transaction(id: String) async throws(LedgerError) -> TransactionRecord
    /// `transaction` without a task, as `submitBalances`.
    func submitTransaction(
        id: String, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<TransactionRecord, LedgerError>) -> Void)
    /// Newest first; `before` is the cursor of the last row of the previous page.
    func history(walletID: String, limit: Int, before: Int64?) async throws(LedgerError) -> HistoryPage
    /// `history` without a task, as `submitBalances`.
    func submitHistory(
        walletID: String, limit: Int, before: Int64?, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<HistoryPage, LedgerError>) -> Void)
}

/// For a store without a queue of its own: the submit methods run their
/// async twin on a new task.
extension LedgerStore {
    public func submit(
        _ command: Command, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<OperationResult, LedgerError>) -> Void
    ) {
        onNewTask(completion) { () async throws(LedgerError) in try await execute(command, deadline: deadline) }
    }

    public func submitBalances(
        walletID: String, asset: String, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<[Balance], LedgerError>) -> Void
    ) {
        onNewTask(completion) { () async throws(LedgerError) in try await balances(walletID: walletID, asset: asset) }
    }

    public func submitTransaction(
        id: String, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<TransactionRecord, LedgerError>) -> Void
    ) {
        onNewTask(completion) { () async throws(LedgerError) in try await transaction(id: id) }
    }

    public func submitHistory(
        walletID: String, limit: Int, before: Int64?, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<HistoryPage, LedgerError>) -> Void
    ) {
        onNewTask(completion) { () async throws(LedgerError) in
            try await history(walletID: walletID, limit: limit, before: before)
        }
    }

    private func onNewTask<Value: Sendable>(
        _ completion: @escaping @Sendable (Result<Value, LedgerError>) -> Void,
        _ body: @escaping @Sendable () async throws(LedgerError) -> Value
    ) {
        Task {
            do throws(LedgerError) {
                completion(.success(try await body()))
            } catch {
                completion(.failure(error))
            }
        }
    }
}

public struct HistoryPage: Sendable {
    public var transactions: [TransactionRecord]
    /// Set when there may be more rows.
    public var nextCursor: Int64?

    public init(transactions: [TransactionRecord], nextCursor: Int64?) {
        self.transactions = transactions
        self.nextCursor = nextCursor
    }
}

/// CreateWallet and DefineAsset rules, shared by every store.
public enum Registry {
    public static func existingWallet(_ existing: WalletRecord, matches request: CreateWallet) throws(LedgerError) {
        // Labels byte for byte: Swift's == calls canonically equivalent text equal.
        guard existing.overdraftLimit == request.overdraftLimit,
            RequestFingerprint.sameBytes(existing.labels, request.labels)
        else {
            throw LedgerError(
                .alreadyExists, "WALLET_EXISTS", "wallet \(request.walletID) exists with other parameters")
        }
    }

    public static func existingAsset(_ existing: Asset, matches request: DefineAsset) throws(LedgerError) {
        guard existing.decimalPlaces == request.decimalPlaces else {
            throw LedgerError(
                .alreadyExists, "ASSET_EXISTS",
                "asset \(request.code) exists with \(existing.decimalPlaces) decimal places")
        }
    }

    public static func houseWallets(asset: String, now: Timestamp) -> [WalletRecord] {
        (0..<Limits.houseSlotCount).map {
            WalletRecord(id: Reserved.houseWalletID(asset: asset, slot: $0), createdAt: now)
        }
    }
}
