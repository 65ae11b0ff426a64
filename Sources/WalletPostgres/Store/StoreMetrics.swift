import CoreMetrics

/// What a store's workers record, through swift-metrics' API: whatever
/// backend the process bootstrapped (the server: Prometheus), or nothing.
/// The store knows no backend. Names and meanings: docs/operations.md.
public struct StoreMetrics: Sendable {
    public static let laneQueueDepthLabel = "wallet_lane_queue_depth"
    public static let batchSizeLabel = "wallet_batch_size"
    public static let commitDurationLabel = "wallet_db_commit_duration_seconds"
    public static let connectionsUpLabel = "wallet_db_connections_up"
    public static let connectionsDownLabel = "wallet_db_connections_down"

    private let factory: any MetricsFactory
    /// Commands per committed transaction.
    let batchSize: Recorder
    /// A committed batch's transaction, first statement to COMMIT answered.
    let commitDuration: Timer
    /// Workers whose connection worked, or failed, at its last use (every
    /// worker counts in one of the two from its start).
    let connectionsUp: Meter
    let connectionsDown: Meter

    /// Records into `factory`; the process's `MetricsSystem` by default.
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        batchSize = Recorder(label: Self.batchSizeLabel, dimensions: [], aggregate: true, factory: factory)
        commitDuration = Timer(label: Self.commitDurationLabel, dimensions: [], factory: factory)
        connectionsUp = Meter(label: Self.connectionsUpLabel, dimensions: [], factory: factory)
        connectionsDown = Meter(label: Self.connectionsDownLabel, dimensions: [], factory: factory)
    }

    /// Records nothing (workers made outside a store: tests).
    static let none = StoreMetrics(factory: NOOPMetricsHandler.instance)

    /// Commands waiting in one lane, labelled by the worker's name
    /// (`wallet-db-3`, as its thread and its log lines are).
    func laneQueueDepth(lane: String) -> Gauge {
        Gauge(label: Self.laneQueueDepthLabel, dimensions: [("lane", lane)], factory: factory)
    }
}
