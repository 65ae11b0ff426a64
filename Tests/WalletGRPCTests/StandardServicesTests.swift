import Synchronization
import Testing
import WalletGRPC

/// Health Watch and server reflection as handlers, over an in-process
/// stream: no socket, no shim.
@Suite struct StandardServicesTests {
    @Test func watchSendsServingThenNotServingAndEndsWhenServingStops() async throws {
        let health = HealthService()
        let stream = FakeStream(incoming: [[]])  // HealthCheckRequest{service: ""}
        let watching = Task { await health.watch(stream) }
        #expect(await stream.waitForSent(count: 1))

        health.stopServing()
        await watching.value

        #expect(stream.sent == [[0x08, 0x01], [0x08, 0x02]])  // SERVING, NOT_SERVING
        #expect(stream.finished == .some(nil))
    }

    @Test func watchOfAnUnknownServiceSaysSoAndEndsWhenTheClientLeaves() async throws {
        let health = HealthService()
        let stream = FakeStream(incoming: [[0x0A, 0x01, 0x78]])  // service: "x"
        let watching = Task { await health.watch(stream) }
        #expect(await stream.waitForSent(count: 1))

        stream.close()
        await watching.value

        #expect(stream.sent == [[0x08, 0x03]])  // SERVICE_UNKNOWN
        #expect(health.isServing)
    }

    @Test func descriptorIndexFindsSymbolsOfEveryKind() throws {
        let index = try DescriptorIndex(descriptorSet: ReflectionService.generatedDescriptorSet)

        let expected: [(String, String)] = [
            ("wallet.v1.Wallet", "wallet/v1/wallet.proto"),
            ("wallet.v1.Wallet.Credit", "wallet/v1/wallet.proto"),
            ("wallet.v1.CreditRequest", "wallet/v1/wallet.proto"),
            ("wallet.v1.CreditRequest.amount", "wallet/v1/wallet.proto"),
            ("grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"),
            ("grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"),
            ("google.protobuf.Any", "google/protobuf/any.proto"),
            ("grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"),
        ]
        for (symbol, file) in expected {
            #expect(index.fileName(containingSymbol: symbol) == file, "\(symbol)")
        }
        #expect(index.fileName(containingSymbol: "wallet.v1.Nope") == nil)
        #expect(
            index.fileWithDependencies("google/rpc/status.proto") == [
                "google/rpc/status.proto", "google/protobuf/any.proto",
            ])
        #expect(index.extensionNumbers(ofType: "wallet.v1.CreditRequest") == [])
        #expect(index.extensionNumbers(ofType: "wallet.v1.Nope") == nil)
    }

    @Test func reflectionAnswersEachRequestInOrderThenEndsOK() async throws {
        let reflection = ReflectionService(serviceNames: ["wallet.v1.Wallet", "grpc.health.v1.Health"])
        let listServices: [UInt8] = [0x3A, 0x00]
        let unknownSymbol: [UInt8] = [0x22, 0x03] + Array("a.B".utf8)
        let stream = FakeStream(incoming: [listServices, unknownSymbol, [0xFF]])  // last: malformed

        await reflection.serve(stream)

        #expect(stream.sent.count == 2)
        // original_request (2) echoes the request; list_services_response (6).
        #expect(stream.sent.first.map { $0.starts(with: [0x12, 0x02] + listServices + [0x32]) } == true)
        // error_response (7) { error_code: NOT_FOUND }
        #expect(stream.sent.last.map { $0.contains(0x3A) && $0.contains(0x08) && $0.contains(0x05) } == true)
        #expect(stream.finished??.code == RPCStatus.invalidArgumentCode)
    }
}

/// A `ServerStream` fed from a list; records what the handler sends.
final class FakeStream: ServerStream {
    private struct State {
        var incoming: [[UInt8]]
        var sent: [[UInt8]] = []
        var finished: RPCStatus?? = nil
        var closed = false
        var onClose: (@Sendable () -> Void)?
    }

    private let state: Mutex<State>

    init(incoming: [[UInt8]]) {
        state = Mutex(State(incoming: incoming))
    }

    var sent: [[UInt8]] { state.withLock { $0.sent } }
    var finished: RPCStatus?? { state.withLock { $0.finished } }

    func read() async -> [UInt8]? {
        state.withLock { $0.incoming.isEmpty ? nil : $0.incoming.removeFirst() }
    }

    func send(_ message: [UInt8]) async -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            state.sent.append(message)
            return true
        }
    }

    func finish(_ status: RPCStatus?) {
        state.withLock { state in
            precondition(state.finished == nil, "finished twice")
            state.finished = .some(status)
        }
        close()
    }

    func onClose(_ body: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state in
            if state.closed { return true }
            state.onClose = body
            return false
        }
        if runNow { body() }
    }

    /// The client goes away.
    func close() {
        let body = state.withLock { state in
            state.closed = true
            defer { state.onClose = nil }
            return state.onClose
        }
        body?()
    }

    func waitForFinish() async -> Bool {
        for _ in 0..<1000 {
            if finished != nil { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    func waitForSent(count: Int) async -> Bool {
        for _ in 0..<1000 {
            if sent.count >= count { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }
}
