import WalletDomain

/// A read a worker answers in groups: everything of the kind it has queued
/// with one round trip, through its relay (see `StoreWorker`).
enum GroupedRead: Sendable {
    case balance(PendingBalanceRead)
    case transaction(PendingTransactionRead)
    case history(PendingHistoryRead)

    var deadline: ContinuousClock.Instant? {
        switch self {
        case .balance(let read): read.deadline
        case .transaction(let read): read.deadline
        case .history(let read): read.deadline
        }
    }

    /// The rows the read may bring back, which a cycle's reads share a
    /// budget of (see `StoreWorker`): a page of a thousand transactions
    /// weighs what a thousand balances do.
    var weight: Int {
        switch self {
        case .balance, .transaction: 1
        case .history(let read): read.limit + 1  // limit: 1...Limits.pageSizeMax
        }
    }

    /// Answers `error`, as a relay action.
    func failure(_ error: LedgerError) -> @Sendable () -> Void {
        switch self {
        case .balance(let read): { read.completion(.failure(error)) }
        case .transaction(let read): { read.completion(.failure(error)) }
        case .history(let read): { read.completion(.failure(error)) }
        }
    }
}

/// A GetTransaction waiting on a worker.
struct PendingTransactionRead: Sendable {
    let id: String
    let deadline: ContinuousClock.Instant?
    let completion: @Sendable (Result<TransactionRecord, LedgerError>) -> Void
}

/// Answers every transaction read of a group with one round trip (the
/// transactions and their entries, pipelined).
enum TransactionReads {
    static func run(_ reads: [PendingTransactionRead], on connection: PostgresConnection) throws
        -> [Result<TransactionRecord, LedgerError>]
    {
        let found = try BatchExecutor(connection: connection).loadTransactions(Set(reads.map(\.id)))
        return reads.map { read in
            // A tombstone only reserves an id: to a reader it does not exist.
            guard let record = found[read.id], record.kind != .tombstone else {
                return .failure(.transactionNotFound(read.id))
            }
            return .success(record)
        }
    }
}

/// A GetBalance waiting on a worker.
struct PendingBalanceRead: Sendable {
    let walletID: String
    /// Empty: every asset the wallet holds.
    let asset: String
    let deadline: ContinuousClock.Instant?
    let completion: @Sendable (Result<[Balance], LedgerError>) -> Void
}

/// Answers every balance read a worker has queued with one round trip and
/// one snapshot (REPEATABLE READ: balances and holds as of the same commit,
/// and the database's clock for hold expiry), instead of a round trip each:
/// reads group like writes do. Runs on a store worker's thread.
enum BalanceReads {
    static func run(_ reads: [PendingBalanceRead], on connection: PostgresConnection) throws(PostgresError)
        -> [Result<[Balance], LedgerError>]
    {
        let walletIDs = Array(Set(reads.map(\.walletID))).sorted()
        let codes = Array(Set(reads.map(\.asset).filter { !$0.isEmpty })).sorted()
        let wallets = PostgresBinaryArray.text(walletIDs)
        let rows = Array(
            try connection.pipeline([
                ("begin_snapshot", []), ("load_wallet_ids", [wallets]),
                ("load_asset_codes", [PostgresBinaryArray.text(codes)]), ("load_balances", [wallets]),
                ("load_open_holds", [wallets]), ("clock", []), ("commit", []),
            ])[1...])
        var existingWallets = Set<String>()
        for row in 0..<rows[0].rowCount { existingWallets.insert(rows[0].string(row: row, column: 0) ?? "") }
        var existingAssets = Set<String>()
        for row in 0..<rows[1].rowCount { existingAssets.insert(rows[1].string(row: row, column: 0) ?? "") }
        var state = LedgerState()
        BatchExecutor.loadBalances(rows[2], into: &state)
        // Each wallet's assets (balances and open holds), found once for the
        // whole batch rather than by a scan of every loaded key per read.
        var assetsOfWallet: [String: Set<String>] = [:]
        for row in 0..<rows[2].rowCount {
            assetsOfWallet[rows[2].string(row: row, column: "wallet_id") ?? "", default: []].insert(
                rows[2].string(row: row, column: "asset") ?? "")
        }
        for row in 0..<rows[3].rowCount {
            let hold = RowCoding.transaction(rows[3], row: row)
            state.load(transaction: hold)
            assetsOfWallet[hold.walletID, default: []].insert(hold.asset)
        }
        let now = rows[4].int64(row: 0, column: 0) ?? RowCoding.microseconds()
        return reads.map { read in
            guard existingWallets.contains(read.walletID) else { return .failure(.walletNotFound(read.walletID)) }
            if !read.asset.isEmpty, !existingAssets.contains(read.asset) {
                return .failure(.assetNotFound(read.asset))
            }
            let codes = read.asset.isEmpty ? (assetsOfWallet[read.walletID] ?? []).sorted() : [read.asset]
            return .success(codes.map { state.balance(walletID: read.walletID, asset: $0, now: now) })
        }
    }
}

