import WalletDomain

#if canImport(Glibc)
    import Glibc
#endif

/// Why a batch must run again from the start.
enum BatchFailure: Error {
    /// The batch needs more wallets locked than it took (a target's wallet
    /// became known), or another instance wrote one of its transaction ids
    /// first. Nothing was written.
    case retry(lockWallets: Set<String>)
    /// `outcomeUnknown`: the connection broke while the batch's COMMIT was
    /// on its way, so it may have been recorded. Any other failure rolled
    /// the batch back whole: nothing of it was recorded.
    case database(PostgresError, outcomeUnknown: Bool)
}

/// A failure of the pipeline that carries a batch's writes and its COMMIT.
private struct CommitFailure: Error {
    let error: PostgresError
}

/// Wall-clock time of each step of one batch, in microseconds from its start.
struct BatchPhases: Sendable, CustomStringConvertible {
    enum Step: Int, CaseIterable {
        case start, targets, locked, applied, encoded, committed
    }
    private var at: [Int64] = Array(repeating: -1, count: Step.allCases.count)

    mutating func mark(_ step: Step) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        at[step.rawValue] = Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }

    /// Microseconds from start to the last step reached.
    var totalMicroseconds: Int64 {
        guard at[0] >= 0, let last = at.last(where: { $0 >= 0 }) else { return 0 }
        return last - at[0]
    }

    var description: String {
        let names: [Step: String] = [
            .targets: "look up targets", .locked: "lock + read", .applied: "rules",
            .encoded: "encode writes", .committed: "write + commit",
        ]
        var parts: [String] = []
        var previous = at[0]
        for step in Step.allCases.dropFirst() where at[step.rawValue] >= 0 {
            let micros = at[step.rawValue] - previous
            parts.append("\(names[step]!) \(micros / 1000).\(micros % 1000 / 100)")
            previous = at[step.rawValue]
        }
        return parts.joined(separator: ", ") + " ms"
    }
}

/// Applies commands in one database transaction: look up the transactions
/// they name, lock every wallet they touch (one statement, sorted by id, so
/// two batches never wait on each other in a cycle), load those wallets'
/// balances and open holds, apply the commands in order through `Ledger`,
/// write what changed, commit. Runs on a store worker's thread.
struct BatchExecutor {
    let connection: PostgresConnection
    /// The house slot this executor's batches post to: one per worker, so
    /// workers never wait on each other for a house row.
    let houseSlot: Int?
    /// Per asset, the slot this executor moved to when its own had no room
    /// for an amount (see `followHouseSide`).
    private(set) var houseSlotByAsset: [String: Int] = [:]
    /// Set by `apply` when a command needs a house slot of this asset with
    /// room and the batch holds none: the results stop before it.
    private(set) var houseSlotsWanted: String?
    private var assets: [String: Asset] = [:]
    /// Where the last `apply` spent its time (for the slow-batch log).
    private(set) var phases = BatchPhases()

    init(connection: PostgresConnection, houseSlot: Int? = nil) {
        self.connection = connection
        self.houseSlot = houseSlot
    }

    /// Results for a prefix of `commands`: all of them unless a command needs
    /// a wallet that this batch did not lock (its target was written earlier
    /// in the same batch); the caller runs the rest in a new batch.
    ///
    /// Two or three round trips per batch, whatever its size (libpq pipeline
    /// mode): [BEGIN + look up targets]; [BEGIN +] lock the wallets + load
    /// their balances, holds and the named transactions; every write + COMMIT.
    mutating func apply(
        _ commands: [Command], hints: [WalletHint?], prepared: [String: PreparedRow] = [:], now: Timestamp,
        lockHint: Set<String>
    ) throws(BatchFailure) -> [Result<OperationResult, LedgerError>] {
        phases = BatchPhases()
        phases.mark(.start)
        houseSlotsWanted = nil
        do {
            return try applyInTransaction(commands, hints: hints, prepared: prepared, now: now, lockHint: lockHint)
        } catch let failure as BatchFailure {
            rollback()
            throw failure
        } catch let failure as CommitFailure {
            rollback()
            throw Self.batchFailure(failure.error, duringCommit: true)
        } catch let error as PostgresError {
            rollback()
            throw Self.batchFailure(error, duringCommit: false)
        } catch {
            rollback()
            throw .database(PostgresError(kind: .unexpectedResult, message: "\(error)"), outcomeUnknown: false)
        }
    }

