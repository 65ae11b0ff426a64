import Foundation
import Synchronization
import WalletDomain

/// How writes reach the database.
public enum WriteMode: String, Sendable, CaseIterable {
    /// Each wallet's commands queue in its lane; a lane applies everything
    /// queued (up to `batchSizeMax`) in one database transaction.
    case lanes
    /// One database transaction per command: the baseline to compare with.
    case perRequest = "per-request"
}

public struct StoreConfiguration: Sendable {
    /// The defaults of every setting (the server's flags start from these).
    public static let defaults = StoreConfiguration(databaseURL: "")

    public var databaseURL: String
    /// Connections, each with its own worker thread and lanes.
    public var poolSize: Int
    public var writeMode: WriteMode
    /// Commands one database transaction may carry in lanes mode.
    public var batchSizeMax: Int
    /// Commands that may wait on one worker before callers get RESOURCE_EXHAUSTED.
    public var queueDepthMax: Int
    /// Commands that may wait for one wallet (lanes mode: its lane key, the
    /// wallet, or the pot for settles into it) before its callers get
    /// RESOURCE_EXHAUSTED, so that one flooded wallet cannot fill the lane it
    /// shares with others.
    public var walletQueueDepthMax = 5_000
    /// A batch slower than this is logged with where its time went; 0: never.
    public var slowBatchMilliseconds = 100
    /// Lanes mode: when a lane would start a batch of fewer than
    /// `batchWaitTarget` commands while another worker is running a batch,
    /// it first waits, in short steps and up to this long, for as long as
    /// more keep arriving. Fewer, larger transactions cost less CPU per
    /// operation, which under an open load on a busy machine shortens the
    /// queues more than the wait adds. A worker alone (one hot wallet) never
    /// waits: it is the bottleneck itself. See docs/benchmarks.md. 0: off.
    public var batchWaitMicroseconds = 2_000
    public var batchWaitTarget = 32
    /// How often the store probes the database when its workers have said
    /// nothing about it for that long (an idle server), or while it is not
    /// available; 0: never (workers' reports only). See `DatabaseStatus`.
    /// Off unless asked for: the server asks (`--database-probe-ms`, default
    /// `databaseProbeIntervalMillisecondsServing`); a store in a test or a
    /// tool has no health to keep.
    public var databaseProbeIntervalMilliseconds = 0
    public static let databaseProbeIntervalMillisecondsServing = 1_000
    public var log: @Sendable (String) -> Void
    /// Where the workers record queue depths, batch sizes, commit times and
    /// connection states (see `StoreMetrics`).
    public var metrics: StoreMetrics?
    /// Each worker connects when it starts rather than at its first command,
    /// so that the connection gauges tell from the start whether the
    /// database is there (the server; tests leave it off and open only the
    /// connections they use).
    public var connectWorkersAtStart = false

    public init(
        databaseURL: String, poolSize: Int = 8, writeMode: WriteMode = .lanes, batchSizeMax: Int = 512,
        queueDepthMax: Int = 20_000, log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.databaseURL = databaseURL
        self.poolSize = poolSize
        self.writeMode = writeMode
        self.batchSizeMax = batchSizeMax
        self.queueDepthMax = queueDepthMax
        self.log = log
    }
}

/// The Postgres ledger: libpq connections on threads this store owns, never
/// on Swift's cooperative pool. Callers await; workers complete.
public final class PostgresLedgerStore: LedgerStore {
    private let workers: [StoreWorker]
    private let monitor: DatabaseMonitor
    public let configuration: StoreConfiguration
    /// Signs page tokens; shared by every instance through the database.
    public let pageTokens: PageTokenCodec
    /// The ledger's events for WatchEvents streams.
    public let events: EventFeed

