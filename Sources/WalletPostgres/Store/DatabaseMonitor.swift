import Foundation
import Synchronization

/// Whether the database can take the store's writes, as the store last saw it.
public enum DatabaseStatus: String, Sendable, Equatable {
    /// Writes commit.
    case available
    /// No session can be opened, a session broke, or the server stopped
    /// answering (frozen, its host gone).
    case unreachable
    /// The server answers but refuses writes (a standby, a demoted primary,
    /// `default_transaction_read_only`).
    case readOnly = "read-only"
}

/// Follows the database's status from what the store's workers meet (a
/// session failing to open or breaking, a write refused as read-only, a
/// commit) and from a light probe of its own, run when the workers have
/// said nothing for a probe interval (an idle server) or while the status is
/// not `available` (the workers of a server that health took out of a load
/// balancer see no traffic, and would never notice the database coming
/// back). Status changes are logged and handed to one observer, in order.
///
/// The probe opens a session of its own (`connect_timeout` = the probe
/// timeout), asks whether transactions are read-only, waiting at most the
/// probe timeout for the answer (a server that stopped answering counts as
/// unreachable, not as busy), and closes it: what it tells is whether a
/// worker could open a session now (through a multi-host URL, to the server
/// that takes writes), and an idle server holds no connection for it.
final class DatabaseMonitor: Sendable {
    struct Settings: Sendable {
        var databaseURL: String
        /// How often the database is probed when nothing else tells the
        /// monitor about it; 0: never (the workers' reports only).
        var probeIntervalMilliseconds: Int
        /// How long a probe may take to connect (libpq's minimum: 2 s) and
        /// to get its answer.
        var probeTimeoutSeconds = DatabaseMonitor.probeTimeoutSecondsDefault
        var log: @Sendable (String) -> Void
    }

    static let probeIntervalMillisecondsDefault = 1_000
    static let probeTimeoutSecondsDefault = 2

    private struct State {
        var status = DatabaseStatus.available
        var lastReport = ContinuousClock.now
        /// A worker met a failure: probe now rather than at the next interval.
        var probeSoon = false
        var stopping = false
        var stopped = false
    }

    private let settings: Settings
    private let state = Mutex(State())
    /// Serializes observer calls, so that the observer sees the changes in
    /// the order they happened and ends on the current status.
    private let notifying = Mutex<(observer: (@Sendable (DatabaseStatus) -> Void)?, told: DatabaseStatus?)>((nil, nil))
    private let wake = NSCondition()

    init(settings: Settings) {
        self.settings = settings
    }

    var status: DatabaseStatus { state.withLock { $0.status } }

    /// Calls `observer` with the status now and after each change.
    func observe(_ observer: @escaping @Sendable (DatabaseStatus) -> Void) {
        notifying.withLock {
            $0.observer = observer
            $0.told = nil
        }
        notify()
    }

    /// A worker's view: `available` after a commit, the others after a
    /// failure (which also asks for a probe at once).
    func report(_ status: DatabaseStatus, because reason: @autoclosure () -> String = "") {
        let changed = state.withLock { state -> Bool in
            state.lastReport = .now
            guard state.status != status else { return false }
            state.status = status
            if status != .available { state.probeSoon = true }
            return true
        }
        guard changed else { return }
        let why = reason()
        settings.log("database \(status.rawValue)\(why.isEmpty ? "" : ": \(why)")")
        if status != .available {
            wake.lock()
            wake.signal()
            wake.unlock()
        }
        notify()
    }

    private func notify() {
        notifying.withLock { notifying in
            let current = state.withLock { $0.status }
            guard let observer = notifying.observer, notifying.told != current else { return }
            notifying.told = current
            observer(current)
        }
    }

    func start() {
        guard settings.probeIntervalMilliseconds > 0 else { return }
        startThread(named: "wallet-db-probe") { [self] in run() }
    }

    func stop() {
        let started = settings.probeIntervalMilliseconds > 0
        state.withLock { $0.stopping = true }
        wake.lock()
        wake.broadcast()
        wake.unlock()
        guard started else { return }
        // Bounded: a probe in progress ends within its timeout.
        let deadline = ContinuousClock.now + .seconds(2 * settings.probeTimeoutSeconds + 1)
        while !state.withLock({ $0.stopped }), ContinuousClock.now < deadline {
            usleep(10_000)
        }
    }

    private func run() {
        let interval = Duration.milliseconds(settings.probeIntervalMilliseconds)
        while true {
            wake.lock()
            if !state.withLock({ $0.stopping || $0.probeSoon }) {
                _ = wake.wait(until: Date(timeIntervalSinceNow: Double(settings.probeIntervalMilliseconds) / 1000))
            }
            wake.unlock()
            let (stopping, due) = state.withLock { state -> (Bool, Bool) in
                let due =
                    state.probeSoon || state.status != .available || ContinuousClock.now - state.lastReport >= interval
                state.probeSoon = false
                return (state.stopping, due)
            }
            if stopping { break }
            guard due else { continue }
            let (status, reason) = probe()
            report(status, because: reason)
            if status != .available {
                // Not at once again: the next interval, unless a worker asks.
                state.withLock { $0.probeSoon = false }
            }
        }
        state.withLock { $0.stopped = true }
    }

    /// One probe, on a session opened for it.
    private func probe() -> (DatabaseStatus, String) {
        do throws(PostgresError) {
            let connection = try PostgresConnection(
                url: settings.databaseURL, connectTimeoutSeconds: settings.probeTimeoutSeconds)
            defer { connection.close() }
            let rows = try connection.query(
                "SELECT current_setting('transaction_read_only')",
                timeoutMilliseconds: settings.probeTimeoutSeconds * 1000)
            return rows.string(row: 0, column: 0) == "on"
                ? (.readOnly, "probe: transactions are read-only") : (.available, "probe answered")
        } catch {
            // Whatever the probe met (no session, no answer, an error), the
            // store cannot count on the database.
            return (.unreachable, "probe: \(error)")
        }
    }
}
