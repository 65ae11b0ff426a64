import CoreMetrics
import Foundation
import Synchronization
import WalletDomain

/// A write waiting in a lane.
/// Where a command's target transaction probably lives: a hint that lets a
/// batch lock the target's wallet without first looking the target up. A
/// wrong hint costs a retry, never a wrong answer (the batch checks its locks
/// against the target it then reads).
struct WalletHint: Sendable, Hashable {
    let walletID: String
    let asset: String
}

/// The columns of a command's transaction row that depend on the request
/// alone (its canonical text, that text's SHA-256, the metadata as JSON),
/// computed on the caller's thread (the transport's, for a gRPC write) before
/// the command queues: a lane's thread is the serial part of a hot wallet's
/// writes, so work moved off it is throughput gained. Used for a row only when the row's request and
/// metadata are still these (see `BatchExecutor.transactionColumns`).
struct PreparedRow: Sendable {
    let request: RequestFingerprint
    let metadata: [String: String]
    let encodedRequest: String
    let requestHash: [UInt8]
    let metadataJSON: String

    init?(_ command: Command) {
        guard let request = command.fingerprint else { return nil }
        self.init(request: request, metadata: command.metadata)
    }

    /// The columns of a row whose request came from no queued command (a
    /// rejection pinned on a tombstone keeps its own), computed on the spot.
    init(_ record: TransactionRecord) {
        self.init(request: record.request, metadata: record.metadata)
    }

    private init(request: RequestFingerprint, metadata: [String: String]) {
        self.request = request
        self.metadata = metadata
        encodedRequest = request.encoded
        requestHash = SHA256.hash(Array(encodedRequest.utf8))
        metadataJSON = RowCoding.encodeMap(metadata)
    }

    func matches(_ record: TransactionRecord) -> Bool {
        record.request == request && RequestFingerprint.sameBytes(record.metadata, metadata)
    }
}

struct PendingCommand: Sendable {
    typealias Completion = @Sendable (Result<OperationResult, LedgerError>) -> Void
    let command: Command
    let prepared: PreparedRow?
    let hint: WalletHint?
    /// What the per-wallet queue limit counts this command against (lanes).
    let queueKey: String?
    let deadline: ContinuousClock.Instant?
    let completion: Completion
}

/// Names the calling thread for the kernel (top -H, perf, /proc/PID/task/*/comm),
/// which Foundation's `Thread.name` does not do on Linux. The kernel keeps 15
/// bytes. Best effort: without /proc the thread keeps its process's name.
func nameThisThread(_ name: String) {
    let file = open("/proc/thread-self/comm", O_WRONLY)
    guard file >= 0 else { return }
    defer { close(file) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(file, $0.baseAddress, $0.count) }
}

/// Starts a thread that runs `body` under `name` (Foundation's and the kernel's).
func startThread(named name: String, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread {
        nameThisThread(name)
        body()
    }
    thread.name = name
    thread.start()
}

/// The one thread a relay or a worker runs its loop on, with the lock its
/// owner keeps its state under: whether the thread was started, and which
/// thread it is (a stop called from that thread must not wait for it).
/// `@unchecked Sendable`: both are only touched with `lock` locked.
final class LoopThread: @unchecked Sendable {
    let lock = NSCondition()
    private var started = false
    private var thread: pthread_t?

    func start(named name: String, _ body: @escaping @Sendable () -> Void) {
        lock.lock()
        started = true
        lock.unlock()
        startThread(named: name) { [self] in
            lock.lock()
            thread = pthread_self()
            lock.unlock()
            body()
        }
    }

    /// Under the lock.
    var wasStarted: Bool { started }

    /// Under the lock: waits (releasing it meanwhile) until `done`, unless
    /// the caller is the loop's own thread, which cannot wait for itself
    /// (then false, at once).
    @discardableResult
    func wait(until done: () -> Bool) -> Bool {
        if let thread, pthread_equal(thread, pthread_self()) != 0 { return false }
        while !done() { lock.wait() }
        return true
    }
}

