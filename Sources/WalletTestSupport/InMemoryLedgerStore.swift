import WalletDomain

/// The reference store: the whole ledger in one `LedgerState`, behind an
/// actor. Same rules (it calls `Ledger`), no I/O; for domain tests.
public actor InMemoryLedgerStore: LedgerStore {
    public private(set) var state = LedgerState()
    private var historyIDs: [String: [String]] = [:]
    private var clock: @Sendable () -> Timestamp

    public init(clock: @escaping @Sendable () -> Timestamp) {
        self.clock = clock
    }

    public func setClock(_ clock: @escaping @Sendable () -> Timestamp) {
        self.clock = clock
    }

    public func execute(_ command: Command, deadline: ContinuousClock.Instant?) throws(LedgerError) -> OperationResult {
        if let deadline, deadline <= .now { throw LedgerError.deadlineExceeded() }
        state.resetChanges()
        var result = Ledger.apply(command, to: &state, now: clock())
        if case .failure(let error) = result, let asset = error.houseSlotsFullAsset {
            // Every slot is at hand here: open the next one (a new slot has
            // room for any amount) and apply again.
            let next = (state.houseSlots(asset: asset).last ?? -1) + 1
            precondition(next < Limits.houseSlotsMax, "house of \(asset) has \(next) slots")
            state.create(wallet: WalletRecord(id: Reserved.houseWalletID(asset: asset, slot: next), createdAt: clock()))
            result = Ledger.apply(command, to: &state, now: clock())
            precondition(result.failure?.houseSlotsFullAsset == nil, "a new house slot had no room")
        }
        for id in state.insertedTransactionIDs {
            guard let record = state.transactions[id], record.kind != .tombstone else { continue }
            for walletID in record.walletIDs where !Reserved.isReserved(walletID) {
                historyIDs[walletID, default: []].append(id)
            }
        }
        return try result.get()
    }

    public func createWallet(_ request: CreateWallet) throws(LedgerError) -> (wallet: WalletRecord, created: Bool) {
        if let existing = state.wallets[request.walletID] {
            try Registry.existingWallet(existing, matches: request)
            return (existing, false)
        }
        let wallet = WalletRecord(
            id: request.walletID, overdraftLimit: request.overdraftLimit, labels: request.labels, createdAt: clock())
        state.create(wallet: wallet)
        return (wallet, true)
    }

    public func defineAsset(_ request: DefineAsset) throws(LedgerError) -> (asset: Asset, created: Bool) {
        if let existing = state.assets[request.code] {
            try Registry.existingAsset(existing, matches: request)
            return (existing, false)
        }
        let asset = Asset(code: request.code, decimalPlaces: request.decimalPlaces)
        state.assets[request.code] = asset
        for house in Registry.houseWallets(asset: request.code, now: clock()) where state.wallets[house.id] == nil {
            state.create(wallet: house)
        }
        return (asset, true)
    }

    public func balances(walletID: String, asset: String) throws(LedgerError) -> [Balance] {
        guard state.wallets[walletID] != nil else { throw LedgerError.walletNotFound(walletID) }
        let codes = asset.isEmpty ? state.assets(ofWallet: walletID) : [asset]
        if !asset.isEmpty, state.assets[asset] == nil { throw LedgerError.assetNotFound(asset) }
        return codes.map { state.balance(walletID: walletID, asset: $0, now: clock()) }
    }

    public func transaction(id: String) throws(LedgerError) -> TransactionRecord {
        guard let record = state.transactions[id], record.kind != .tombstone else {
            throw LedgerError.transactionNotFound(id)
        }
        return record
    }

    public func history(walletID: String, limit: Int, before: Int64?) throws(LedgerError) -> HistoryPage {
        guard state.wallets[walletID] != nil else { throw LedgerError.walletNotFound(walletID) }
        let ids = historyIDs[walletID] ?? []
        // Cursor = 1-based position in the wallet's history.
        let end = before.map { Int($0) - 1 } ?? ids.count
        let start = Swift.max(0, end - limit)
        let page = ids[start..<Swift.max(start, end)].reversed().compactMap { state.transactions[$0] }
        return HistoryPage(transactions: Array(page), nextCursor: start > 0 ? Int64(start + 1) : nil)
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { error } else { nil }
    }
}