    /// What a failed attempt tells the worker. The batch was rolled back
    /// (or its session is gone).
    private static func batchFailure(_ error: PostgresError, duringCommit: Bool) -> BatchFailure {
        // Another instance committed one of our transaction ids first:
        // run again, and see it as a replay or a mismatch.
        if error.isUniqueViolation, error.constraint == "transactions_pkey" {
            return .retry(lockWallets: [])
        }
        // Only a session lost while the COMMIT was on its way leaves the
        // outcome unknown; a statement the server refused aborted the
        // transaction, COMMIT included.
        return .database(error, outcomeUnknown: duringCommit && error.failureClass == .connectionLost)
    }

    private func rollback() {
        connection.rollbackQuietly()
    }

    /// `now` is a fallback: the batch uses the database's clock, read after
    /// its locks.
    private mutating func applyInTransaction(
        _ commands: [Command], hints: [WalletHint?], prepared: [String: PreparedRow], now: Timestamp,
        lockHint: Set<String>
    ) throws -> [Result<OperationResult, LedgerError>] {
        // What each command names itself; a later phase rebuilds a
        // command's footprint only when a transaction it names turned up.
        let named = commands.map { self.footprint(of: $0) }
        func footprint(_ index: Int, known: [String: TransactionRecord]) -> Footprint {
            Ledger.footprint(
                of: commands[index], known: known, houseSlot: houseSlot, houseSlotByAsset: houseSlotByAsset,
                base: named[index])
        }
        var transactionIDs = Set<String>()
        for footprint in named { transactionIDs.formUnion(footprint.transactionIDs) }
        let idsParameter = PostgresBinaryArray.text(transactionIDs.sorted())

        // Commands that name their wallets (Credit, Debit, Authorize,
        // Transfer), or whose target's wallet the store remembers (a hint),
        // need no lookup before locking: two round trips in all. The others
        // find their wallets through the transaction they target: one more.
        var known: [String: TransactionRecord] = [:]
        var lockSet = lockHint
        for hint in hints.compactMap({ $0 }) {
            lockSet.insert(hint.walletID)
            lockSet.insert(
                Reserved.houseWalletID(
                    asset: hint.asset, forWallet: hint.walletID, slot: houseSlotByAsset[hint.asset] ?? houseSlot))
        }
        let targetsFirst = zip(commands, hints).contains { $0.primaryWalletID == nil && $1 == nil }
        var reads: [(name: String, parameters: [PostgresParameter])] = [("begin", [])]
        if targetsFirst {
            let first = try connection.pipeline(
                reads + [("load_transactions", [idsParameter]), ("load_entries", [idsParameter])])
            known = Self.transactions(first[1], entries: first[2])
            reads = []
            phases.mark(.targets)
        }
        for index in commands.indices { lockSet.formUnion(footprint(index, known: known).walletIDs) }

        // The locks, then (under them) everything the rules read.
        let walletsParameter = PostgresBinaryArray.text(lockSet.sorted())
        let readsStart = reads.count
        reads += [
            ("lock_wallets", [walletsParameter]), ("load_balances", [walletsParameter]),
            ("load_open_holds", [walletsParameter]),
            // Read (again) under the locks: a target's status may have changed.
            // The rows are locked too: a tombstone that two batches on other
            // wallets both want to turn into a pinned rejection goes to one.
            ("load_transactions_locked", [idsParameter]), ("load_entries", [idsParameter]),
            // The time the rules use, taken after the locks from the one
            // clock every instance shares: hold expiry cannot depend on which
            // server's clock runs ahead, or on how long a batch waited.
            ("clock", []),
        ]
        let needsAssets = !assetsCached(for: commands, known: known)
        if needsAssets { reads.append(("load_assets", [])) }
        let second = Array(try connection.pipeline(reads)[readsStart...])
        phases.mark(.locked)
        known = Self.transactions(second[3], entries: second[4])
        let now = second[5].int64(row: 0, column: 0) ?? now
        var needed = lockSet
        for index in commands.indices { needed.formUnion(footprint(index, known: known).walletIDs) }
        // A replayed or mismatched id may belong to a wallet not locked yet.
        if !needed.isSubset(of: lockSet) { throw BatchFailure.retry(lockWallets: needed) }
        if needsAssets, let rows = second.last { cacheAssets(rows) }

        var state = LedgerState()
        state.houseSlot = houseSlot
        state.houseSlotByAsset = houseSlotByAsset
        state.assets = assets
        for row in 0..<second[0].rowCount { state.load(wallet: RowCoding.wallet(second[0], row: row)) }
        Self.loadBalances(second[1], into: &state)
        for row in 0..<second[2].rowCount { state.load(transaction: RowCoding.transaction(second[2], row: row)) }
        for record in known.values { state.load(transaction: record) }

        var results: [Result<OperationResult, LedgerError>] = []
        results.reserveCapacity(commands.count)
        for (index, command) in commands.enumerated() {
            if !footprint(index, known: state.transactions).walletIDs.isSubset(of: lockSet) { break }
            let result = Ledger.apply(command, to: &state, now: now)
            if case .failure(let error) = result, let asset = error.houseSlotsFullAsset {
                // Nothing of this command was applied; the ones before it commit.
                houseSlotsWanted = asset
                break
            }
            results.append(result)
        }

        phases.mark(.applied)
        let statements = writes(state, prepared: prepared) + [("commit", [])]
        phases.mark(.encoded)
        do {
            _ = try connection.pipeline(statements)
        } catch {
            throw CommitFailure(error: error)
        }
        phases.mark(.committed)
        return results
    }