    /// Connects, applies migrations, and starts the workers.
    public init(configuration: StoreConfiguration) throws {
        self.configuration = configuration
        let setup: PostgresConnection
        do {
            setup = try PostgresConnection(url: configuration.databaseURL)
        } catch {
            throw StoreStartError("cannot connect to the database: \(error)")
        }
        _ = try Migrator.apply(Migrations.all, on: setup)
        let secret = try Self.pageTokenSecret(setup)
        self.pageTokens = PageTokenCodec(secret: secret)
        setup.close()
        monitor = DatabaseMonitor(
            settings: DatabaseMonitor.Settings(
                databaseURL: configuration.databaseURL,
                probeIntervalMilliseconds: configuration.databaseProbeIntervalMilliseconds, log: configuration.log))
        let events = EventFeed(
            settings: EventFeed.Settings(databaseURL: configuration.databaseURL, log: configuration.log),
            cursors: EventCursorCodec(secret: secret))
        self.events = events
        let settings = StoreWorker.Settings(
            databaseURL: configuration.databaseURL, houseSlot: nil,
            batchSizeMax: configuration.writeMode == .lanes ? configuration.batchSizeMax : 1,
            queueDepthMax: configuration.queueDepthMax, walletQueueDepthMax: configuration.walletQueueDepthMax,
            slowBatchMilliseconds: configuration.slowBatchMilliseconds,
            batchWaitMicroseconds: configuration.writeMode == .lanes ? configuration.batchWaitMicroseconds : 0,
            batchWaitTarget: configuration.batchWaitTarget, activity: WorkerActivity(), monitor: monitor,
            log: configuration.log, metrics: configuration.metrics ?? StoreMetrics(),
            connectAtStart: configuration.connectWorkersAtStart, committed: { events.commitHappened() })
        workers = (0..<max(1, configuration.poolSize)).map {
            StoreWorker(
                name: "wallet-db-\($0)", relayName: "wallet-ack-\($0)", settings: settings,
                houseSlot: $0 % Limits.houseSlotCount)
        }
        for worker in workers { worker.start() }
        events.start()
        monitor.start()
    }

    /// Whether the database takes writes, as the store last saw it.
    public var databaseStatus: DatabaseStatus { monitor.status }

    /// Calls `observer` with the database's status now and after each
    /// change (on the thread that noticed it; keep it quick). Health wires
    /// itself here: NOT_SERVING while the database is not available.
    public func observeDatabaseStatus(_ observer: @escaping @Sendable (DatabaseStatus) -> Void) {
        monitor.observe(observer)
    }

    /// Applies pending migrations and returns the versions applied.
    public static func migrate(databaseURL: String) throws -> [Int] {
        let connection = try PostgresConnection(url: databaseURL)
        defer { connection.close() }
        return try Migrator.apply(Migrations.all, on: connection)
    }

    /// Drains every lane, then closes the connections. (Called on a worker's
    /// own thread, which nothing does, it returns at once and that lane
    /// drains behind it.)
    public func shutdown() {
        monitor.stop()
        events.stop()
        for worker in workers { worker.stop() }
    }

