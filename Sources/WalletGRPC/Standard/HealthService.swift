import Synchronization
import WalletDomain

/// grpc.health.v1.Health: one serving status for the whole server, answered
/// by Check and followed by Watch streams. The server is SERVING while no
/// reason against it holds (`NotServingReason`); watchers see each change.
/// Stopping (drain) sends NOT_SERVING to every watcher and ends its stream
/// with OK, so an open Watch never holds the shutdown up.
package final class HealthService: RoutedService {
    /// Open Watch streams at most; more are RESOURCE_EXHAUSTED.
    package static let watchersMax = 1024
    /// The names Check and Watch know: "" is the server as a whole.
    package static let serviceNames: Set<String> = ["", "wallet.v1.Wallet"]

    package enum ServingStatus: Sendable, Equatable {
        case serving, notServing, serviceUnknown
    }

    /// Why the server says NOT_SERVING; several may hold at once.
    package enum NotServingReason: String, Sendable, Hashable, CaseIterable {
        /// Shutting down: calls in flight drain, new ones are refused.
        case draining
        /// The listening socket no longer accepts connections (gRPC core
        /// 1.51 stops accepting after an accept error such as EMFILE): only
        /// a restart brings it back.
        case listenerStopped = "listener_stopped"
        /// The store cannot reach the database (no session opens, sessions
        /// break, the server stopped answering its probe): calls fail with
        /// UNAVAILABLE until it is back, which clears this by itself.
        case databaseUnreachable = "database_unreachable"
        /// The database answers but refuses writes (a standby, a demoted
        /// primary, `default_transaction_read_only`): every write fails with
        /// UNAVAILABLE; reads still work. Clears when writes commit again.
        case databaseReadOnly = "database_read_only"
    }

    private struct State {
        var reasons: Set<NotServingReason> = []
        var serving: Bool { reasons.isEmpty }
        var nextWatcherID: UInt64 = 0
        var watchers: [UInt64: AsyncStream<Bool>.Continuation] = [:]
    }

    private let state = Mutex(State())

    package init() {}

    package var serviceName: String { "grpc.health.v1.Health" }

    package var routes: [Route] {
        [
            .unary("/grpc.health.v1.Health/Check") { [self] _, request, respond in
                do throws(LedgerError) {
                    respond(.ok(try check(request)))
                } catch {
                    respond(.failed(StatusMapping.status(error)))
                }
            },
            .streaming("/grpc.health.v1.Health/Watch") { [self] _, stream in
                Task { await self.watch(stream) }
            },
        ]
    }

    package var isServing: Bool { state.withLock { $0.serving } }

    package var notServingReasons: Set<NotServingReason> { state.withLock { $0.reasons } }

    /// Check's answer to a serialized HealthCheckRequest.
    package func check(_ request: [UInt8]) throws(LedgerError) -> [UInt8] {
        let service = try Requests.healthCheck(request)
        guard Self.serviceNames.contains(service) else {
            throw LedgerError(.notFound, "SERVICE_NOT_FOUND", "unknown service \(service)")
        }
        return Responses.health(status(of: service))
    }

    /// Sets or clears a reason for NOT_SERVING; watchers hear of a change
    /// of the overall status. Returns whether the reason changed.
    @discardableResult
    package func set(_ reason: NotServingReason, holds: Bool) -> Bool {
        let (changed, serving, watchers) = state.withLock { state in
            let wasServing = state.serving
            let changed = holds ? state.reasons.insert(reason).inserted : state.reasons.remove(reason) != nil
            return (changed, state.serving, wasServing != state.serving ? Array(state.watchers.values) : [])
        }
        for continuation in watchers { continuation.yield(serving) }
        return changed
    }

    /// NOT_SERVING from here on; ends every Watch stream after telling it.
    package func stopServing() {
        let watchers = state.withLock { state in
            state.reasons.insert(.draining)
            defer { state.watchers = [:] }
            return state.watchers
        }
        for continuation in watchers.values {
            continuation.yield(false)
            continuation.finish()
        }
    }

    /// The status Check answers for `service`.
    package func status(of service: String) -> ServingStatus {
        guard Self.serviceNames.contains(service) else { return .serviceUnknown }
        return isServing ? .serving : .notServing
    }

    /// Serves one Watch call: the status now, then each change, until the
    /// client goes away or the server stops serving. An unknown service gets
    /// SERVICE_UNKNOWN and an open stream, as the health protocol asks.
    package func watch(_ stream: some ServerStream) async {
        guard let request = await stream.read() else {
            stream.finish(RPCStatus(code: RPCStatus.invalidArgumentCode, message: "Watch expects one request message"))
            return
        }
        let service: String
        do throws(LedgerError) {
            service = try Requests.healthCheck(request)
        } catch {
            stream.finish(StatusMapping.status(error))
            return
        }
        guard let updates = subscribe(closingWith: stream) else {
            stream.finish(
                RPCStatus(
                    code: RPCStatus.resourceExhaustedCode,
                    message: "more than \(Self.watchersMax) Watch streams are open"))
            return
        }
        let known = Self.serviceNames.contains(service)
        var lastSent: ServingStatus?
        for await serving in updates {
            let status: ServingStatus = !known ? .serviceUnknown : serving ? .serving : .notServing
            guard status != lastSent else { continue }
            guard await stream.send(Responses.health(status)) else { break }
            lastSent = status
        }
        stream.finish(nil)
    }

    /// The serving flag now and at each change; ends when `stream` closes or
    /// the server stops serving. Nil when too many watchers are open.
    private func subscribe(closingWith stream: some ServerStream) -> AsyncStream<Bool>? {
        // Only the newest status matters to a watcher that falls behind.
        let (updates, continuation) = AsyncStream.makeStream(of: Bool.self, bufferingPolicy: .bufferingNewest(1))
        let admitted = state.withLock { state in
            guard !state.reasons.contains(.draining) else {
                continuation.yield(false)
                continuation.finish()
                return true
            }
            guard state.watchers.count < Self.watchersMax else { return false }
            let id = state.nextWatcherID
            state.nextWatcherID += 1
            state.watchers[id] = continuation
            // Set under the lock, before anyone can finish the stream.
            continuation.onTermination = { [weak self] _ in
                self?.state.withLock { _ = $0.watchers.removeValue(forKey: id) }
            }
            continuation.yield(state.serving)
            return true
        }
        guard admitted else { return nil }
        stream.onClose { continuation.finish() }
        return updates
    }
}