    /// What `command` locks with nothing looked up yet, house slots as this
    /// executor places them.
    func footprint(of command: Command) -> Footprint {
        Ledger.footprint(of: command, known: [:], houseSlot: houseSlot, houseSlotByAsset: houseSlotByAsset)
    }

    // MARK: House slots

    /// Every house slot wallet of `asset` (outside a batch: the locks come
    /// with the batch that then holds them).
    func houseSlotWallets(asset: String) throws(PostgresError) -> [String] {
        let rows = try connection.pipeline([("load_house_slots", [PostgresParameter.text(asset)])])[0]
        return (0..<rows.rowCount).compactMap { rows.string(row: $0, column: 0) }.filter {
            Reserved.houseSlot(of: $0, asset: asset) != nil
        }
    }

    /// Opens the next house slot of `asset` (one past the highest there is)
    /// and returns its wallet id. Committed at once, on its own: an empty
    /// system wallet is harmless, and two instances opening the same one
    /// meet in ON CONFLICT DO NOTHING and share it.
    func openHouseSlot(asset: String, existing: [String]) throws(PostgresError) -> String {
        let highest = existing.compactMap { Reserved.houseSlot(of: $0, asset: asset) }.max() ?? -1
        precondition(highest + 1 < Limits.houseSlotsMax, "house of \(asset) has \(highest + 1) slots")
        let id = Reserved.houseWalletID(asset: asset, slot: highest + 1)
        _ = try connection.pipeline([
            (
                "open_house_slot",
                [
                    PostgresParameter.text(id), PostgresParameter.text(String(RowCoding.microseconds())),
                    PostgresParameter.text(hexString(HashChain.genesis)),
                ]
            )
        ])
        return id
    }

    /// After a batch that needed a house slot with room for `asset`: this
    /// executor posts that asset to the slot its results went to from now
    /// on, so that the next batches do not look for room again.
    mutating func followHouseSide(of results: [Result<OperationResult, LedgerError>], asset: String) {
        for case .success(let outcome) in results.reversed() where !outcome.replayed {
            for entry in outcome.transaction.entries where entry.asset == asset {
                guard let slot = Reserved.houseSlot(of: entry.walletID, asset: asset) else { continue }
                houseSlotByAsset[asset] = slot
                return
            }
        }
    }

    // MARK: Loading

