import Foundation

// Swift Testing runs every test, synchronous or not, on the cooperative
// thread pool, which on these machines is two threads wide. The servers under
// test run their streaming handlers as tasks on that same pool. A test that
// blocks a pool thread (waiting for a client process, sleeping in a poll
// loop) while another suite's test blocks the other starves those handlers;
// CI saw a bidirectional echo time out that way. So the helpers here wait
// off the pool: blocking waits on a thread of their own, polls with
// Task.sleep.

/// Runs `body` on a new thread and resumes with its result.
public func onOwnThread<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Polls `condition` every 10 ms, up to `seconds`, without holding a thread.
public func waitUntil(seconds: Double = 10, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
