import Glibc
import CoreMetrics
import Prometheus
import Testing
import WalletGRPC

@testable import WalletObservability

/// Calls counted and timed in the seam, read back from a Prometheus
/// registry's text.
@Suite struct CallMetricsTests {
    struct Service: RoutedService {
        var serviceName: String { "wallet.v1.Wallet" }
        var routes: [Route] {
            [
                .unary("/wallet.v1.Wallet/Credit") { _, request, respond in
                    respond(
                        request.isEmpty
                            ? .ok([])
                            : .failed(RPCStatus(code: RPCStatus.unavailableCode, message: "down", reason: "")))
                }
            ]
        }
    }

    struct Health: RoutedService {
        var serviceName: String { "grpc.health.v1.Health" }
        var routes: [Route] {
            [.streaming("/grpc.health.v1.Health/Watch") { _, stream in stream.finish(nil) }]
        }
    }

    func text(_ registry: PrometheusCollectorRegistry) -> String {
        String(decoding: MetricsExposition.render(registry, process: nil), as: UTF8.self)
    }

    @Test func callsAreCountedByMethodAndCodeAndTimedByMethod() {
        let registry = PrometheusCollectorRegistry()
        let metrics = CallMetrics(factory: WalletSeries.factory(registry: registry))
        let router = Router(services: [Service(), Health()], interceptors: [metrics])
        let credit = router.route(path: "/wallet.v1.Wallet/Credit")!
        for request in [[], [], [], [1]] as [[UInt8]] {
            router.dispatchUnary(credit, context: CallContext(method: credit.path), request: request) { _ in }
        }
        let watch = router.route(path: "/grpc.health.v1.Health/Watch")!
        router.dispatchStreaming(watch, context: CallContext(method: watch.path), stream: NullStream())

        let text = text(registry)
        #expect(text.contains(#"wallet_grpc_calls_total{method="/wallet.v1.Wallet/Credit",code="OK"} 3"#))
        #expect(text.contains(#"wallet_grpc_calls_total{method="/wallet.v1.Wallet/Credit",code="UNAVAILABLE"} 1"#))
        #expect(text.contains(#"wallet_grpc_calls_total{method="/grpc.health.v1.Health/Watch",code="OK"} 1"#))
        #expect(text.contains(#"wallet_grpc_call_duration_seconds_count{method="/wallet.v1.Wallet/Credit"} 4"#))
        #expect(text.contains(#"wallet_grpc_call_duration_seconds_bucket{method="/wallet.v1.Wallet/Credit",le="0.0005"}"#))
        #expect(text.contains("# HELP wallet_grpc_calls_total "))
        #expect(text.contains("# TYPE wallet_grpc_calls_total counter"))
        #expect(text.contains("# HELP wallet_grpc_call_duration_seconds "))
        // No label but method and code, whatever the request held.
        for line in text.split(separator: "\n") where line.hasPrefix("wallet_grpc_calls_total{") {
            let labels = line.drop { $0 != "{" }.prefix { $0 != "}" }
            #expect(labels.split(separator: ",").map { $0.drop { $0 == "{" }.prefix { $0 != "=" } } == ["method", "code"])
        }
    }
}

@Suite struct MetricsExpositionTests {
    @Test func helpLinesAreAddedBeforeTheTypeLinesTheyDescribe() {
        let text = Array("# TYPE a counter\na 1\n# TYPE b gauge\nb 2\n# HELP c has one\n# TYPE c gauge\nc 3\n".utf8)
        let out = String(
            decoding: MetricsExposition.withHelp(text, help: ["a": "What a is.", "c": "other", "x": "unused"]),
            as: UTF8.self)
        #expect(out == "# HELP a What a is.\n# TYPE a counter\na 1\n# TYPE b gauge\nb 2\n# HELP c has one\n# TYPE c gauge\nc 3\n")
    }

    @Test func helpTextEscapesBackslashAndNewline() {
        #expect(MetricsExposition.escapedHelp("a\\b\nc") == "a\\\\b\\nc")
    }

    @Test func theProcessMetricsAreThere() throws {
        let process = try #require(ProcessMetrics.sample())
        #expect(process.cpuSeconds > 0)
        #expect(process.residentMemoryBytes > 1_000_000)
        #expect(process.virtualMemoryBytes >= process.residentMemoryBytes)
        #expect(process.openFileDescriptors >= 3)
        #expect(process.maxFileDescriptors >= process.openFileDescriptors)
        // Started within the last day, not in the future.
        let now = Double(LogTimestamp.now().seconds)
        #expect(process.startTimeSeconds <= now + 1 && process.startTimeSeconds > now - 86_400)
        for name in [
            "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
            "process_open_fds", "process_max_fds", "process_start_time_seconds",
        ] {
            #expect(process.exposition.contains("# HELP \(name) "))
            #expect(process.exposition.contains("\n\(name) "))
        }
    }

    /// Other tests open and close files meanwhile: 500 more is far beyond
    /// what they move the count by.
    @Test func openedFilesAreCounted() throws {
        let before = try #require(ProcessMetrics.sample()).openFileDescriptors
        let files = (0..<500).map { _ in open("/dev/null", O_RDONLY) }
        defer { for file in files { close(file) } }
        #expect(files.allSatisfy { $0 >= 0 })
        let after = try #require(ProcessMetrics.sample()).openFileDescriptors
        #expect(after > before + 400 && after < before + 600)
    }
}