    /// One lookup outside a batch (GetTransaction, history pages).
    func loadTransactions(_ ids: Set<String>) throws -> [String: TransactionRecord] {
        guard !ids.isEmpty else { return [:] }
        let parameter = PostgresBinaryArray.text(ids.sorted())
        let results = try connection.pipeline([("load_transactions", [parameter]), ("load_entries", [parameter])])
        return Self.transactions(results[0], entries: results[1])
    }

    func assetsCached(for commands: [Command], known: [String: TransactionRecord]) -> Bool {
        for command in commands {
            let code: String
            switch command {
            case .credit(let c): code = c.asset
            case .debit(let c): code = c.asset
            case .authorize(let c): code = c.asset
            case .transfer(let c): code = c.asset
            case .settle, .rollback, .reverse, .expire: continue
            }
            if assets[code] == nil { return false }
        }
        return known.values.allSatisfy { $0.asset.isEmpty || assets[$0.asset] != nil }
    }

    /// Assets never change once defined, so the cache only grows.
    mutating func cacheAssets(_ rows: PostgresResult) {
        for row in 0..<rows.rowCount {
            guard let code = rows.string(row: row, column: "code") else { continue }
            assets[code] = Asset(code: code, decimalPlaces: UInt32(rows.int64(row: row, column: "decimal_places") ?? 0))
        }
    }

    static func loadBalances(_ rows: PostgresResult, into state: inout LedgerState) {
        for row in 0..<rows.rowCount {
            state.load(
                posted: rows.int64(row: row, column: "posted") ?? 0,
                for: BalanceKey(
                    walletID: rows.string(row: row, column: "wallet_id") ?? "",
                    asset: rows.string(row: row, column: "asset") ?? "",
                    bucket: rows.string(row: row, column: "bucket") ?? ""))
        }
    }

    static func transactions(_ rows: PostgresResult, entries: PostgresResult) -> [String: TransactionRecord] {
        var records: [String: TransactionRecord] = [:]
        for row in 0..<rows.rowCount {
            let record = RowCoding.transaction(rows, row: row)
            records[record.id] = record
        }
        var byTransaction: [String: [(Int, Entry)]] = [:]
        for row in 0..<entries.rowCount {
            let (transactionID, index, entry) = RowCoding.entry(entries, row: row)
            byTransaction[transactionID, default: []].append((index, entry))
        }
        for (id, list) in byTransaction {
            records[id]?.entries = list.sorted { $0.0 < $1.0 }.map(\.1)
        }
        return records
    }

    // MARK: Writing

