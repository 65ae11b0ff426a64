import Dispatch
import Synchronization
import WalletGRPC

/// Calls resent after a transient failure (`--retry-transient`), all callers.
let transientRetries = Atomic<Int>(0)

/// What every caller of a run shares.
struct LoadSettings: Sendable {
    let workload: Workload?  // nil: echo
    let timeoutMilliseconds: Int
    let endNanoseconds: UInt64
    /// Resend transient failures (same request) until a final answer.
    var retryTransient = false

    /// How long after the end a call may still be resent to get its answer.
    static let retryGraceNanoseconds: UInt64 = 60_000_000_000
    static let retryBackoffMilliseconds = 50
    /// UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED: nothing was
    /// recorded, or the outcome is unknown; the same request is safe to resend.
    static let transientCodes: Set<Int32> = [14, 4, 8]
}

/// One caller with at most one call in flight. Closed loop: it sends its next
/// call as soon as the last one is answered, until the end time. Open loop:
/// the pacer hands it one call at a time and it returns to the pool.
///
/// Completions run on the channel's completion-queue thread and start the
/// next call from there: no thread or task per call.
final class LoadCaller: Sendable {
    enum Mode: Sendable {
        case closedLoop(CountdownLatch)
        case openLoop(CallerPool)
    }

    private struct State: Sendable {
        var workload: CallerState?
        /// A closed-loop start is under way on some thread.
        var starting = false
        /// A completion arrived while `starting`: the starter sends the next
        /// call, which keeps a synchronous failure from recursing.
        var nextDeferred = false
    }

    private let channel: GRPCChannel
    private let recorder: LoadRecorder
    private let settings: LoadSettings
    private let mode: Mode
    private let state: Mutex<State>

    init(seed: UInt64, channel: GRPCChannel, recorder: LoadRecorder, settings: LoadSettings, mode: Mode) {
        self.channel = channel
        self.recorder = recorder
        self.settings = settings
        self.mode = mode
        state = Mutex(State(workload: settings.workload?.makeCaller(seed: seed)))
    }

    /// Closed loop: sends calls until the end time, then counts down the
    /// latch. Each pass of the loop sends one call; it loops only when that
    /// call was answered before `send` returned.
    func runClosedLoop() {
        guard case .closedLoop(let latch) = mode else { preconditionFailure("not a closed-loop caller") }
        while true {
            guard monotonicNanoseconds() < settings.endNanoseconds else {
                latch.countDown()
                return
            }
            state.withLock { $0.starting = true }
            send(intendedStartNanoseconds: nil)
            let again = state.withLock { state in
                state.starting = false
                defer { state.nextDeferred = false }
                return state.nextDeferred
            }
            if !again { return }
        }
    }

    /// Open loop: one call whose latency counts from when the schedule
    /// wanted it sent (no coordinated omission).
    func sendScheduled(intendedStartNanoseconds: UInt64) {
        send(intendedStartNanoseconds: intendedStartNanoseconds)
    }

    private func send(intendedStartNanoseconds: UInt64?, resending: WorkloadOperation? = nil) {
        let operation: WorkloadOperation? =
            resending
            ?? settings.workload.map { workload in
                state.withLock { workload.nextOperation(&$0.workload!) }
            }
        let method = operation?.method ?? .healthCheck
        let request = operation?.request ?? WorkloadRequests.healthCheck()
        let start = intendedStartNanoseconds ?? monotonicNanoseconds()
        channel.unary(method: method.path, request: request, timeoutMilliseconds: settings.timeoutMilliseconds) {
            result in
            let now = monotonicNanoseconds()
            self.completed(operation, result: result, latencyNanoseconds: now &- start, completedAt: now)
        }
    }

    private func completed(
        _ operation: WorkloadOperation?, result: ClientResult, latencyNanoseconds: UInt64, completedAt: UInt64
    ) {
        if settings.retryTransient, let operation, case .failed(let status) = result,
            LoadSettings.transientCodes.contains(status.code),
            completedAt < settings.endNanoseconds &+ LoadSettings.retryGraceNanoseconds
        {
            // The answer is not final: ask again. Only the final answer is
            // recorded (and audited); the resends are counted apart.
            transientRetries.add(1, ordering: .relaxed)
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(LoadSettings.retryBackoffMilliseconds)) {
                self.send(intendedStartNanoseconds: nil, resending: operation)
            }
            return
        }
        var expected = true
        if let operation, let workload = settings.workload {
            let outcome: CallOutcome
            switch result {
            case .ok(let response):
                let replayed =
                    operation.retry == nil
                    ? nil : ResponseDecoding.replayed(method: operation.method, response: response)
                outcome = .acknowledged(replayed: replayed)
            case .failed(let status):
                outcome = CallOutcome(code: status.code, replayed: nil)
            }
            expected = state.withLock { workload.complete(operation, outcome: outcome, caller: &$0.workload!) }
        }
        recorder.record(
            latencyNanoseconds: latencyNanoseconds, completedAt: completedAt, result: result, expected: expected)

        switch mode {
        case .closedLoop:
            let deferred = state.withLock { state in
                if state.starting { state.nextDeferred = true }
                return state.starting
            }
            if !deferred { runClosedLoop() }
        case .openLoop(let pool):
            pool.release(self)
        }
    }
}

/// Counts callers down to zero and wakes the one waiter.
final class CountdownLatch: Sendable {
    private struct State {
        var remaining: Int
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(remaining: count, waiter: nil))
    }

    func countDown() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.remaining -= 1
            precondition(state.remaining >= 0, "latch counted down too often")
            guard state.remaining == 0 else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.remaining == 0 { return true }
                state.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
    }
}

/// Idle open-loop callers. Its size bounds the calls in flight.
final class CallerPool: Sendable {
    private let idle = Mutex<[LoadCaller]>([])

    func take() -> LoadCaller? { idle.withLock { $0.popLast() } }

    func release(_ caller: LoadCaller) { idle.withLock { $0.append(caller) } }

    var idleCount: Int { idle.withLock { $0.count } }
}
