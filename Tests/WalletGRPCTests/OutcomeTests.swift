import Synchronization
import Testing
import WalletDomain
import WalletTestSupport

@testable import WalletGRPC

/// What the interceptors that watch outcomes are told: each unary call's
/// status and time, each stream's end (its handler's status, or CANCELLED
/// when the transport closed it first), refused calls too, and the
/// request's transaction id on demand.
@Suite struct OutcomeTests {
    /// Records every outcome it is told of.
    final class Recorder: CallInterceptor {
        private let outcomes = Mutex<[CallOutcome]>([])
        var all: [CallOutcome] { outcomes.withLock { $0 } }
        func admit(_ context: CallContext) -> RPCStatus? { nil }
        var observesOutcome: Bool { true }
        func completed(_ outcome: CallOutcome) { outcomes.withLock { $0.append(outcome) } }
    }

    /// Refuses every call to `path`.
    struct Refuse: CallInterceptor {
        let path: String
        func admit(_ context: CallContext) -> RPCStatus? {
            context.method == path
                ? StatusMapping.status(code: RPCStatus.permissionDeniedCode, reason: "METHOD_NOT_ALLOWED", message: "no")
                : nil
        }
    }

    /// A service with a unary method that answers what it is told and
    /// streams that finish or wait to be closed.
    struct Service: RoutedService {
        var serviceName: String { "test.v1.Test" }
        var routes: [Route] {
            [
                .unary("/test.v1.Test/Echo", transactionID: WalletService.transactionID) { _, request, respond in
                    if request.first == 0xFF {
                        respond(
                            .failed(
                                StatusMapping.status(
                                    code: RPCStatus.failedPreconditionCode, reason: "INSUFFICIENT_FUNDS", message: "no")))
                    } else {
                        respond(.ok(request))
                    }
                },
                .streaming("/test.v1.Test/Finish") { _, stream in
                    stream.finish(RPCStatus(code: RPCStatus.abortedCode, message: "done"))
                },
                .streaming("/test.v1.Test/Hang") { _, stream in
                    // Finishes once told of the close, as Health/Watch does.
                    stream.onClose { stream.finish(nil) }
                },
            ]
        }
    }

    func router(_ interceptors: [any CallInterceptor]) -> Router {
        Router(services: [Service()], interceptors: interceptors)
    }

    func unary(_ router: Router, _ path: String, _ request: [UInt8], caller: String? = nil) -> RPCResult {
        let answer = Mutex<RPCResult?>(nil)
        router.dispatchUnary(
            router.route(path: path)!, context: CallContext(method: path, caller: caller), request: request
        ) { result in answer.withLock { $0 = result } }
        return answer.withLock { $0 }!
    }

    @Test func aUnaryCallReportsItsCodeReasonAndTime() {
        let recorder = Recorder()
        let router = router([recorder])
        _ = unary(router, "/test.v1.Test/Echo", ProtoWriter.string(1, "bet-1"))
        _ = unary(router, "/test.v1.Test/Echo", [0xFF])
        let outcomes = recorder.all
        #expect(outcomes.map(\.code) == [RPCStatus.okCode, RPCStatus.failedPreconditionCode])
        #expect(outcomes.map(\.reason) == ["", "INSUFFICIENT_FUNDS"])
        #expect(outcomes.allSatisfy { !$0.isStreaming && $0.elapsed >= .zero })
        #expect(outcomes[0].transactionID == "bet-1")
        // 0xFF is no field: the bytes cannot be walked, so no id.
        #expect(outcomes[1].transactionID == nil)
        #expect(outcomes[0].status == nil)
    }

    @Test func aRefusedCallIsReportedToo() {
        let recorder = Recorder()
        let router = router([Refuse(path: "/test.v1.Test/Echo"), recorder])
        guard case .failed(let status) = unary(router, "/test.v1.Test/Echo", []) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(status.code == RPCStatus.permissionDeniedCode)
        #expect(recorder.all.map(\.code) == [RPCStatus.permissionDeniedCode])
        #expect(recorder.all.map(\.reason) == ["METHOD_NOT_ALLOWED"])
    }

    @Test func aStreamReportsTheStatusItsHandlerFinishedWith() {
        let recorder = Recorder()
        let router = router([recorder])
        let stream = FakeStream(incoming: [])
        router.dispatchStreaming(
            router.route(path: "/test.v1.Test/Finish")!, context: CallContext(method: "/test.v1.Test/Finish"),
            stream: stream)
        #expect(stream.finished??.code == RPCStatus.abortedCode)
        // The close that followed the finish is not a second outcome.
        #expect(recorder.all.map(\.code) == [RPCStatus.abortedCode])
        #expect(recorder.all.allSatisfy { $0.isStreaming })
    }

