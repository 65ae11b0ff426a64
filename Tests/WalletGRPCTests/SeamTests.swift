import Synchronization
import Testing
import WalletDomain
import WalletProto
import WalletTestSupport

@testable import WalletGRPC

/// The seam every call passes, in process with a context and no socket: the
/// router's table, the interceptors (authorization, rate limit) and the
/// wallet handlers' decoding and status mapping behind them.
@Suite struct SeamTests {
    static let permissions = """
        {"spiffe://casino/game-service": ["Credit", "Debit", "DefineAsset", "CreateWallet", "GetTransaction"],
         "backoffice": ["*"],
         "prober": ["/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"],
         "reports": {"methods": ["GetBalance"], "rate_per_second": 3}}
        """

    /// A server's router over an in-memory store, with the permissions given.
    struct Harness {
        let router: Router
        let store: InMemoryLedgerStore
        let health: HealthService

        init(permissions: String?, clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) throws {
            store = InMemoryLedgerStore(clock: { 1_000 })
            let wallet = WalletService(store: store, pageTokens: PageTokenCodec(secret: Array(repeating: 7, count: 32)))
            health = HealthService()
            let reflection = ReflectionService(serviceNames: ["wallet.v1.Wallet"])
            let policy = AccessPolicy(try permissions.map { try Permissions.parse(Array($0.utf8)) })
            router = Router(
                services: [wallet, health, reflection, reflection.v1Alpha],
                interceptors: [
                    Authorization(policy: policy), RateLimit(policy: policy, limiter: RateLimiter(clock: clock)),
                ])
        }

        /// Calls a unary method as `caller` and waits for its answer.
        func call(_ path: String, caller: String?, _ request: [UInt8] = []) async -> RPCResult {
            let route = try! #require(router.route(path: path))
            return await withCheckedContinuation { continuation in
                router.dispatchUnary(
                    route, context: CallContext(method: path, peer: "ipv4:127.0.0.1:1", caller: caller),
                    request: request
                ) { continuation.resume(returning: $0) }
            }
        }
    }

