import Synchronization

/// Token buckets per identity: each holds at most one second's worth of
/// calls (at least one call) and refills at the identity's rate, so a caller may burst up to its
/// rate and keeps its rate on average. Only identities with a rate get a
/// bucket, so the table is bounded by the permissions file.
package final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var rate: Double
        var refilledAt: ContinuousClock.Instant
    }

    private let buckets = Mutex<[String: Bucket]>([:])
    private let clock: @Sendable () -> ContinuousClock.Instant

    package init(clock: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.clock = clock
    }

    /// Takes one call's token from `identity`'s bucket; false when it is
    /// empty (the call is over the rate). A changed rate applies from now.
    package func take(_ identity: String, ratePerSecond rate: Double) -> Bool {
        precondition(rate > 0, "a rate must be positive")
        let now = clock()
        return buckets.withLock { buckets in
            let capacity = max(1, rate)
            var bucket = buckets[identity] ?? Bucket(tokens: capacity, rate: rate, refilledAt: now)
            let elapsed = now - bucket.refilledAt
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.rate = rate
            bucket.tokens = min(capacity, bucket.tokens + max(0, seconds) * rate)
            bucket.refilledAt = now
            let allowed = bucket.tokens >= 1
            if allowed { bucket.tokens -= 1 }
            buckets[identity] = bucket
            return allowed
        }
    }

    /// Forgets identities no longer in the permissions (after a reload).
    package func retain(only identities: Set<String>) {
        buckets.withLock { buckets in
            buckets = buckets.filter { identities.contains($0.key) }
        }
    }
}