    private static func pageTokenSecret(_ connection: PostgresConnection) throws -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        let candidate = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        _ = try connection.execute(
            "INSERT INTO settings (name, value) VALUES ('page_token_secret', decode($1, 'hex')) ON CONFLICT DO NOTHING",
            [hexString(candidate)])
        let rows = try connection.execute("SELECT value FROM settings WHERE name = 'page_token_secret'")
        guard rows.rowCount == 1, let secret = rows.bytes(row: 0, column: 0), !secret.isEmpty else {
            throw StoreStartError("page token secret missing")
        }
        return secret
    }

    // MARK: Routing

    /// A wallet's commands always go to the same worker: that is its lane.
    private func worker(for key: String) -> StoreWorker {
        workers[Int(StableHash.fnv1a(key) % UInt64(workers.count))]
    }

    private let roundRobin = Atomic<Int>(0)

    /// Reads, and writes in per-request mode, need no order: any worker, in turn.
    private func nextWorker() -> StoreWorker {
        workers[roundRobin.add(1, ordering: .relaxed).newValue % workers.count]
    }

    /// Lanes: the key a command queues behind (see `routingKey`).
    /// Per-request: nil, any worker takes it, as a pool of connections would
    /// (the baseline: the row lock alone serializes).
    private func laneKey(_ command: Command) -> String? {
        configuration.writeMode == .lanes ? routingKey(command) : nil
    }

    private func writer(laneKey: String?) -> StoreWorker {
        guard let laneKey else { return nextWorker() }
        return worker(for: laneKey)
    }

    private func routingKey(_ command: Command) -> String {
        if let wallet = command.primaryWalletID { return wallet }
        switch command {
        // A settle into a table pot queues behind the pot: every settle of a
        // table then shares one lane and one batch, instead of each lane
        // taking the pot's row lock in turn.
        case .settle(let c): return c.destinationWalletID.isEmpty ? c.authorizationID : c.destinationWalletID
        case .rollback(let c): return c.targetTransactionID
        case .reverse(let c): return c.originalTransactionID
        case .expire(let holdID): return holdID
        default: return command.transactionID
        }
    }

    // MARK: Target hints

    /// Wallets of recent holds and debits (the targets of Settle, Rollback
    /// and Expire), so their batches can lock without a lookup first.
    static let targetHintsMax = 20_000
    private let targetHints = Mutex<[String: WalletHint]>([:])

    private func remember(_ record: TransactionRecord) {
        targetHints.withLock { hints in
            // Bounded: start over rather than grow; a miss only costs a lookup.
            if hints.count >= Self.targetHintsMax { hints.removeAll(keepingCapacity: true) }
            hints[record.id] = WalletHint(walletID: record.walletID, asset: record.asset)
        }
    }

    private func targetHint(_ command: Command) -> WalletHint? {
        let target: String
        switch command {
        case .settle(let c): target = c.authorizationID
        case .rollback(let c): target = c.targetTransactionID
        case .expire(let holdID): target = holdID
        default: return nil
        }
        return targetHints.withLock { $0[target] }
    }

    // MARK: LedgerStore

    public func execute(_ command: Command, deadline: ContinuousClock.Instant?) async throws(LedgerError)
        -> OperationResult
    {
        try await answer { submit(command, deadline: deadline, completion: $0) }
    }

    /// Waits for the one answer `start` arranges (a queued item's completion).
    private func answer<Value: Sendable>(
        _ start: (@escaping @Sendable (Result<Value, LedgerError>) -> Void) -> Void
    ) async throws(LedgerError) -> Value {
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<Value, LedgerError>, Never>) in
            start { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Queues `command` on its lane and returns; `completion` runs on the
    /// worker's relay thread (see `CompletionRelay`) once the outcome is
    /// known (for a success: after the commit that holds it), or at once on
    /// the caller's thread when the queue refuses the command.
    public func submit(
        _ command: Command, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<OperationResult, LedgerError>) -> Void
    ) {
        let queueKey = laneKey(command)
        let worker = writer(laneKey: queueKey)
        worker.enqueue(
            PendingCommand(
                command: command, prepared: PreparedRow(command), hint: targetHint(command), queueKey: queueKey,
                deadline: deadline
            ) { [self] result in
                if case .success(let outcome) = result, !outcome.replayed,
                    outcome.transaction.kind == .authorize || outcome.transaction.kind == .debit
                {
                    remember(outcome.transaction)
                }
                completion(result)
            })
    }

    /// Runs a read (or a small write outside the lanes) on a worker thread.
    private func onWorker<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws(LedgerError) -> T {
        let log = configuration.log
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<T, LedgerError>, Never>) in
            nextWorker().enqueueRead { connection in
                guard let connection else {
                    continuation.resume(returning: .failure(.unavailable("the database is unreachable")))
                    return
                }
                // A read that failed inside its own BEGIN must not leave the
                // worker's session in a transaction.
                defer { connection.rollbackQuietly() }
                do {
                    continuation.resume(returning: .success(try body(connection)))
                } catch let error as LedgerError {
                    continuation.resume(returning: .failure(error))
                } catch {
                    log("read failed: \(error)")
                    continuation.resume(returning: .failure(.storageFailure(error)))
                }
            }
        }
        return try result.get()
    }

    public func createWallet(_ request: CreateWallet) async throws(LedgerError) -> (wallet: WalletRecord, created: Bool)
    {
        // Queued on the wallet's lane and created with whatever else is
        // queued there, in one transaction.
        let lane = worker(for: request.walletID)
        return try await answer { lane.enqueueCreate(PendingCreate(request: request, completion: $0)) }
    }

    public func defineAsset(_ request: DefineAsset) async throws(LedgerError) -> (asset: Asset, created: Bool) {
        try await onWorker { connection in
            try connection.transaction {
                let now = RowCoding.microseconds()
                let inserted = try connection.execute(
                    "INSERT INTO assets (code, decimal_places, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    [request.code, String(request.decimalPlaces), String(now)])
                let houses = Registry.houseWallets(asset: request.code, now: now)
                _ = try connection.execute(
                    """
                    INSERT INTO wallets (wallet_id, is_system, created_at, last_hash)
                    SELECT id, true, $2, decode($3, 'hex') FROM unnest($1::text[]) AS id
                    ON CONFLICT (wallet_id) DO NOTHING
                    """,
                    [
                        PostgresText.arrayLiteral(houses.map { Optional($0.id) }), String(now),
                        hexString(HashChain.genesis),
                    ])
                let rows = try connection.execute("SELECT decimal_places FROM assets WHERE code = $1", [request.code])
                let asset = Asset(code: request.code, decimalPlaces: UInt32(rows.int64(row: 0, column: 0) ?? 0))
                if inserted.rowsAffected == 1 { return (asset, true) }
                try Registry.existingAsset(asset, matches: request)
                return (asset, false)
            }
        }
    }

    public func balances(walletID: String, asset: String) async throws(LedgerError) -> [Balance] {
        try await answer { submitBalances(walletID: walletID, asset: asset, deadline: nil, completion: $0) }
    }

    /// Queues the read on a worker (any: reads need no order), which answers
    /// every read it has queued with one round trip; `completion` runs on
    /// that worker's relay thread.
    public func submitBalances(
        walletID: String, asset: String, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<[Balance], LedgerError>) -> Void
    ) {
        nextWorker().enqueue(
            .balance(PendingBalanceRead(walletID: walletID, asset: asset, deadline: deadline, completion: completion)))
    }

    public func transaction(id: String) async throws(LedgerError) -> TransactionRecord {
        try await answer { submitTransaction(id: id, deadline: nil, completion: $0) }
    }

    /// Queued like a balance read (`submitBalances`), and answered with the
    /// other transaction reads its worker has queued.
    public func submitTransaction(
        id: String, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<TransactionRecord, LedgerError>) -> Void
    ) {
        nextWorker().enqueue(.transaction(PendingTransactionRead(id: id, deadline: deadline, completion: completion)))
    }

    public func history(walletID: String, limit: Int, before: Int64?) async throws(LedgerError) -> HistoryPage {
        try await answer {
            submitHistory(walletID: walletID, limit: limit, before: before, deadline: nil, completion: $0)
        }
    }

    /// Queued like a balance read (`submitBalances`), and answered with the
    /// other history pages its worker has queued.
    public func submitHistory(
        walletID: String, limit: Int, before: Int64?, deadline: ContinuousClock.Instant?,
        completion: @escaping @Sendable (Result<HistoryPage, LedgerError>) -> Void
    ) {
        // The handlers check the page size; this guards callers in process
        // (one bad page would otherwise fail its whole group).
        guard (1...Limits.pageSizeMax).contains(limit) else {
            completion(
                .failure(
                    LedgerError(
                        .invalidArgument, "INVALID_PAGE_SIZE", "page size must be 1 to \(Limits.pageSizeMax)",
                        metadata: ["field": "page_size"])))
            return
        }
        nextWorker().enqueue(
            .history(
                PendingHistoryRead(
                    walletID: walletID, limit: limit, before: before, deadline: deadline, completion: completion)))
    }

    /// Open holds past their expiry, oldest first, for the sweeper.
    public func expiredHolds(limit: Int) async throws(LedgerError) -> [String] {
        try await onWorker { connection in
            let rows = try connection.execute(
                """
                SELECT transaction_id FROM transactions
                WHERE kind = 'AUTHORIZE' AND status = 'PENDING' AND expires_at > 0 AND expires_at <= $1
                ORDER BY expires_at LIMIT $2
                """, [String(RowCoding.microseconds()), String(limit)])
            return (0..<rows.rowCount).compactMap { rows.string(row: $0, column: 0) }
        }
    }
}

public struct StoreStartError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