    @Test func aStreamClosedBeforeItsHandlerFinishedIsCancelled() {
        let recorder = Recorder()
        let router = router([recorder])
        let stream = FakeStream(incoming: [])
        router.dispatchStreaming(
            router.route(path: "/test.v1.Test/Hang")!, context: CallContext(method: "/test.v1.Test/Hang"),
            stream: stream)
        #expect(recorder.all.isEmpty)
        stream.close()
        #expect(recorder.all.map(\.code) == [RPCStatus.cancelledCode])
    }

    /// Records which of its methods were called, so that a test can see the
    /// wrapper pass each one through (a requirement with a default that the
    /// wrapper does not implement would run the default instead).
    final class Recording: ServerStream {
        let calls = Mutex<[String]>([])
        func read() async -> [UInt8]? {
            calls.withLock { $0.append("read") }
            return [1]
        }
        func send(_ message: [UInt8]) async -> Bool {
            calls.withLock { $0.append("send") }
            return true
        }
        func send(all messages: [[UInt8]]) async -> Int {
            calls.withLock { $0.append("send(all:) \(messages.count)") }
            return messages.count
        }
        func finish(_ status: RPCStatus?) { calls.withLock { $0.append("finish") } }
        func onClose(_ body: @escaping @Sendable () -> Void) { calls.withLock { $0.append("onClose") } }
    }

    @Test func theWrapperPassesEveryStreamMethodThrough() async {
        let base = Recording()
        let wrapped = ObservedStream(base) { _ in }
        _ = await wrapped.read()
        _ = await wrapped.send([1])
        #expect(await wrapped.send(all: [[1], [2], [3]]) == 3)
        wrapped.onClose {}
        wrapped.finish(nil)
        // The wrapper's own onClose registration comes first, at init.
        #expect(base.calls.withLock { $0 } == ["onClose", "read", "send", "send(all:) 3", "finish"])
    }

    @Test func aRefusedStreamIsReportedOnce() {
        let recorder = Recorder()
        let router = router([Refuse(path: "/test.v1.Test/Hang"), recorder])
        let stream = FakeStream(incoming: [])
        router.dispatchStreaming(
            router.route(path: "/test.v1.Test/Hang")!, context: CallContext(method: "/test.v1.Test/Hang"),
            stream: stream)
        #expect(stream.finished??.code == RPCStatus.permissionDeniedCode)
        #expect(recorder.all.map(\.code) == [RPCStatus.permissionDeniedCode])
    }

    @Test func withoutObserversNothingIsReported() {
        let router = router([Refuse(path: "/none")])
        #expect(unary(router, "/test.v1.Test/Echo", [1]) == .ok([1]))
    }

    @Test(arguments: [
        (ProtoWriter.string(1, "tx-1") + ProtoWriter.string(2, "w"), "tx-1"),
        // The last field 1 wins, as protobuf reads it.
        (ProtoWriter.string(1, "a") + ProtoWriter.string(1, "b"), "b"),
        (ProtoWriter.string(2, "w"), nil),
        (ProtoWriter.varint(1, 7), nil),
        ([0x0A, 0x05, 0x61], nil),  // length past the end
        (ProtoWriter.string(1, String(repeating: "x", count: 300)), String(repeating: "x", count: 128)),
    ] as [([UInt8], String?)])
    func theTransactionIDIsReadFromFieldOne(request: [UInt8], expected: String?) {
        #expect(WalletService.transactionID(request) == expected)
    }

    @Test func writesAndGetTransactionNameTheirTransactionID() throws {
        let store = InMemoryLedgerStore(clock: { 1_000 })
        let wallet = WalletService(store: store, pageTokens: PageTokenCodec(secret: Array(repeating: 7, count: 32)))
        let named = Set(wallet.routes.filter { $0.transactionID != nil }.map(\.path))
        #expect(
            named == Set(
                [WalletMethod.credit, .debit, .authorize, .settle, .rollback, .reverse, .transfer, .getTransaction].map(
                    \.path)))
    }

    @Test func codesHaveTheirCanonicalNames() {
        #expect(RPCStatus.name(of: 0) == "OK")
        #expect(RPCStatus.name(of: 9) == "FAILED_PRECONDITION")
        #expect(RPCStatus.name(of: 16) == "UNAUTHENTICATED")
        #expect(RPCStatus.name(of: 17) == "CODE_17")
    }

    @Test func aLedgerErrorsStatusCarriesItsReason() {
        let status = StatusMapping.status(LedgerError(.failedPrecondition, "INSUFFICIENT_FUNDS", "no"))
        #expect(status.reason == "INSUFFICIENT_FUNDS")
    }
}
