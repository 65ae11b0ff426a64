import Logging
import Synchronization
import Testing
import WalletGRPC

@testable import WalletObservability

/// Call lines through the seam (a router in process, no socket), with an
/// injected clock for the summaries.
@Suite struct CallLoggingTests {
    /// A clock the test moves.
    final class TestClock: Sendable {
        private let instant = Mutex(ContinuousClock.now)
        var now: ContinuousClock.Instant { instant.withLock { $0 } }
        func advance(_ duration: Duration) { instant.withLock { $0 += duration } }
    }

    /// A service whose unary method answers OK, or fails as its request's
    /// first byte says (1: UNAVAILABLE, 2: INSUFFICIENT_FUNDS), and a
    /// stream that fails.
    struct Service: RoutedService {
        var serviceName: String { "wallet.v1.Wallet" }
        var routes: [Route] {
            [
                .unary("/wallet.v1.Wallet/Debit", transactionID: { _ in "bet-42" }) { _, request, respond in
                    switch request.first {
                    case 1: respond(.failed(RPCStatus(code: RPCStatus.unavailableCode, message: "db down", reason: "")))
                    case 2:
                        respond(
                            .failed(
                                RPCStatus(
                                    code: RPCStatus.failedPreconditionCode, message: "not enough",
                                    reason: "INSUFFICIENT_FUNDS")))
                    default: respond(.ok([]))
                    }
                },
                .streaming("/wallet.v1.Wallet/WatchEvents") { _, stream in
                    stream.finish(RPCStatus(code: RPCStatus.invalidArgumentCode, message: "bad cursor", reason: "INVALID_CURSOR"))
                },
            ]
        }
    }

    struct Harness {
        let sink = CapturedLines()
        let clock = TestClock()
        let logging: CallLogging
        let router: Router

        init(level: Logger.Level) {
            let sink = sink
            let logger = Logger(label: "wallet-calls") { label in
                JSONLinesLogHandler(label: label, level: level, sink: sink)
            }
            let clock = clock
            logging = CallLogging(logger: logger, summaryInterval: .seconds(10), now: { clock.now })
            router = Router(services: [Service()], interceptors: [logging])
        }

        func debit(_ first: UInt8, context: CallContext = CallContext(method: "/wallet.v1.Wallet/Debit")) {
            router.dispatchUnary(router.route(path: "/wallet.v1.Wallet/Debit")!, context: context, request: [first]) {
                _ in
            }
        }
    }