    @Test func everyServiceSitsInOneTable() throws {
        let harness = try Harness(permissions: nil)
        #expect(
            harness.router.paths == WalletMethod.allCases.filter { $0 != .healthCheck }.map(\.path) + [
                "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            ])
        #expect(
            harness.router.streamingPaths == [
                "/grpc.health.v1.Health/Watch", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            ])
        #expect(
            harness.router.serviceNames == [
                "wallet.v1.Wallet", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ])
    }

    @Test func withoutPermissionsEveryCallerMayCallEverything() async throws {
        let harness = try Harness(permissions: nil)
        let result = await harness.call(WalletMethod.defineAsset.path, caller: nil, ProtoWriter.defineAsset("USD", 2))
        guard case .ok = result else {
            Issue.record("expected OK, got \(result)")
            return
        }
    }

    @Test func aCallWithoutIdentityIsUnauthenticatedAndRecordsNothing() async throws {
        let harness = try Harness(permissions: Self.permissions)
        let result = await harness.call(
            WalletMethod.defineAsset.path, caller: nil, ProtoWriter.defineAsset("USD", 2))
        let refusal = try #require(ErrorDetails(result))
        #expect(refusal.code == RPCStatus.unauthenticatedCode)
        #expect(refusal.reason == "NO_CLIENT_IDENTITY")
        #expect(await harness.store.state.assets.isEmpty)
    }

    @Test func healthAnswersEveryCallerReflectionEveryAuthenticatedOne() async throws {
        let harness = try Harness(permissions: Self.permissions)
        // Health: no identity at all.
        guard case .ok = await harness.call("/grpc.health.v1.Health/Check", caller: nil) else {
            Issue.record("health refused a caller without identity")
            return
        }
        // Reflection: an identity with no entry in the file.
        let stream = FakeStream(incoming: [])
        let route = try #require(harness.router.route(path: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"))
        harness.router.dispatchStreaming(
            route, context: CallContext(method: route.path, caller: "stranger"), stream: stream)
        #expect(await stream.waitForFinish())
        #expect(stream.finished == .some(nil))
        // ... and not one without identity.
        let anonymous = FakeStream(incoming: [])
        harness.router.dispatchStreaming(route, context: CallContext(method: route.path, caller: nil), stream: anonymous)
        #expect(anonymous.finished??.code == RPCStatus.unauthenticatedCode)
    }

    @Test func anIdentityMayCallOnlyTheMethodsItIsAllowed() async throws {
        let harness = try Harness(permissions: Self.permissions)
        let game = "spiffe://casino/game-service"
        guard case .ok = await harness.call(WalletMethod.defineAsset.path, caller: game, ProtoWriter.defineAsset("USD", 2))
        else {
            Issue.record("DefineAsset is allowed to \(game)")
            return
        }
        let result = await harness.call(
            WalletMethod.transfer.path, caller: game, ProtoWriter.credit("t-1", wallet: "alice", amount: 5))
        let refusal = try #require(ErrorDetails(result))
        #expect(refusal.code == RPCStatus.permissionDeniedCode)
        #expect(refusal.reason == "METHOD_NOT_ALLOWED")
        #expect(refusal.metadata == ["caller": game, "method": "/wallet.v1.Wallet/Transfer"])
        // A full path of another service, and "*".
        guard case .ok = await harness.call("/grpc.health.v1.Health/Check", caller: "prober"),
            case .ok = await harness.call(
                WalletMethod.defineAsset.path, caller: "backoffice", ProtoWriter.defineAsset("EUR", 2))
        else {
            Issue.record("a full path or * did not allow its method")
            return
        }
        let unknown = try #require(ErrorDetails(await harness.call(WalletMethod.getBalance.path, caller: "stranger")))
        #expect(unknown.reason == "METHOD_NOT_ALLOWED")
    }

    @Test func aRefusedWriteRecordsNothing() async throws {
        let harness = try Harness(permissions: Self.permissions)
        _ = await harness.call(WalletMethod.defineAsset.path, caller: "backoffice", ProtoWriter.defineAsset("USD", 2))
        _ = await harness.call(WalletMethod.createWallet.path, caller: "backoffice", ProtoWriter.createWallet("alice"))
        let refused = await harness.call(
            WalletMethod.credit.path, caller: "reports", ProtoWriter.credit("t-refused", wallet: "alice", amount: 5))
        #expect(ErrorDetails(refused)?.reason == "METHOD_NOT_ALLOWED")
        #expect(await harness.store.state.transactions["t-refused"] == nil)
    }

    @Test func theWriterIsTheCertificatesIdentityNotTheRequests() async throws {
        let harness = try Harness(permissions: nil)
        _ = await harness.call(WalletMethod.defineAsset.path, caller: nil, ProtoWriter.defineAsset("USD", 2))
        _ = await harness.call(WalletMethod.createWallet.path, caller: nil, ProtoWriter.createWallet("alice"))
        let game = "spiffe://casino/game-service"
        let credited = await harness.call(
            WalletMethod.credit.path, caller: game,
            ProtoWriter.credit("t-1", wallet: "alice", amount: 5, metadata: ["caller": "someone-else"]))
        guard case .ok = credited else {
            Issue.record("credit failed: \(credited)")
            return
        }
        #expect(await harness.store.state.transactions["t-1"]?.caller == game)
    }

    @Test func badRequestsMapToInvalidArgumentWithTheField() async throws {
        let harness = try Harness(permissions: nil)
        let result = await harness.call(
            WalletMethod.credit.path, caller: nil, ProtoWriter.credit("t-1", wallet: "alice", amount: -5))
        let refusal = try #require(ErrorDetails(result))
        #expect(refusal.code == RPCStatus.invalidArgumentCode)
        #expect(refusal.metadata["field"] == "amount")
        let garbage = try #require(ErrorDetails(await harness.call(WalletMethod.credit.path, caller: nil, [0xFF, 0xFF])))
        #expect(garbage.code == RPCStatus.invalidArgumentCode)
        let unknown = try #require(
            ErrorDetails(await harness.call(WalletMethod.getTransaction.path, caller: nil, ProtoWriter.string(1, "nope"))))
        #expect(unknown.code == RPCStatus.notFoundCode)
        #expect(unknown.reason == "TRANSACTION_NOT_FOUND")
    }

    @Test func callsOverTheRateAreLimitedBeforeTheStore() async throws {
        let now = Mutex(ContinuousClock.now)
        let harness = try Harness(permissions: Self.permissions, clock: { now.withLock { $0 } })
        var codes: [Int32] = []
        for _ in 0..<5 {
            let result = await harness.call(WalletMethod.getBalance.path, caller: "reports", ProtoWriter.string(1, "nobody"))
            codes.append(ErrorDetails(result)?.code ?? RPCStatus.okCode)
        }
        // Three calls a second: three reach the store (a missing wallet), two are limited.
        #expect(codes == [5, 5, 5, 8, 8])
        let limited = try #require(
            ErrorDetails(await harness.call(WalletMethod.getBalance.path, caller: "reports", ProtoWriter.string(1, "x"))))
        #expect(limited.reason == "RATE_LIMITED")
        #expect(limited.metadata["caller"] == "reports")
        // A third of a second later one more token is there.
        now.withLock { $0 = $0.advanced(by: .milliseconds(340)) }
        let next = await harness.call(WalletMethod.getBalance.path, caller: "reports", ProtoWriter.string(1, "x"))
        #expect(ErrorDetails(next)?.code == RPCStatus.notFoundCode)
        // Health is never counted.
        guard case .ok = await harness.call("/grpc.health.v1.Health/Check", caller: "reports") else {
            Issue.record("health was rate limited")
            return
        }
    }

    @Test func aDeniedCallCostsNoToken() async throws {
        let now = Mutex(ContinuousClock.now)
        let harness = try Harness(permissions: Self.permissions, clock: { now.withLock { $0 } })
        for _ in 0..<10 {
            _ = await harness.call(WalletMethod.credit.path, caller: "reports", ProtoWriter.credit("t", wallet: "a", amount: 1))
        }
        let allowed = await harness.call(WalletMethod.getBalance.path, caller: "reports", ProtoWriter.string(1, "x"))
        #expect(ErrorDetails(allowed)?.code == RPCStatus.notFoundCode)
    }

    @Test func aReloadTakesEffectOnTheNextCall() async throws {
        let policy = AccessPolicy(try Permissions.parse(Array(#"{"reports": ["GetBalance"]}"#.utf8)))
        let authorization = Authorization(policy: policy)
        let context = CallContext(method: "/wallet.v1.Wallet/Credit", caller: "reports")
        #expect(authorization.admit(context)?.code == RPCStatus.permissionDeniedCode)
        policy.replace(try Permissions.parse(Array(#"{"reports": ["GetBalance", "Credit"]}"#.utf8)))
        #expect(authorization.admit(context) == nil)
    }
}

/// A refusal's code, ErrorInfo reason and metadata.
struct ErrorDetails {
    var code: Int32
    var reason: String
    var metadata: [String: String]

    init?(_ result: RPCResult) {
        guard case .failed(let status) = result else { return nil }
        code = status.code
        reason = ""
        metadata = [:]
        guard !status.details.isEmpty else { return }
        guard
            let unpacked = status.details.withUnsafeBufferPointer({
                google__rpc__status__unpack(nil, $0.count, $0.baseAddress)
            })
        else { return }
        defer { google__rpc__status__free_unpacked(unpacked, nil) }
        for index in 0..<unpacked.pointee.n_details {
            guard let any = unpacked.pointee.details[index],
                let info = google__rpc__error_info__unpack(nil, any.pointee.value.len, any.pointee.value.data)
            else { continue }
            defer { google__rpc__error_info__free_unpacked(info, nil) }
            reason = String(cString: info.pointee.reason)
            for entry in 0..<info.pointee.n_metadata {
                let pair = info.pointee.metadata[entry]!.pointee
                metadata[String(cString: pair.key)] = String(cString: pair.value)
            }
        }
    }
}

/// Just enough protobuf to write the requests these tests send.
enum ProtoWriter {
    static func varint(_ field: Int, _ value: Int64) -> [UInt8] {
        key(field, wireType: 0) + encodeVarint(UInt64(bitPattern: value))
    }

    static func string(_ field: Int, _ value: String) -> [UInt8] {
        bytes(field, Array(value.utf8))
    }

    static func bytes(_ field: Int, _ value: [UInt8]) -> [UInt8] {
        key(field, wireType: 2) + encodeVarint(UInt64(value.count)) + value
    }

    static func defineAsset(_ code: String, _ places: Int64) -> [UInt8] {
        string(1, code) + varint(2, places)
    }

    static func createWallet(_ id: String) -> [UInt8] {
        string(1, id)
    }

    static func credit(_ id: String, wallet: String, amount: Int64, metadata: [String: String] = [:]) -> [UInt8] {
        var message = string(1, id) + string(2, wallet) + string(3, "USD") + varint(4, amount)
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            message += bytes(6, string(1, key) + string(2, value))
        }
        return message
    }

    private static func key(_ field: Int, wireType: UInt64) -> [UInt8] {
        encodeVarint(UInt64(field) << 3 | wireType)
    }

    private static func encodeVarint(_ value: UInt64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            out.append(byte)
        } while value != 0
        return out
    }
}