    /// Every statement that records what the batch changed, in one list.
    func writes(_ state: LedgerState, prepared: [String: PreparedRow] = [:]) -> [(
        name: String, parameters: [PostgresParameter]
    )] {
        var statements: [(name: String, parameters: [PostgresParameter])] = []
        let inserted = state.insertedTransactionIDs.compactMap { state.transactions[$0] }
        // Ids in one global order: two batches inserting the same new ids
        // wait on each other in a line, not a cycle.
        let insertedByID = inserted.sorted { $0.id < $1.id }
        let replaced = state.replacedTransactionIDs.sorted().compactMap { state.transactions[$0] }
        if !replaced.isEmpty {
            statements.append(("replace_transactions", transactionColumns(replaced, prepared: prepared)))
        }
        if !inserted.isEmpty || !replaced.isEmpty {
            if !inserted.isEmpty {
                // No ON CONFLICT: an id another instance wrote first fails the
                // whole pipeline, before COMMIT (see `apply`).
                statements.append(("insert_transactions", transactionColumns(insertedByID, prepared: prepared)))
            }
            var entryWallets: [String] = []
            var entrySequences: [Int64] = []
            var entryTransactions: [String] = []
            var entryIndexes: [Int32] = []
            var entryAssets: [String] = []
            var entryBuckets: [String] = []
            var entryAmounts: [Int64] = []
            var entryHashes: [[UInt8]] = []
            var historyWallets: [String] = []
            var historyTransactions: [String] = []
            for record in inserted + replaced {
                for (index, entry) in record.entries.enumerated() {
                    entryWallets.append(entry.walletID)
                    entrySequences.append(Int64(entry.sequence))
                    entryTransactions.append(record.id)
                    entryIndexes.append(Int32(index))
                    entryAssets.append(entry.asset)
                    entryBuckets.append(entry.bucket)
                    entryAmounts.append(entry.amount)
                    entryHashes.append(entry.hash)
                }
                guard record.kind != .tombstone else { continue }
                for walletID in record.walletIDs where !Reserved.isReserved(walletID) {
                    historyWallets.append(walletID)
                    historyTransactions.append(record.id)
                }
            }
            if !entryWallets.isEmpty {
                statements.append(
                    (
                        "insert_entries",
                        [
                            PostgresBinaryArray.text(entryWallets), PostgresBinaryArray.int64(entrySequences),
                            PostgresBinaryArray.text(entryTransactions), PostgresBinaryArray.int32(entryIndexes),
                            PostgresBinaryArray.text(entryAssets), PostgresBinaryArray.text(entryBuckets),
                            PostgresBinaryArray.int64(entryAmounts), PostgresBinaryArray.bytea(entryHashes),
                        ]
                    ))
            }
            if !historyWallets.isEmpty {
                statements.append(
                    (
                        "insert_history",
                        [PostgresBinaryArray.text(historyWallets), PostgresBinaryArray.text(historyTransactions)]
                    ))
            }
        }
        let statusOnly = state.updatedTransactionIDs.subtracting(state.replacedTransactionIDs)
        if !statusOnly.isEmpty {
            let ids = statusOnly.sorted()
            statements.append(
                (
                    "update_statuses",
                    [
                        PostgresBinaryArray.text(ids),
                        PostgresBinaryArray.text(ids.map { state.transactions[$0]?.status.rawValue }),
                    ]
                ))
        }
        // Every balance row of a locked wallet was loaded under its lock, so
        // whether a row exists is known: updates and inserts go apart, and
        // neither pays for ON CONFLICT's probe and row lock.
        var updatedBalances: [BalanceKey] = []
        var newBalances: [BalanceKey] = []
        for key in state.touchedBalances {
            if state.loadedBalances.contains(key) { updatedBalances.append(key) } else { newBalances.append(key) }
        }
        for (name, keys) in [("update_balances", updatedBalances), ("insert_balances", newBalances)] where !keys.isEmpty
        {
            statements.append(
                (
                    name,
                    [
                        PostgresBinaryArray.text(keys.map(\.walletID)),
                        PostgresBinaryArray.text(keys.map(\.asset)),
                        PostgresBinaryArray.text(keys.map(\.bucket)),
                        PostgresBinaryArray.int64(keys.map { state.posted($0) }),
                    ]
                ))
        }
        if !state.touchedWalletIDs.isEmpty {
            let wallets = state.touchedWalletIDs.sorted().compactMap { state.wallets[$0] }
            statements.append(
                (
                    "update_chain_heads",
                    [
                        PostgresBinaryArray.text(wallets.map(\.id)),
                        PostgresBinaryArray.int64(wallets.map { Int64($0.lastSequence) }),
                        PostgresBinaryArray.bytea(wallets.map(\.lastHash)),
                    ]
                ))
        }
        // Last, so that its position is taken under every lock this batch
        // holds (migration 7): batches on one wallet take positions in the
        // order they commit.
        if let events = Self.eventBatch(state) { statements.append(events) }
        return statements
    }

    /// The batch's one row of events: the records written and statuses
    /// changed, in the order the rules made them, and the player wallets
    /// they touch; nil when it made none (every command a replay).
    static func eventBatch(_ state: LedgerState) -> (name: String, parameters: [PostgresParameter])? {
        guard !state.events.isEmpty else { return nil }
        var wallets = Set<String>()
        for event in state.events {
            guard let record = state.transactions[event.transactionID] else {
                preconditionFailure("event of a transaction the batch does not hold: \(event.transactionID)")
            }
            for walletID in record.walletIDs where !Reserved.isReserved(walletID) { wallets.insert(walletID) }
        }
        return (
            "insert_event_batch",
            [
                PostgresBinaryArray.text(state.events.map(\.transactionID)),
                PostgresBinaryArray.text(state.events.map(\.status.rawValue)),
                PostgresBinaryArray.text(wallets.sorted()),
            ]
        )
    }