    static let traced = CallContext(
        method: "/wallet.v1.Wallet/Debit", peer: "ipv4:127.0.0.1:5", caller: "spiffe://casino/game-service",
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", requestID: "req-7")

    @Test func aFailedCallIsOneInfoLineWithItsFields() throws {
        let harness = Harness(level: .info)
        harness.debit(2, context: Self.traced)
        let lines = try harness.sink.objects
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        #expect(line["level"] as? String == "info")
        #expect(line["message"] as? String == "call failed")
        #expect(line["method"] as? String == "/wallet.v1.Wallet/Debit")
        #expect(line["code"] as? String == "FAILED_PRECONDITION")
        #expect(line["reason"] as? String == "INSUFFICIENT_FUNDS")
        #expect(line["error"] as? String == "not enough")
        #expect(line["caller"] as? String == "spiffe://casino/game-service")
        #expect(line["trace_id"] as? String == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(line["request_id"] as? String == "req-7")
        #expect(line["transaction_id"] as? String == "bet-42")
        #expect(line["elapsed_ms"] is Double || line["elapsed_ms"] is Int)
        #expect(line["time"] is String)
    }

    @Test func anInvalidTraceparentGivesNoTraceIDAndAbsentFieldsAreLeftOut() throws {
        let harness = Harness(level: .info)
        harness.debit(2, context: CallContext(method: "/wallet.v1.Wallet/Debit", traceparent: "00-nonsense"))
        let line = try #require(try harness.sink.objects.first)
        #expect(line["trace_id"] == nil)
        #expect(line["caller"] == nil)
        #expect(line["request_id"] == nil)
    }

    @Test func aSuccessfulCallAtInfoWritesNothing() {
        let harness = Harness(level: .info)
        for _ in 0..<100 { harness.debit(0) }
        #expect(harness.sink.texts.isEmpty)
    }

    @Test func atDebugEveryCallHasItsLineAndNothingIsSummarized() throws {
        let harness = Harness(level: .debug)
        harness.debit(0, context: Self.traced)
        for _ in 0..<5 { harness.debit(1) }
        let lines = try harness.sink.objects
        #expect(lines.count == 6)
        #expect(lines[0]["level"] as? String == "debug")
        #expect(lines[0]["code"] as? String == "OK")
        #expect(lines[0]["trace_id"] as? String == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(lines.dropFirst().allSatisfy { $0["code"] as? String == "UNAVAILABLE" && $0["level"] as? String == "info" })
    }

    /// An outage: 1,200 failed calls a second. Each kind logs its first
    /// failure, then one summary per 10 s interval with the count.
    @Test func repeatedFailuresAreSummarizedPerKindAndInterval() throws {
        let harness = Harness(level: .info)
        for _ in 0..<1_200 {
            harness.debit(1)
            harness.clock.advance(.microseconds(833))
        }
        harness.debit(2)
        harness.debit(2)
        #expect(try harness.sink.objects.count == 2)  // one per kind
        harness.clock.advance(.seconds(5))
        harness.logging.flushSummaries()
        #expect(try harness.sink.objects.count == 2)  // the interval has not ended
        harness.clock.advance(.seconds(5))
        harness.logging.flushSummaries()
        let lines = try harness.sink.objects
        #expect(lines.count == 4)
        let summaries = lines.suffix(2).sorted { ($0["code"] as! String) < ($1["code"] as! String) }
        #expect(summaries[0]["code"] as? String == "FAILED_PRECONDITION")
        #expect(summaries[0]["reason"] as? String == "INSUFFICIENT_FUNDS")
        #expect(summaries[0]["count"] as? Int == 1)
        #expect(summaries[1]["code"] as? String == "UNAVAILABLE")
        #expect(summaries[1]["count"] as? Int == 1_199)
        #expect(summaries.allSatisfy { $0["interval_s"] as? Int == 10 && $0["method"] as? String == "/wallet.v1.Wallet/Debit" })
        // The next interval starts with a line of its own again.
        harness.debit(1)
        #expect(try harness.sink.objects.last?["message"] as? String == "call failed")
    }

    @Test func aFailedStreamIsLoggedWhenItEnds() throws {
        let harness = Harness(level: .info)
        let stream = NullStream()
        harness.router.dispatchStreaming(
            harness.router.route(path: "/wallet.v1.Wallet/WatchEvents")!,
            context: CallContext(method: "/wallet.v1.Wallet/WatchEvents"), stream: stream)
        let line = try #require(try harness.sink.objects.first)
        #expect(line["code"] as? String == "INVALID_ARGUMENT")
        #expect(line["reason"] as? String == "INVALID_CURSOR")
        #expect(line["streaming"] as? Bool == true)
    }

    @Test func aLongRequestIDIsCut() throws {
        let harness = Harness(level: .info)
        harness.debit(
            1,
            context: CallContext(method: "/wallet.v1.Wallet/Debit", requestID: String(repeating: "r", count: 10_000)))
        let line = try #require(try harness.sink.objects.first)
        #expect((line["request_id"] as? String)?.utf8.count == CallLogging.headerValueBytesMax)
    }
}

/// A stream that reads nothing, sends nowhere and closes when finished.
final class NullStream: ServerStream {
    private let onCloseBody = Mutex<(@Sendable () -> Void)?>(nil)
    func read() async -> [UInt8]? { nil }
    func send(_ message: [UInt8]) async -> Bool { false }
    func finish(_ status: RPCStatus?) {
        onCloseBody.withLock { $0 }?()
    }
    func onClose(_ body: @escaping @Sendable () -> Void) { onCloseBody.withLock { $0 = body } }
}
