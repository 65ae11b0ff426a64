import Synchronization
import WalletDomain

/// grpc.health.v1.Health: one serving status for the whole server, answered
/// by Check and followed by Watch streams. Stopping (drain) sends
/// NOT_SERVING to every watcher and ends its stream with OK, so an open Watch
/// never holds the shutdown up.
package final class HealthService: Sendable {
    /// Open Watch streams at most; more are RESOURCE_EXHAUSTED.
    package static let watchersMax = 1024
    /// The names Check and Watch know: "" is the server as a whole.
    package static let serviceNames: Set<String> = ["", "wallet.v1.Wallet"]

    package enum ServingStatus: Sendable, Equatable {
        case serving, notServing, serviceUnknown
    }

    private struct State {
        var serving = true
        var nextWatcherID: UInt64 = 0
        var watchers: [UInt64: AsyncStream<Bool>.Continuation] = [:]
    }

    private let state = Mutex(State())

    package init() {}

    package var isServing: Bool { state.withLock { $0.serving } }

    /// NOT_SERVING from here on; ends every Watch stream after telling it.
    package func stopServing() {
        let watchers = state.withLock { state in
            state.serving = false
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
            guard state.serving else {
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
            continuation.yield(true)
            return true
        }
        guard admitted else { return nil }
        stream.onClose { continuation.finish() }
        return updates
    }
}