    private func transactionColumns(_ records: [TransactionRecord], prepared: [String: PreparedRow])
        -> [PostgresParameter]
    {
        func text(_ values: (TransactionRecord) -> String) -> PostgresParameter {
            PostgresBinaryArray.text(records.map(values))
        }
        func number(_ values: (TransactionRecord) -> Int64) -> PostgresParameter {
            PostgresBinaryArray.int64(records.map(values))
        }
        // What depends on the request alone was computed before the command
        // queued; a row whose request is not that command's (a rejection
        // pinned on a tombstone keeps its own) is encoded here.
        var requests: [String] = []
        var hashes: [[UInt8]] = []
        var metadata: [String] = []
        requests.reserveCapacity(records.count)
        hashes.reserveCapacity(records.count)
        metadata.reserveCapacity(records.count)
        for record in records {
            let row: PreparedRow
            if let cached = prepared[record.id], cached.matches(record) {
                row = cached
            } else {
                row = PreparedRow(record)
            }
            requests.append(row.encodedRequest)
            hashes.append(row.requestHash)
            metadata.append(row.metadataJSON)
        }
        // Each row's entry keys as one array literal per row (unnest cannot
        // carry an array per row; the statement casts each back).
        let entryWallets = records.map { PostgresText.arrayLiteral($0.entries.map { Optional($0.walletID) }) }
        let entrySequences = records.map { PostgresText.arrayLiteral($0.entries.map { Int64($0.sequence) }) }
        return [
            text(\.id), text(\.kind.rawValue), text(\.status.rawValue), text(\.walletID), text(\.asset),
            number(\.amount), number(\.createdAt), PostgresBinaryArray.text(metadata), text(\.targetID),
            text { RowCoding.encodeFunding($0.funding) }, number(\.expiresAt), text(\.reason),
            text(\.counterpartyWalletID), PostgresBinaryArray.bool(records.map(\.targetFound)),
            PostgresBinaryArray.text(requests), PostgresBinaryArray.bytea(hashes),
            PostgresBinaryArray.text(entryWallets), PostgresBinaryArray.text(entrySequences), text(\.caller),
        ]
    }
}