/// Answers a worker's committed commands on a thread of their own. The lane
/// thread hands over a whole batch's answers at once (one wake-up per batch)
/// and goes on to the next batch; the answers (encoding a response and
/// starting its send, for a gRPC caller) no longer hold the lane up, and no
/// caller needs a task or continuation of its own to be answered.
///
/// `@unchecked Sendable`: the queue and flags are only touched with
/// `condition` locked.
final class CompletionRelay: @unchecked Sendable {
    typealias Delivery = (completion: PendingCommand.Completion, result: Result<OperationResult, LedgerError>)

    /// A write's answer, or any other answer (a read's) as a closure.
    enum Item {
        case delivery(Delivery)
        case action(@Sendable () -> Void)

        func run() {
            switch self {
            case .delivery(let delivery): delivery.completion(delivery.result)
            case .action(let action): action()
            }
        }

        var isWriteAnswer: Bool {
            if case .delivery = self { true } else { false }
        }
    }

    private let loop = LoopThread()
    private var condition: NSCondition { loop.lock }
    private var queued: [Item] = []
    private var stopping = false
    private var stopped = false
    /// Write answers posted and not yet delivered. The worker counts them
    /// against its queue limit, so a relay that falls behind (or a completion
    /// that blocks) holds new commands back instead of growing without bound.
    let backlog = Atomic<Int>(0)
    /// The same for other answers (reads): they count against the reads'
    /// own limit, so a burst of reads never refuses a write.
    let readBacklog = Atomic<Int>(0)

    private func count(_ item: Item, _ change: Int) {
        if item.isWriteAnswer {
            backlog.add(change, ordering: .relaxed)
        } else {
            readBacklog.add(change, ordering: .relaxed)
        }
    }

    private func uncount(_ item: Item) { count(item, -1) }

    func start(name: String) {
        loop.start(named: name) { [self] in run() }
    }

    /// Queues `deliveries` in order; after `stop`, runs them on the caller's
    /// thread instead (nothing is ever dropped).
    func post(_ deliveries: [Delivery]) {
        post(items: deliveries.map { .delivery($0) })
    }

    /// Queues answers that are not a write's (see `post(_:)`).
    func post(actions: [@Sendable () -> Void]) {
        post(items: actions.map { .action($0) })
    }

    private func post(items: [Item]) {
        guard !items.isEmpty else { return }
        condition.lock()
        if stopped {
            condition.unlock()
            for item in items { item.run() }
            return
        }
        for item in items { count(item, 1) }
        queued.append(contentsOf: items)
        condition.signal()
        condition.unlock()
    }

    /// Delivers what is queued, then ends the thread. Never started: delivers
    /// what was posted on the caller's thread. Called from a delivery: returns
    /// at once, and the thread ends once it has delivered the rest.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        if !loop.wasStarted {
            stopped = true
            let rest = queued
            queued.removeAll()
            condition.unlock()
            for item in rest {
                item.run()
                uncount(item)
            }
            return
        }
        loop.wait { stopped }
        condition.unlock()
    }

    private func run() {
        var taken: [Item] = []
        while true {
            condition.lock()
            while queued.isEmpty, !stopping { condition.wait() }
            if queued.isEmpty {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            swap(&taken, &queued)
            condition.unlock()
            for item in taken {
                item.run()
                uncount(item)
            }
            taken.removeAll(keepingCapacity: true)
        }
    }
}

/// How many of a store's workers are running a batch (see
/// `StoreWorker.waitForMoreWrites`).
final class WorkerActivity: Sendable {
    let running = Atomic<Int>(0)
}

