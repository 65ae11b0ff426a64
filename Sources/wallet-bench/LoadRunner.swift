import Synchronization
import WalletGRPC

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Drives the timed phase: closed loop with N callers, or open loop at a
/// target rate with at most N calls in flight.
struct LoadRunner {
    /// How long the open-loop pacer polls for an idle caller.
    static let pacerPollNanoseconds: UInt64 = 20_000

    struct Result: Sendable {
        var totals: LoadRecorder.Totals
        var elapsedSeconds: Double
        /// Open loop: calls the schedule wanted but no idle caller could send
        /// before the end time.
        var unsent: Int
        /// Open loop: per timeline slice, how late the pacer woke from a
        /// sleep to its tick, at worst: how long the machine kept a thread
        /// that wanted to run from running. A latency spike with a pacer as
        /// late is the machine's, not the server's.
        var pacerLateness: [Int: UInt64] = [:]
        /// Open loop: per timeline slice, how far behind its schedule the
        /// pacer sent a call, at worst (no idle caller, or slow sends).
        /// Lateness can only show while the pacer sleeps; this shows the
        /// rest.
        var pacerBehind: [Int: UInt64] = [:]
    }

    let channels: [GRPCChannel]
    let workload: Workload?
    let concurrency: Int
    let durationSeconds: Double
    let rate: Double?
    let timeoutMilliseconds: Int
    var retryTransient = false

    func run() async -> Result {
        let start = monotonicNanoseconds()
        let recorders = channels.map { _ in LoadRecorder(startNanoseconds: start) }
        var settings = LoadSettings(
            workload: workload, timeoutMilliseconds: timeoutMilliseconds,
            endNanoseconds: start + UInt64(durationSeconds * 1e9))
        settings.retryTransient = retryTransient
        var seeds = SplitMix64(seed: UInt64(truncatingIfNeeded: start))
        var unsent = 0
        var pacerLateness: [Int: UInt64] = [:]
        var pacerBehind: [Int: UInt64] = [:]

        if let rate {
            let pool = CallerPool()
            for index in 0..<concurrency {
                pool.release(
                    LoadCaller(
                        seed: seeds.next(), channel: channels[index % channels.count],
                        recorder: recorders[index % channels.count], settings: settings, mode: .openLoop(pool)))
            }
            let latch = CountdownLatch(count: 1)
            let pacer = OpenLoopPacer(
                pool: pool, poolSize: concurrency, rate: rate, startNanoseconds: start,
                endNanoseconds: settings.endNanoseconds,
                drainNanoseconds: UInt64(timeoutMilliseconds) * 1_000_000 + 1_000_000_000)
            let outcome = PacerOutcome()
            startThread {
                outcome.value.withLock { $0 = pacer.run() }
                latch.countDown()
            }
            await latch.wait()
            (unsent, pacerLateness, pacerBehind) = outcome.value.withLock { $0 }
        } else {
            let latch = CountdownLatch(count: concurrency)
            let callers = (0..<concurrency).map { index in
                LoadCaller(
                    seed: seeds.next(), channel: channels[index % channels.count],
                    recorder: recorders[index % channels.count], settings: settings, mode: .closedLoop(latch))
            }
            for caller in callers { caller.runClosedLoop() }
            await latch.wait()
        }

        var totals = LoadRecorder.Totals()
        for recorder in recorders { totals.merge(recorder.snapshot()) }
        let end = max(totals.lastCompletionNanoseconds, settings.endNanoseconds)
        return Result(
            totals: totals, elapsedSeconds: Double(end - start) / 1e9, unsent: unsent, pacerLateness: pacerLateness,
            pacerBehind: pacerBehind)
    }
}

/// Sends calls on a fixed schedule from its own thread. It wakes at most
/// once per tick and then sends every call whose slot has come, so a high
/// rate costs the machine a thousand wake-ups a second rather than one per
/// call (the pacer shares the cores with the server it measures). A call that
/// finds no idle caller waits for one. Every call's latency counts from its
/// own slot in the schedule, so neither the tick nor a wait hides time.
struct OpenLoopPacer: Sendable {
    /// The pacer's wake-up period.
    static let tickNanoseconds: UInt64 = 1_000_000

    let pool: CallerPool
    let poolSize: Int
    let rate: Double
    let startNanoseconds: UInt64
    let endNanoseconds: UInt64
    /// How long to wait for calls in flight after the end time.
    let drainNanoseconds: UInt64

    /// Returns how many scheduled calls were never sent, and per timeline
    /// slice the pacer's worst sleep overshoot and worst send delay.
    func run() -> (unsent: Int, lateness: [Int: UInt64], behind: [Int: UInt64]) {
        let intervalNanoseconds = 1e9 / rate
        let scheduled = Int((Double(endNanoseconds - startNanoseconds) / intervalNanoseconds).rounded(.down))
        var sent = 0
        var awakeUntil: UInt64 = 0
        var lateness: [Int: UInt64] = [:]
        var behind: [Int: UInt64] = [:]
        schedule: for slot in 0..<scheduled {
            let intended = startNanoseconds + UInt64(Double(slot) * intervalNanoseconds)
            if intended > awakeUntil {
                // Sleep to the first tick at or after this slot; the calls
                // due by then go out together.
                let ticks = (intended - startNanoseconds + Self.tickNanoseconds - 1) / Self.tickNanoseconds
                let wake = startNanoseconds + ticks * Self.tickNanoseconds
                var now = monotonicNanoseconds()
                if now < wake {
                    sleepUntil(monotonicNanoseconds: wake)
                    now = monotonicNanoseconds()
                    // Only a sleep's overshoot: time spent sending is not
                    // the machine's delay.
                    let slice = LoadRecorder.slice(at: wake, start: startNanoseconds)
                    lateness[slice] = max(lateness[slice] ?? 0, now &- wake)
                }
                awakeUntil = max(wake, now)
            }
            var caller = pool.take()
            while caller == nil {
                let now = monotonicNanoseconds()
                if now >= endNanoseconds { break schedule }
                sleepUntil(monotonicNanoseconds: now + LoadRunner.pacerPollNanoseconds)
                caller = pool.take()
            }
            let slice = LoadRecorder.slice(at: intended, start: startNanoseconds)
            behind[slice] = max(behind[slice] ?? 0, monotonicNanoseconds() &- intended)
            caller?.sendScheduled(intendedStartNanoseconds: intended)
            sent += 1
        }
        let drainDeadline = max(monotonicNanoseconds(), endNanoseconds) + drainNanoseconds
        while pool.idleCount < poolSize && monotonicNanoseconds() < drainDeadline {
            sleepUntil(monotonicNanoseconds: monotonicNanoseconds() + 1_000_000)
        }
        return (scheduled - sent, lateness, behind)
    }
}

private final class PacerOutcome: Sendable {
    let value = Mutex<(unsent: Int, lateness: [Int: UInt64], behind: [Int: UInt64])>((0, [:], [:]))
}

/// Runs `body` on a new detached pthread (blocking work stays off the
/// cooperative pool).
func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    #if canImport(Glibc)
        var thread = pthread_t()
    #else
        var thread: pthread_t?
    #endif
    let created = pthread_create(
        &thread, nil,
        { context in
            Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context)
    precondition(created == 0, "pthread_create failed: \(created)")
    pthread_detach(thread)
}
