import Foundation
import Synchronization
import WalletDomain

/// The ledger's events for every WatchEvents stream of this instance: one
/// thread with one connection keeps the frontier (the highest batch
/// position below which no event can still appear) and answers the streams'
/// reads. No loop per stream: streams wait for the frontier to pass their
/// place, and one round a few milliseconds apart (at once after a commit of
/// this instance) moves it for all of them.
///
/// Why the frontier never skips (docs/architecture.md, "Events"): a batch
/// takes its position as its last statement before COMMIT, after it has
/// written rows, so it has a transaction id before it has a position. Each
/// round reads, in one statement, the highest visible position and then
/// takes a transaction id of its own (the marker): any batch still running
/// whose position is below that high has an id below the marker. The high
/// becomes the frontier once the oldest transaction running in the database
/// is at or past the marker: every batch at or below it is then visible, or
/// never will be (it rolled back). (A snapshot's list of running
/// transactions would not do: it leaves out those with ids above the last
/// completed one, and such a batch was seen committing after a higher
/// position had been delivered.)
///
/// `@unchecked Sendable`: the mutable state is touched only with `condition`
/// locked; the connection only on the feed's own thread.
public final class EventFeed: EventSource, @unchecked Sendable {
    public struct Settings: Sendable {
        public var databaseURL: String
        /// How often the frontier is checked while a stream waits for it
        /// (other instances' commits; this instance's wake it at once).
        public var pollIntervalMilliseconds = 5
        /// How often it is checked while no stream waits (once a stream has
        /// been opened), so that a `from_now` stream starts from a recent
        /// frontier.
        public var idleIntervalMilliseconds = 1_000
        public var log: @Sendable (String) -> Void

        public init(databaseURL: String, log: @escaping @Sendable (String) -> Void = { _ in }) {
            self.databaseURL = databaseURL
            self.log = log
        }
    }

    /// Events one read returns at most (a stream's page): what a stream
    /// holds in memory besides the message gRPC is sending.
    public static let pageEventsMax = 512
    /// Batches one read looks at at most.
    static let pageBatchesMax = 512

    public let cursors: EventCursorCodec
    private let settings: Settings
    private let loop = LoopThread()
    private var condition: NSCondition { loop.lock }

    // Under `condition`.
    private var stopping = false
    private var stopped = false
    private var woken = false
    private var jobs: [Job] = []
    /// `from_now` starts waiting for the first known frontier.
    private var deferred: [Job] = []
    private var waiters: [UInt64: Waiter] = [:]
    private var nextWaiterID: UInt64 = 0
    /// Every batch at or below it is final.
    private var frontier: Int64 = 0
    private var frontierKnown = false
    /// Set by the first stream: until then the feed holds no connection and
    /// runs no rounds (an instance nobody follows costs the database nothing).
    private var active = false

    // The feed thread's own.
    private var connection: PostgresConnection?
    /// Rounds whose high is not the frontier yet, oldest first: the high
    /// and the round's marker (a transaction id taken after reading it).
    private var pending: [(high: Int64, marker: UInt64)] = []
    /// Rounds kept waiting at most (a transaction that runs for long holds
    /// them all back; past this the older half is dropped).
    static let pendingRoundsMax = 4_096

    private enum Job {
        case read(EventReadState, walletID: String?, limit: Int, (Result<ReadOutcome, LedgerError>) -> Void)
        case window((Result<EventReadState, LedgerError>) -> Void)
    }

    private struct Waiter {
        let after: EventPosition
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct ReadOutcome {
        var events: [PositionedEvent]
        var state: EventReadState
    }

    public init(settings: Settings, cursors: EventCursorCodec) {
        self.settings = settings
        self.cursors = cursors
    }

    public func start() {
        loop.start(named: "wallet-events") { [self] in run() }
    }

    /// Ends every wait (streams then end) and the thread.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        let started = loop.wasStarted
        if started { loop.wait { stopped } }
        let queued = deferred + jobs
        jobs = []
        deferred = []
        let waiting = waiters
        waiters = [:]
        condition.unlock()
        for job in queued { Self.fail(job, .unavailable("the server is shutting down")) }
        for waiter in waiting.values { waiter.continuation.resume(returning: false) }
    }

