import CoreMetrics
import Prometheus

/// The process's metrics backend: swift-metrics bootstrapped with a
/// Prometheus registry, and the endpoint that serves it.
package enum PrometheusMetrics {
    /// Binds the endpoint at `address` (a port in use fails here), then
    /// bootstraps swift-metrics, once per process, before any metric is
    /// made. The endpoint serves once started.
    package static func bootstrap(listen address: ListenAddress) throws(MetricsEndpoint.StartError) -> MetricsEndpoint
    {
        let registry = PrometheusCollectorRegistry()
        let endpoint = try MetricsEndpoint(address: address) { MetricsExposition.render(registry) }
        MetricsSystem.bootstrap(WalletSeries.factory(registry: registry))
        return endpoint
    }
}