/// One thread, one Postgres connection, one queue. Commands of a wallet
/// always land on the same worker (see `PostgresLedgerStore.worker(for:)`),
/// so they apply in arrival order; in lanes mode the worker takes everything
/// queued (up to `batchSizeMax`) into one database transaction: group commit.
///
/// `@unchecked Sendable`: the queues and flags are only touched with
/// `condition` locked; the connection and executor only on the worker's own
/// thread (created in `run()`, never handed out).
final class StoreWorker: @unchecked Sendable {
    struct Settings: Sendable {
        var databaseURL: String
        var houseSlot: Int?
        var batchSizeMax: Int
        var queueDepthMax: Int
        var walletQueueDepthMax: Int
        /// A batch slower than this (from its start to its commit) is logged
        /// with where its time went; 0: never.
        var slowBatchMilliseconds: Int
        /// See `StoreConfiguration.batchWaitMicroseconds`.
        var batchWaitMicroseconds: Int
        var batchWaitTarget: Int
        /// Workers of the same store that are running a batch right now:
        /// one instance shared by all of a store's workers (no default, so
        /// that settings made per worker cannot silently give each its own).
        var activity: WorkerActivity
        /// Told when a session fails or a write is refused, and after each
        /// commit: one instance shared by all of a store's workers (a
        /// worker made alone, in a test, gets one that nobody observes).
        var monitor = DatabaseMonitor(
            settings: DatabaseMonitor.Settings(databaseURL: "", probeIntervalMilliseconds: 0, log: { _ in }))
        var log: @Sendable (String) -> Void
        /// Shared by a store's workers; each adds its lane's queue depth.
        var metrics = StoreMetrics.none
        /// See `StoreConfiguration.connectWorkersAtStart`.
        var connectAtStart = false
        /// Runs after each batch that committed (the event feed's wake-up).
        var committed: @Sendable () -> Void = {}
    }

    /// After a failed connect, a worker answers UNAVAILABLE at once for
    /// this long instead of trying again for every batch (each try may wait
    /// up to libpq's connect timeout while callers queue).
    static let reconnectBackoffMilliseconds = 250

    private let settings: Settings
    private let loop = LoopThread()
    private var condition: NSCondition { loop.lock }
    private var writes: [PendingCommand] = []
    private var writesHead = 0
    private var reads: [@Sendable (PostgresConnection?) -> Void] = []
    private var creates: [PendingCreate] = []
    private var groupedReads: [GroupedRead] = []
    /// Queued (not yet taken into a batch) commands per queue key.
    private var queuedPerKey: [String: Int] = [:]
    private var stopping = false
    private var stopped = false
    private let name: String

    private var connection: PostgresConnection?
    private var executor: BatchExecutor?
    /// Whether the connection worked at its last use; nil before the first.
    /// Worker thread only, like the connection.
    private var connectionUp: Bool?
    private let queueDepth: Gauge
    /// The depth last recorded (worker thread only): the gauge is written
    /// only when it changes.
    private var recordedQueueDepth = -1
    /// When the last connect failed (see `reconnectBackoffMilliseconds`).
    private var lastConnectFailure: ContinuousClock.Instant?
    /// Internal for tests (its backlog).
    let relay = CompletionRelay()
    private let relayName: String

    init(name: String, relayName: String? = nil, settings: Settings, houseSlot: Int) {
        var settings = settings
        settings.houseSlot = houseSlot
        self.settings = settings
        self.name = name
        self.relayName = relayName ?? "\(name)-acks"
        queueDepth = settings.metrics.laneQueueDepth(lane: name)
        // Down until its connection first works (at its start or its first
        // command, see `Settings.connectAtStart`).
        settings.metrics.connectionsDown.increment()
    }

    func start() {
        relay.start(name: relayName)
        loop.start(named: name) { [self] in run() }
    }