    /// A batch of this instance committed: check the frontier now.
    public func commitHappened() {
        condition.lock()
        // With no stream waiting, the idle round is soon enough.
        if !waiters.isEmpty {
            woken = true
            condition.signal()
        }
        condition.unlock()
    }

    // MARK: EventSource

    public func begin(_ start: EventStart) async throws(LedgerError) -> EventReadState {
        switch start {
        case .after(let position):
            return EventReadState(position: position)
        case .now:
            let result = await withCheckedContinuation { continuation in
                enqueue(.window { continuation.resume(returning: $0) })
            }
            return try result.get()
        }
    }

    public func next(after state: inout EventReadState, walletID: String?, limit: Int) async throws(LedgerError)
        -> [PositionedEvent]?
    {
        precondition(limit > 0, "a page holds at least one event")
        let limit = min(limit, Self.pageEventsMax)
        while true {
            guard await waitForFrontier(after: state.position) else { return nil }
            let current = state
            let result = await withCheckedContinuation { continuation in
                enqueue(.read(current, walletID: walletID, limit: limit) { continuation.resume(returning: $0) })
            }
            let outcome = try result.get()
            state = outcome.state
            if !outcome.events.isEmpty { return outcome.events }
            if Task.isCancelled { return nil }
        }
    }

    /// True once the frontier may hold events after `position`; false when
    /// the feed stops or the waiting task is cancelled.
    private func waitForFrontier(after position: EventPosition) async -> Bool {
        let id: UInt64 = condition.withLock {
            nextWaiterID += 1
            return nextWaiterID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                condition.lock()
                if stopping || Task.isCancelled {
                    condition.unlock()
                    continuation.resume(returning: false)
                } else if frontierKnown, Self.readable(position, frontier: frontier) {
                    condition.unlock()
                    continuation.resume(returning: true)
                } else {
                    waiters[id] = Waiter(after: position, continuation: continuation)
                    active = true
                    condition.signal()
                    condition.unlock()
                }
            }
        } onCancel: {
            let waiter = condition.withLock { waiters.removeValue(forKey: id) }
            waiter?.continuation.resume(returning: false)
        }
    }

    /// Whether a batch at or below `frontier` may hold events after `position`.
    private static func readable(_ position: EventPosition, frontier: Int64) -> Bool {
        position.batch < frontier || (position.batch == frontier && position.index != Int32.max)
    }

    private func enqueue(_ job: Job) {
        condition.lock()
        active = true
        if stopping {
            condition.unlock()
            Self.fail(job, .unavailable("the server is shutting down"))
            return
        }
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private static func fail(_ job: Job, _ error: LedgerError) {
        switch job {
        case .read(_, _, _, let completion): completion(.failure(error))
        case .window(let completion): completion(.failure(error))
        }
    }

    // MARK: The feed's thread

    private func run() {
        var lastRound = ContinuousClock.now - .seconds(3600)
        while true {
            condition.lock()
            while !stopping && !active && jobs.isEmpty {
                condition.wait()
            }
            while !stopping && jobs.isEmpty && !woken {
                let interval =
                    waiters.isEmpty && deferred.isEmpty
                    ? settings.idleIntervalMilliseconds : settings.pollIntervalMilliseconds
                let due = lastRound + .milliseconds(interval)
                if ContinuousClock.now >= due { break }
                let wait = due - ContinuousClock.now
                let seconds = Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18
                _ = condition.wait(until: Date(timeIntervalSinceNow: max(0.0005, seconds)))
            }
            if stopping {
                stopped = true
                condition.broadcast()
                condition.unlock()
                connection?.close()
                return
            }
            let work = deferred + jobs
            jobs = []
            deferred = []
            woken = false
            condition.unlock()

            lastRound = ContinuousClock.now
            guard let connection = ensureConnection() else {
                for job in work { Self.fail(job, .unavailable("the database is unreachable")) }
                // Waiters keep waiting; streams end when their reads fail.
                condition.lock()
                _ = condition.wait(until: Date(timeIntervalSinceNow: 0.5))
                condition.unlock()
                continue
            }
            do {
                try advanceFrontier(on: connection)
            } catch {
                settings.log("events: frontier check failed: \(error)")
                for job in work { Self.fail(job, LedgerError.storageFailure(error)) }
                continue
            }
            let (frontier, known) = condition.withLock { (self.frontier, frontierKnown) }
            for job in work {
                switch job {
                case .read(let state, let walletID, let limit, let completion):
                    do {
                        completion(
                            .success(
                                try read(
                                    after: state, walletID: walletID, limit: limit, frontier: frontier,
                                    on: connection)))
                    } catch {
                        settings.log("events: read failed: \(error)")
                        completion(.failure(LedgerError.storageFailure(error)))
                    }
                case .window(let completion):
                    // A frontier not known yet (the first rounds of a busy
                    // database) would make the window the whole table.
                    guard known else {
                        condition.withLock { deferred.append(job) }
                        continue
                    }
                    do {
                        completion(.success(try window(above: frontier, on: connection)))
                    } catch {
                        settings.log("events: from_now failed: \(error)")
                        completion(.failure(LedgerError.storageFailure(error)))
                    }
                }
            }
        }
    }

    private func ensureConnection() -> PostgresConnection? {
        if let connection, connection.isConnected { return connection }
        do {
            let ready: PostgresConnection
            if let connection {
                try connection.reconnect()
                ready = connection
            } else {
                ready = try PostgresConnection(url: settings.databaseURL)
                connection = ready
            }
            try Statements.configureSession(ready)
            // A round's transaction only takes an id (the marker) and writes
            // nothing: its commit need not wait for a WAL flush.
            try ready.executeScript("SET synchronous_commit = off")
            Self.prepare(on: ready)
            pending = []
            return ready
        } catch {
            settings.log("events: database unreachable: \(error)")
            return nil
        }
    }

    /// One round: the highest visible position, the round's marker, and the
    /// oldest transaction running; every earlier round whose marker that
    /// oldest transaction has passed gives the frontier its high.
    private func advanceFrontier(on connection: PostgresConnection) throws {
        let row = try connection.executePrepared("event_frontier", [])
        guard row.rowCount == 1, let high = row.int64(row: 0, column: "high"),
            let markerText = row.string(row: 0, column: "marker"), let marker = UInt64(markerText),
            let oldestText = row.string(row: 0, column: "oldest"), let oldest = UInt64(oldestText)
        else { throw PostgresError(kind: .unexpectedResult, message: "event_frontier returned an unexpected row") }
        precondition(oldest <= marker, "the oldest running transaction is newer than the round's own id")
        var advanced: Int64?
        // Every transaction with an id below the marker has ended.
        while let first = pending.first, first.marker <= oldest {
            advanced = first.high
            pending.removeFirst()
        }
        if pending.count >= Self.pendingRoundsMax {
            // Drop the older half: a later round's high waits for a later
            // marker, so the frontier only moves later, never wrongly.
            pending.removeFirst(pending.count / 2)
        }
        pending.append((high, marker))
        guard let advanced else { return }
        let ready: [Waiter] = condition.withLock {
            if advanced > frontier || !frontierKnown {
                frontier = max(frontier, advanced)
                frontierKnown = true
            }
            var ready: [Waiter] = []
            for (id, waiter) in waiters where Self.readable(waiter.after, frontier: frontier) {
                ready.append(waiter)
                waiters[id] = nil
            }
            return ready
        }
        for waiter in ready { waiter.continuation.resume(returning: true) }
    }

    /// `from_now`: start at the frontier, skipping the batches above it
    /// that had committed before now (a batch above it that commits later,
    /// though its position is lower than one already visible, is delivered).
    private func window(above frontier: Int64, on connection: PostgresConnection) throws -> EventReadState {
        let row = try connection.executePrepared("event_window", [String(frontier)])
        guard row.rowCount == 1, let text = row.string(row: 0, column: "visible"),
            let visible = PostgresText.parseArray(text)
        else { throw PostgresError(kind: .unexpectedResult, message: "event_window returned an unexpected row") }
        let skipped = Set(visible.compactMap { $0.flatMap { Int64($0) } })
        precondition(skipped.allSatisfy { $0 > frontier }, "the window starts above the frontier")
        return EventReadState(position: EventPosition(batch: frontier, index: Int32.max), skippedBatches: skipped)
    }

    /// The events after `state` up to the frontier, at most `limit`.
    private func read(
        after state: EventReadState, walletID: String?, limit: Int, frontier: Int64, on connection: PostgresConnection
    ) throws -> ReadOutcome {
        var next = state
        let start = state.position
        let batches =
            if let walletID {
                try connection.executePrepared(
                    "event_batches_of_wallet",
                    [String(start.batch), String(frontier), String(Self.pageBatchesMax), walletID])
            } else {
                try connection.executePrepared(
                    "event_batches", [String(start.batch), String(frontier), String(Self.pageBatchesMax)])
            }
        var chosen: [(position: EventPosition, id: String, status: TransactionStatus)] = []
        var fullyRead = batches.rowCount < Self.pageBatchesMax
        rows: for row in 0..<batches.rowCount {
            guard let position = batches.int64(row: row, column: "position"),
                let idsText = batches.string(row: row, column: "transaction_ids"),
                let statusesText = batches.string(row: row, column: "statuses"),
                let ids = PostgresText.parseArray(idsText), let statuses = PostgresText.parseArray(statusesText),
                ids.count == statuses.count
            else { throw PostgresError(kind: .unexpectedResult, message: "a malformed event batch row") }
            precondition(position >= start.batch && position <= frontier, "a batch outside the range asked for")
            if next.skippedBatches.remove(position) != nil {
                next.position = EventPosition(batch: position, index: Int32.max)
                continue
            }
            for index in ids.indices {
                let here = EventPosition(batch: position, index: Int32(index))
                guard here > start else { continue }
                guard let id = ids[index], let statusText = statuses[index],
                    let status = TransactionStatus(rawValue: statusText)
                else { throw PostgresError(kind: .unexpectedResult, message: "a malformed event in batch \(position)") }
                if chosen.count == limit {
                    fullyRead = false
                    break rows
                }
                chosen.append((here, id, status))
                next.position = here
            }
            next.position = EventPosition(batch: position, index: Int32.max)
        }
        if fullyRead {
            // Everything up to the frontier was looked at.
            next.position = max(next.position, EventPosition(batch: frontier, index: Int32.max))
            next.skippedBatches = next.skippedBatches.filter { $0 > frontier }
        } else if let last = chosen.last, chosen.count == limit {
            next.position = last.position
        }

        guard !chosen.isEmpty else { return ReadOutcome(events: [], state: next) }
        let ids = Array(Set(chosen.map(\.id))).sorted()
        let idsParameter = PostgresBinaryArray.text(ids)
        let results = try connection.pipeline([
            ("load_transactions", [idsParameter]), ("load_entries", [idsParameter]),
        ])
        let records = BatchExecutor.transactions(results[0], entries: results[1])
        var events: [PositionedEvent] = []
        events.reserveCapacity(chosen.count)
        for (position, id, status) in chosen {
            guard var record = records[id] else {
                throw PostgresError(kind: .unexpectedResult, message: "event \(position) names a missing transaction")
            }
            if let walletID, !record.walletIDs.contains(walletID) { continue }
            // Only the status of a transaction row changes after it is written.
            record.status = status
            events.append(PositionedEvent(position: position, transaction: record))
        }
        return ReadOutcome(events: events, state: next)
    }

    static func prepare(on connection: PostgresConnection) {
        Statements.prepareAll(on: connection)
        // One statement, one snapshot: its highest visible position, the
        // transactions running in it, and how many of the previous round's
        // are still running.
        // One statement: its snapshot gives the high; the id it takes while
        // it runs (after the snapshot) is the marker; the snapshot's xmin is
        // the oldest transaction running when it was taken.
        connection.prepare(
            "event_frontier",
            """
            SELECT coalesce((SELECT max(position) FROM event_batches), 0) AS high,
                   pg_current_xact_id()::text AS marker,
                   pg_snapshot_xmin(pg_current_snapshot())::text AS oldest
            """)
        connection.prepare(
            "event_window",
            """
            SELECT ARRAY(SELECT position FROM event_batches WHERE position > $1::bigint ORDER BY position)::text
                   AS visible
            """)
        connection.prepare(
            "event_batches",
            """
            SELECT position, transaction_ids, statuses FROM event_batches
            WHERE position >= $1::bigint AND position <= $2::bigint ORDER BY position LIMIT $3::bigint
            """)
        connection.prepare(
            "event_batches_of_wallet",
            """
            SELECT position, transaction_ids, statuses FROM event_batches
            WHERE wallet_ids @> ARRAY[$4::text] AND position >= $1::bigint AND position <= $2::bigint
            ORDER BY position LIMIT $3::bigint
            """)
    }
}