/// A ListTransactions page waiting on a worker.
struct PendingHistoryRead: Sendable {
    let walletID: String
    let limit: Int
    /// The cursor of the previous page's last row; nil for the first page.
    let before: Int64?
    let deadline: ContinuousClock.Instant?
    let completion: @Sendable (Result<HistoryPage, LedgerError>) -> Void
}

/// Answers every history page a worker has queued with two round trips
/// and one snapshot: the pages' positions (each page its own `LIMIT`,
/// through one statement), then their transactions and entries. Each page
/// is the one a read alone would get: newest first, `limit` rows, and a
/// cursor when a row beyond them exists.
enum HistoryReads {
    static func run(_ reads: [PendingHistoryRead], on connection: PostgresConnection) throws
        -> [Result<HistoryPage, LedgerError>]
    {
        let walletIDs = reads.map(\.walletID)
        let first = try connection.pipeline([
            ("begin_snapshot", []),
            ("load_wallet_ids", [PostgresBinaryArray.text(Array(Set(walletIDs)).sorted())]),
            (
                "load_history_pages",
                [
                    PostgresBinaryArray.text(walletIDs), PostgresBinaryArray.int64(reads.map { $0.before ?? .max }),
                    // One row more than asked: its presence says there is a next page.
                    PostgresBinaryArray.int32(reads.map { Int32(clamping: $0.limit + 1) }),
                ]
            ),
        ])
        var existing = Set<String>()
        for row in 0..<first[1].rowCount { existing.insert(first[1].string(row: row, column: 0) ?? "") }
        // Rows come page by page (`ordinal`, from 1), newest first within a page.
        var positions = Array(repeating: [(position: Int64, id: String)](), count: reads.count)
        let pages = first[2]
        for row in 0..<pages.rowCount {
            let page = Int(pages.int64(row: row, column: 0) ?? 0) - 1
            guard positions.indices.contains(page) else { continue }
            positions[page].append(
                (pages.int64(row: row, column: 1) ?? 0, pages.string(row: row, column: 2) ?? ""))
        }
        let ids = Set(positions.joined().map(\.id))
        var records: [String: TransactionRecord] = [:]
        if ids.isEmpty {
            _ = try connection.pipeline([(name: "commit", parameters: [PostgresParameter]())])
        } else {
            let parameter = PostgresBinaryArray.text(ids.sorted())
            let second = try connection.pipeline([
                ("load_transactions", [parameter]), ("load_entries", [parameter]), ("commit", []),
            ])
            records = BatchExecutor.transactions(second[0], entries: second[1])
        }
        return zip(reads, positions).map { read, rows in
            guard existing.contains(read.walletID) else { return .failure(.walletNotFound(read.walletID)) }
            let page = rows.prefix(read.limit)
            return .success(
                HistoryPage(
                    transactions: page.compactMap { records[$0.id] },
                    nextCursor: rows.count > read.limit ? page.last?.position : nil))
        }
    }
}