    /// Drains what is queued and answers it, then ends the threads. Never
    /// started: answers what was queued with UNAVAILABLE (nothing recorded).
    /// Called on the worker's own thread (from a read job): returns at once;
    /// the thread drains and ends after the job.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        if !loop.wasStarted {
            stopped = true
            let queuedWrites = writes[writesHead...]
            let queuedCreates = creates
            let queuedReads = reads
            let queuedGroupedReads = groupedReads
            writes.removeAll()
            writesHead = 0
            queuedPerKey.removeAll()
            creates.removeAll()
            reads.removeAll()
            groupedReads.removeAll()
            condition.unlock()
            let failure = LedgerError.unavailable("the server is shutting down; nothing was recorded")
            fail(queuedWrites, failure)
            for item in queuedCreates { item.completion(.failure(failure)) }
            for job in queuedReads { job(nil) }
            for read in queuedGroupedReads { read.failure(failure)() }
            relay.stop()
            return
        }
        let waited = loop.wait { stopped }
        condition.unlock()
        // From the worker's own thread: its loop stops the relay on the way out.
        if waited { relay.stop() }
    }

    func enqueue(_ pending: PendingCommand) {
        condition.lock()
        // Answers still waiting to be sent count too (see `CompletionRelay.backlog`).
        var refusal = admissionRefusal(
            queued: writes.count - writesHead + relay.backlog.load(ordering: .relaxed),
            full: "this wallet's queue is full (\(settings.queueDepthMax))")
        if refusal == nil, let key = pending.queueKey {
            let queued = queuedPerKey[key, default: 0]
            if queued >= settings.walletQueueDepthMax {
                refusal = Self.queueFull("this wallet has \(queued) operations queued (the limit)")
            } else {
                queuedPerKey[key] = queued + 1
            }
        }
        if let refusal {
            condition.unlock()
            pending.completion(.failure(refusal))
            return
        }
        writes.append(pending)
        condition.signal()
        condition.unlock()
    }

    /// Under the lock: why an item may not join a queue that holds `queued`
    /// (shutting down, or the queue is at `queueDepthMax`), or nil.
    private func admissionRefusal(queued: Int, full: @autoclosure () -> String) -> LedgerError? {
        if stopping { return .unavailable("the server is shutting down") }
        if queued >= settings.queueDepthMax { return Self.queueFull(full()) }
        return nil
    }

    /// RESOURCE_EXHAUSTED QUEUE_FULL: `why`, and that the caller may retry.
    private static func queueFull(_ why: String) -> LedgerError {
        LedgerError(.resourceExhausted, "QUEUE_FULL", "\(why); nothing was recorded, retry later")
    }

    /// Queues a CreateWallet; the worker creates everything queued in one
    /// transaction.
    func enqueueCreate(_ pending: PendingCreate) {
        admit(pending, to: \.creates, alsoWaiting: 0, full: "too many wallets being created") {
            pending.completion(.failure($0))
        }
    }

    /// Queues a read (GetBalance, GetTransaction, a ListTransactions page);
    /// the worker answers everything of a kind it has queued together (see
    /// `GroupedReads`), through its relay.
    func enqueue(_ read: GroupedRead) {
        admit(
            read, to: \.groupedReads, alsoWaiting: relay.readBacklog.load(ordering: .relaxed),
            full: "too many reads queued"
        ) { read.failure($0)() }
    }

    /// Appends `item` to `queue` unless `admissionRefusal` says no (counting
    /// `alsoWaiting` answers not yet sent); then `refuse` runs, outside the lock.
    private func admit<Item>(
        _ item: Item, to queue: ReferenceWritableKeyPath<StoreWorker, [Item]>, alsoWaiting: Int, full: String,
        refuse: (LedgerError) -> Void
    ) {
        condition.lock()
        if let refusal = admissionRefusal(
            queued: self[keyPath: queue].count + alsoWaiting, full: "\(full) (\(settings.queueDepthMax))")
        {
            condition.unlock()
            refuse(refusal)
            return
        }
        self[keyPath: queue].append(item)
        condition.signal()
        condition.unlock()
    }

    /// Runs `job` on the worker's thread with its connection (nil when the
    /// database cannot be reached).
    func enqueueRead(_ job: @escaping @Sendable (PostgresConnection?) -> Void) {
        condition.lock()
        if stopping {
            condition.unlock()
            job(nil)
            return
        }
        reads.append(job)
        condition.signal()
        condition.unlock()
    }

    private func run() {
        if settings.connectAtStart { _ = ensureConnection() }
        while true {
            condition.lock()
            if writes.count == writesHead { recordQueueDepth(0) }
            while writes.count == writesHead, reads.isEmpty, creates.isEmpty, groupedReads.isEmpty, !stopping {
                condition.wait()
            }
            if stopping, writes.count == writesHead, reads.isEmpty, creates.isEmpty, groupedReads.isEmpty {
                stopped = true
                condition.broadcast()
                condition.unlock()
                connection?.close()
                noteConnection(up: false)
                // Also when `stop` came from this thread and could not wait.
                relay.stop()
                return
            }
            waitForMoreWrites()
            let readJobs = reads
            reads.removeAll()
            // Capped: one cycle's reads must not hold the lane's writes up
            // for long.
            let readCount = Self.groupedReadsToTake(
                groupedReads, countMax: settings.batchSizeMax, rowBudget: settings.batchSizeMax * 8)
            let readBatch = Array(groupedReads[..<readCount])
            if readCount == groupedReads.count {
                groupedReads.removeAll(keepingCapacity: true)
            } else {
                groupedReads.removeFirst(readCount)  // only past a full cycle's worth
            }
            let createCount = min(settings.batchSizeMax, creates.count)
            let createBatch = Array(creates[..<createCount])
            creates.removeFirst(createCount)
            recordQueueDepth(writes.count - writesHead)
            let take = min(settings.batchSizeMax, writes.count - writesHead)
            let batch = Array(writes[writesHead..<(writesHead + take)])
            writesHead += take
            for item in batch {
                guard let key = item.queueKey, let queued = queuedPerKey[key] else { continue }
                if queued <= 1 { queuedPerKey[key] = nil } else { queuedPerKey[key] = queued - 1 }
            }
            if writesHead == writes.count {
                writes.removeAll(keepingCapacity: true)
                writesHead = 0
            } else if writesHead > 4096, writesHead * 2 > writes.count {
                // Only once the taken part is the larger half: the shift
                // under the lock (which the transport's thread may be
                // waiting for) then costs no more than the takes it follows.
                writes.removeFirst(writesHead)
                writesHead = 0
            }
            condition.unlock()

            let live = ensureConnection()
            for job in readJobs { job(live) }
            if !readBatch.isEmpty { runGroupedReads(readBatch, on: live) }
            if !createBatch.isEmpty { runCreates(createBatch) }
            if !batch.isEmpty {
                settings.activity.running.add(1, ordering: .relaxed)
                runBatch(batch)
                settings.activity.running.subtract(1, ordering: .relaxed)
            }
        }
    }

    /// How many of the queued reads one cycle answers: in order, at most
    /// `countMax`, and as long as their weights (the rows they may bring
    /// back) fit in `rowBudget`; at least one (a page larger than the budget
    /// still gets its turn).
    static func groupedReadsToTake(_ queued: [GroupedRead], countMax: Int, rowBudget: Int) -> Int {
        var count = 0
        var weight = 0
        for read in queued {
            guard count < countMax else { break }
            weight += read.weight
            if count > 0, weight > rowBudget { break }
            count += 1
        }
        return count
    }

    /// Under the lock. A batch smaller than the target waits, in steps of
    /// an eighth of the wait (at least 250 us), while each step brings more
    /// commands, until the target, the wait, or other work comes; and never
    /// past half the time left to the earliest deadline it holds, so that a
    /// command with little time left is run, not kept until it expires.
    private func waitForMoreWrites() {
        var limit = min(settings.batchWaitMicroseconds, 1_000_000)
        // A batch never takes more than batchSizeMax, so waiting for more is moot.
        let target = min(settings.batchWaitTarget, settings.batchSizeMax)
        var queued = writes.count - writesHead
        guard limit > 0, queued > 0, queued < target else { return }
        // Only while another worker is running a batch: then the cores are
        // shared and a bigger batch saves them work. A worker alone (one hot
        // wallet) is itself the bottleneck, and waiting would only idle it.
        guard settings.activity.running.load(ordering: .relaxed) > 0 else { return }
        let step = max(250, limit / 8)
        let start = ContinuousClock.now
        var deadlinesSeen = writesHead
        func capByDeadlines() {
            for item in writes[deadlinesSeen...] {
                guard let deadline = item.deadline else { continue }
                let left = max(0, (deadline - start) / .microseconds(1))
                // Clamped before the conversion: a far deadline must not trap.
                limit = Int(min(Double(limit), left / 2))
            }
            deadlinesSeen = writes.count
        }
        capByDeadlines()
        var waited = 0
        while waited < limit, reads.isEmpty, creates.isEmpty, groupedReads.isEmpty, !stopping {
            condition.unlock()
            usleep(UInt32(min(step, limit - waited)))
            condition.lock()
            waited += step
            let now = writes.count - writesHead
            if now == queued || now >= target { return }
            queued = now
            capByDeadlines()
        }
    }

    /// The lane's queue depth gauge, written when `depth` differs from the
    /// last value written (an atomic store either way; this keeps it to
    /// the changes).
    private func recordQueueDepth(_ depth: Int) {
        guard depth != recordedQueueDepth else { return }
        recordedQueueDepth = depth
        queueDepth.record(depth)
    }

    /// Moves this worker between the up and down connection gauges.
    private func noteConnection(up: Bool) {
        guard connectionUp != up else { return }
        if connectionUp != nil || up {
            // From its start the worker counts as down (see init).
            (up ? settings.metrics.connectionsDown : settings.metrics.connectionsUp).decrement()
            (up ? settings.metrics.connectionsUp : settings.metrics.connectionsDown).increment()
        }
        connectionUp = up
    }

    private func ensureConnection() -> PostgresConnection? {
        let live = connectOrReconnect()
        noteConnection(up: live != nil)
        return live
    }

    private func connectOrReconnect() -> PostgresConnection? {
        if let connection, connection.isConnected { return connection }
        if let lastConnectFailure,
            ContinuousClock.now - lastConnectFailure < .milliseconds(Self.reconnectBackoffMilliseconds)
        {
            return nil
        }
        do {
            if let connection {
                try connection.reconnect()
                try Statements.configureSession(connection)
            } else {
                let fresh = try PostgresConnection(url: settings.databaseURL)
                try Statements.configureSession(fresh)
                Statements.prepareAll(on: fresh)
                connection = fresh
                executor = BatchExecutor(connection: fresh, houseSlot: settings.houseSlot)
            }
            lastConnectFailure = nil
            return connection
        } catch {
            lastConnectFailure = .now
            connection?.close()
            settings.log("\(name): database unreachable: \(error)")
            settings.monitor.report(.unreachable, because: "\(name): \(error)")
            return nil
        }
    }

    /// Tells the monitor what a failed statement says about the database.
    /// A read-only refusal also drops the session: opened again, a
    /// multi-host URL with `target_session_attrs=read-write` finds the
    /// server that now takes writes.
    private func noticeFailure(_ error: PostgresError) {
        if error.isReadOnly {
            connection?.close()
            settings.monitor.report(.readOnly, because: "\(name): \(error)")
        } else if error.failureClass == .connectionLost {
            settings.monitor.report(.unreachable, because: "\(name): \(error)")
        }
    }

    private func runBatch(_ batch: [PendingCommand]) {
        var pending = batch[...]
        var lockHint = Set<String>()
        var attempts = 0
        let attemptsMax = BatchRecovery.attemptsMax
        // Set once an attempt may have committed (the connection went away
        // around COMMIT): from then on a caller's answer must come from the
        // ledger (a retry replays it), never "deadline passed, nothing recorded".
        var possiblyCommitted = false
        // An asset whose house side this batch had to find room for: the
        // lane follows it to the slot that had room.
        var followHouseSlot: String?
        while !pending.isEmpty {
            let now = ContinuousClock.now
            var expired: [CompletionRelay.Delivery] = []
            let live =
                possiblyCommitted
                ? Array(pending)
                : pending.filter { item in
                    if let deadline = item.deadline, deadline <= now {
                        expired.append((item.completion, .failure(.deadlineExceeded())))
                        return false
                    }
                    return true
                }
            relay.post(expired)
            guard !live.isEmpty else { return }
            guard ensureConnection() != nil, var executor else {
                fail(
                    live,
                    possiblyCommitted
                        ? .unavailable("the database went away during commit; retry with the same transaction_id")
                        : .unavailable("the database is unreachable; nothing was recorded"))
                return
            }
            do throws(BatchFailure) {
                var prepared: [String: PreparedRow] = [:]
                for item in live { if let row = item.prepared { prepared[item.command.transactionID] = row } }
                let results = try executor.apply(
                    live.map(\.command), hints: live.map(\.hint), prepared: prepared, now: RowCoding.microseconds(),
                    lockHint: lockHint)
                self.executor = executor
                let elapsed = executor.phases.totalMicroseconds
                if !results.isEmpty {
                    settings.metrics.batchSize.record(results.count)
                    settings.metrics.commitDuration.recordMicroseconds(elapsed)
                }
                if settings.slowBatchMilliseconds > 0, elapsed >= Int64(settings.slowBatchMilliseconds) * 1000 {
                    settings.log("\(name): slow batch: \(live.count) commands: \(executor.phases)")
                }
                relay.post(zip(live, results).map { (item, result) in (item.completion, result) })
                if !results.isEmpty {
                    settings.monitor.report(.available)
                    settings.committed()
                    if let asset = followHouseSlot {
                        executor.followHouseSide(of: results, asset: asset)
                        self.executor = executor
                        followHouseSlot = nil
                    }
                }
                pending = live.dropFirst(results.count)[...]
                if !results.isEmpty {
                    lockHint = []
                    attempts = 0
                    possiblyCommitted = false
                }
                if let asset = executor.houseSlotsWanted {
                    // A slot of this lane had no room for an amount: lock
                    // every slot of the asset, then, if none had room
                    // either, open a new one; and post there from now on.
                    attempts += 1
                    if attempts > attemptsMax {
                        fail(pending, .unavailable("no house slot of \(asset) has room; nothing was recorded"))
                        return
                    }
                    do throws(PostgresError) {
                        let slots = try executor.houseSlotWallets(asset: asset)
                        if Set(slots).isSubset(of: lockHint) {
                            let opened = try executor.openHouseSlot(asset: asset, existing: slots)
                            settings.log("\(name): every house slot of \(asset) is full; opened \(opened)")
                            lockHint.insert(opened)
                        } else {
                            lockHint.formUnion(slots)
                        }
                    } catch {
                        settings.log("\(name): looking for house room failed: \(error)")
                        noticeFailure(error)
                        fail(pending, .storageFailure(error))
                        return
                    }
                    followHouseSlot = asset
                } else if results.isEmpty {
                    attempts += 1
                    if attempts > attemptsMax {
                        fail(live, .internalError("a command could not take the locks it needs"))
                        return
                    }
                    lockHint.formUnion(executor.footprint(of: live[0].command).walletIDs)
                }
            } catch {
                self.executor = executor
                attempts += 1
                switch error {
                case .retry(let wallets):
                    // Rolled back before COMMIT: nothing of this attempt is recorded.
                    lockHint.formUnion(wallets)
                    pending = live[...]
                    if attempts > attemptsMax {
                        if live.count > 1 {
                            // One command's lasting conflict must not fail its neighbours.
                            for item in live { runBatch([item]) }
                            return
                        }
                        fail(live, .unavailable("contention: retry later; nothing was recorded"))
                        return
                    }
                case .database(let error, let outcomeUnknown):
                    settings.log("\(name): batch of \(live.count) failed: \(error)")
                    noticeFailure(error)
                    let recovery = BatchRecovery.after(
                        error, outcomeUnknown: outcomeUnknown, possiblyCommitted: possiblyCommitted,
                        attempts: attempts, batchSize: live.count)
                    if outcomeUnknown { possiblyCommitted = true }
                    switch recovery {
                    case .retry:
                        pending = live[...]
                    case .split:
                        for item in live { runBatch([item]) }
                        return
                    case .fail(let failure):
                        fail(live, failure)
                        return
                    }
                }
            }
        }
    }

    private func runGroupedReads(_ queued: [GroupedRead], on connection: PostgresConnection?) {
        // A read whose caller stopped waiting is answered so, not read.
        let now = ContinuousClock.now
        var answers: [@Sendable () -> Void] = []
        var balances: [PendingBalanceRead] = []
        var transactions: [PendingTransactionRead] = []
        var histories: [PendingHistoryRead] = []
        for read in queued {
            if let deadline = read.deadline, deadline <= now {
                answers.append(read.failure(.deadlineExceeded()))
                continue
            }
            switch read {
            case .balance(let read): balances.append(read)
            case .transaction(let read): transactions.append(read)
            case .history(let read): histories.append(read)
            }
        }
        /// One group's answers, or every read of it failed alike.
        func answer<Read, Answer: Sendable>(
            _ reads: [Read], _ what: String, _ completion: (Read) -> @Sendable (Result<Answer, LedgerError>) -> Void,
            _ run: (PostgresConnection) throws -> [Result<Answer, LedgerError>]
        ) {
            guard !reads.isEmpty else { return }
            var results: [Result<Answer, LedgerError>]
            if let connection {
                do {
                    results = try run(connection)
                } catch {
                    connection.rollbackQuietly()
                    if let error = error as? PostgresError { noticeFailure(error) }
                    settings.log("\(name): \(reads.count) \(what) failed: \(error)")
                    results = Array(repeating: .failure(.storageFailure(error)), count: reads.count)
                }
            } else {
                results = Array(repeating: .failure(.unavailable("the database is unreachable")), count: reads.count)
            }
            for (read, result) in zip(reads, results) {
                let complete = completion(read)
                answers.append { complete(result) }
            }
        }
        answer(balances, "balance reads", { $0.completion }) { try BalanceReads.run(balances, on: $0) }
        answer(transactions, "transaction reads", { $0.completion }) { try TransactionReads.run(transactions, on: $0) }
        answer(histories, "history reads", { $0.completion }) { try HistoryReads.run(histories, on: $0) }
        relay.post(actions: answers)
    }

    private func runCreates(_ batch: [PendingCreate]) {
        guard let connection = ensureConnection() else {
            for item in batch { item.completion(.failure(.unavailable("the database is unreachable"))) }
            return
        }
        do {
            let results = try WalletCreation.apply(
                batch.map(\.request), on: connection, now: RowCoding.microseconds())
            for (item, result) in zip(batch, results) { item.completion(result) }
        } catch {
            connection.rollbackQuietly()
            settings.log("\(name): creating \(batch.count) wallets failed: \(error)")
            // Creating a wallet is idempotent: a retry finds it if the commit
            // went through, so even a commit lost on its way is UNAVAILABLE.
            noticeFailure(error)
            let failure = LedgerError.storageFailure(error)
            for item in batch { item.completion(.failure(failure)) }
        }
    }

    /// Every answer of a batch goes through the relay, failures too: the
    /// lane thread never encodes or sends, and a worker's answers leave in
    /// the order it decided them.
    private func fail(_ items: some Sequence<PendingCommand>, _ error: LedgerError) {
        relay.post(items.map { ($0.completion, .failure(error)) })
    }
}