/// The statements a worker prepares on each connection.
package enum Statements {
    /// Every statement a worker runs looks rows up by key. A prepared
    /// statement's generic plan is made once per session, and one made while
    /// a table is still small (a new database) picks a sequential scan and
    /// keeps it as the table grows, until an ANALYZE invalidates it: seen here
    /// as load_transactions and load_entries going from microseconds to
    /// milliseconds per batch within seconds of a fresh start. Workers never
    /// want a sequential scan, so they rule them out. (Session state: with a
    /// transaction-mode pooler, set it on the role instead:
    /// `ALTER ROLE … SET enable_seqscan = off`.) With only key lookups left,
    /// the generic plan is as good as a custom one, so workers also skip the
    /// replanning Postgres would otherwise do for statements with array
    /// parameters (`plan_cache_mode = force_generic_plan`).
    package static func configureSession(_ connection: PostgresConnection) throws(PostgresError) {
        try connection.executeScript("SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan")
    }

    package static func prepareAll(on connection: PostgresConnection) {
        connection.prepare("begin", "BEGIN")
        connection.prepare("begin_snapshot", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        connection.prepare("commit", "COMMIT")
        connection.prepare(
            "load_transactions",
            "SELECT \(RowCoding.transactionColumns) FROM transactions WHERE transaction_id = ANY($1::text[])")
        connection.prepare(
            "load_transactions_locked",
            """
            SELECT \(RowCoding.transactionColumns) FROM transactions WHERE transaction_id = ANY($1::text[])
            ORDER BY transaction_id FOR UPDATE
            """)
        connection.prepare("clock", "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
        // A transaction's entries, through the keys its row keeps (migration
        // 4): ids without a row, or a row without entries, cost no probe of
        // entries (each id probes the transactions' key instead). The
        // entries' lookup is fenced (a LATERAL subquery with OFFSET 0, so the
        // planner cannot flatten it): unfenced, the generic plan made on a new
        // database's empty tables hash-joined a scan of the whole entries
        // index, and kept it as the table grew (5 ms a batch after a minute).
        connection.prepare(
            "load_entries",
            """
            SELECT e.transaction_id, e.entry_index, e.wallet_id, e.asset, e.bucket, e.amount, e.sequence, e.hash
            FROM transactions t,
                LATERAL unnest(t.entry_wallets, t.entry_sequences) AS k(wallet_id, sequence),
                LATERAL (SELECT * FROM entries e WHERE e.wallet_id = k.wallet_id AND e.sequence = k.sequence
                         OFFSET 0) e
            WHERE t.transaction_id = ANY($1::text[]) AND e.transaction_id = t.transaction_id
            """)
        connection.prepare(
            "lock_wallets",
            """
            SELECT wallet_id, overdraft_limit, labels::text AS labels, created_at, last_sequence, last_hash
            FROM wallets WHERE wallet_id = ANY($1::text[]) ORDER BY wallet_id FOR UPDATE
            """)
        connection.prepare("load_assets", "SELECT code, decimal_places FROM assets")
        // An asset's house slots, through the system wallets' index (migration 6).
        connection.prepare(
            "load_house_slots",
            "SELECT wallet_id FROM wallets WHERE is_system AND split_part(wallet_id, ':', 3) = $1::text")
        connection.prepare(
            "open_house_slot",
            """
            INSERT INTO wallets (wallet_id, is_system, created_at, last_hash)
            VALUES ($1, true, $2::bigint, decode($3, 'hex')) ON CONFLICT (wallet_id) DO NOTHING
            """)
        connection.prepare(
            "create_wallets",
            """
            INSERT INTO wallets (wallet_id, overdraft_limit, labels, created_at, last_hash)
            SELECT id, overdraft_limit, labels::jsonb, $4, decode($5, 'hex')
            FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(id, overdraft_limit, labels)
            ORDER BY id
            ON CONFLICT (wallet_id) DO NOTHING
            RETURNING wallet_id
            """)
        connection.prepare(
            "load_wallets",
            """
            SELECT wallet_id, overdraft_limit, labels::text AS labels, created_at, last_sequence, last_hash
            FROM wallets WHERE wallet_id = ANY($1::text[])
            """)
        connection.prepare("load_wallet_ids", "SELECT wallet_id FROM wallets WHERE wallet_id = ANY($1::text[])")
        // History pages (ListTransactions), many at once: each row of the
        // arrays is one page (its wallet, the cursor it starts below, its
        // LIMIT), answered newest first through the wallet's history index.
        connection.prepare(
            "load_history_pages",
            """
            SELECT u.ordinal, h.position, h.transaction_id
            FROM unnest($1::text[], $2::bigint[], $3::int[]) WITH ORDINALITY AS u(wallet_id, before, take, ordinal),
                LATERAL (SELECT w.position, w.transaction_id FROM wallet_history w
                         WHERE w.wallet_id = u.wallet_id AND w.position < u.before
                         ORDER BY w.position DESC LIMIT u.take) h
            ORDER BY u.ordinal, h.position DESC
            """)
        connection.prepare("load_asset_codes", "SELECT code FROM assets WHERE code = ANY($1::text[])")
        connection.prepare(
            "load_balances", "SELECT wallet_id, asset, bucket, posted FROM balances WHERE wallet_id = ANY($1::text[])")
        connection.prepare(
            "load_open_holds",
            """
            SELECT \(RowCoding.transactionColumns) FROM transactions
            WHERE wallet_id = ANY($1::text[]) AND kind = 'AUTHORIZE' AND status = 'PENDING'
            """)
        connection.prepare(
            "insert_transactions",
            """
            INSERT INTO transactions (transaction_id, kind, status, wallet_id, asset, amount, created_at, metadata,
                target_id, funding, expires_at, reason, counterparty_wallet_id, target_found, request, request_hash,
                entry_wallets, entry_sequences, caller)
            SELECT id, kind, status, wallet_id, asset, amount, created_at, metadata::jsonb, target_id, funding,
                expires_at, reason, counterparty, target_found, request, request_hash, entry_wallets::text[],
                entry_sequences::bigint[], caller
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
                $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[], $14::boolean[],
                $15::text[], $16::bytea[], $17::text[], $18::text[], $19::text[])
                AS u(id, kind, status, wallet_id, asset, amount, created_at, metadata, target_id, funding,
                     expires_at, reason, counterparty, target_found, request, request_hash, entry_wallets,
                     entry_sequences, caller)
            """)
        connection.prepare(
            "replace_transactions",
            """
            UPDATE transactions t SET kind = u.kind, status = u.status, wallet_id = u.wallet_id, asset = u.asset,
                amount = u.amount, created_at = u.created_at, metadata = u.metadata::jsonb, target_id = u.target_id,
                funding = u.funding, expires_at = u.expires_at, reason = u.reason,
                counterparty_wallet_id = u.counterparty, target_found = u.target_found, request = u.request,
                request_hash = u.request_hash, entry_wallets = u.entry_wallets::text[],
                entry_sequences = u.entry_sequences::bigint[], caller = u.caller
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
                $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[], $14::boolean[],
                $15::text[], $16::bytea[], $17::text[], $18::text[], $19::text[])
                AS u(id, kind, status, wallet_id, asset, amount, created_at, metadata, target_id, funding,
                     expires_at, reason, counterparty, target_found, request, request_hash, entry_wallets,
                     entry_sequences, caller)
            WHERE t.transaction_id = u.id
            """)
        connection.prepare(
            "insert_entries",
            """
            INSERT INTO entries (wallet_id, sequence, transaction_id, entry_index, asset, bucket, amount, hash)
            SELECT wallet_id, sequence, transaction_id, entry_index, asset, bucket, amount, hash
            FROM unnest($1::text[], $2::bigint[], $3::text[], $4::integer[], $5::text[], $6::text[], $7::bigint[],
                $8::bytea[]) AS u(wallet_id, sequence, transaction_id, entry_index, asset, bucket, amount, hash)
            """)
        connection.prepare(
            "insert_history",
            """
            INSERT INTO wallet_history (wallet_id, transaction_id)
            SELECT wallet_id, transaction_id
            FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(wallet_id, transaction_id, ordinal)
            ORDER BY ordinal
            """)
        connection.prepare(
            "update_statuses",
            """
            UPDATE transactions t SET status = u.status
            FROM unnest($1::text[], $2::text[]) AS u(id, status) WHERE t.transaction_id = u.id
            """)
        // Every row updated here was loaded under its wallet's lock, so it
        // exists. Should one not, fewer rows updated than sent must fail the
        // batch, not drop a balance change: the count check divides by zero
        // then (22012, not retryable: the batch fails, nothing is recorded).
        connection.prepare(
            "update_balances",
            """
            WITH updated AS (
                UPDATE balances b SET posted = u.posted
                FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(wallet_id, asset, bucket, posted)
                WHERE b.wallet_id = u.wallet_id AND b.asset = u.asset AND b.bucket = u.bucket
                RETURNING 1)
            SELECT 1 / (count(*) = cardinality($1::text[]))::int AS every_row_updated FROM updated
            """)
        // No ON CONFLICT: a balance row that exists but was not loaded under
        // the wallet's lock would be a bug, and fails the batch.
        connection.prepare(
            "insert_balances",
            "INSERT INTO balances (wallet_id, asset, bucket, posted) "
                + "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])")
        connection.prepare(
            "insert_event_batch",
            "INSERT INTO event_batches (transaction_ids, statuses, wallet_ids) VALUES ($1::text[], $2::text[], $3::text[])")
        connection.prepare(
            "update_chain_heads",
            """
            UPDATE wallets w SET last_sequence = u.last_sequence, last_hash = u.last_hash
            FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS u(wallet_id, last_sequence, last_hash)
            WHERE w.wallet_id = u.wallet_id
            """)
    }
}
