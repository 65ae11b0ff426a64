import CoreMetrics
import Prometheus

/// Every series the server exports, with the text of its `# HELP` line and a
/// histogram's buckets. The names are the ones the code that records them
/// uses (the store's in WalletPostgres' `StoreMetrics`, which knows nothing
/// of Prometheus); docs/operations.md says what each means and what an
/// alert on it would mean.
package enum WalletSeries {
    package static let help: [String: String] = [
        CallMetrics.callsLabel: "Calls answered, by method and gRPC status code (a stream counts when it ends).",
        CallMetrics.durationLabel:
            "Time from dispatch to answer of a call, by method (a stream: its lifetime), in seconds.",
        "wallet_lane_queue_depth":
            "Commands waiting in a lane (a store worker's queue) when it last took a batch; 0 when idle.",
        "wallet_batch_size": "Commands per committed database transaction (group commit).",
        "wallet_db_commit_duration_seconds":
            "Time of a committed batch's database transaction, first statement to COMMIT answered, in seconds.",
        "wallet_db_connections_up": "Store workers whose database connection worked at its last use.",
        "wallet_db_connections_down": "Store workers whose database connection failed at its last use.",
        "wallet_holds_expired_total": "Holds this instance released at expiry (EXPIRE transactions it wrote).",
    ]

    /// Seconds: 0.5 ms to 10 s.
    package static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10),
    ]

    /// Commands per transaction: powers of two up to the largest
    /// `--batch-size-max` that makes sense.
    package static let batchSizeBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024]

    /// A Prometheus factory over `registry` with these series' buckets.
    package static func factory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            CallMetrics.durationLabel: latencyBuckets,
            "wallet_db_commit_duration_seconds": latencyBuckets,
        ]
        factory.valueHistogramBuckets = ["wallet_batch_size": batchSizeBuckets]
        return factory
    }
}
