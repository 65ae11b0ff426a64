import Foundation
import Synchronization
import Testing
import WalletDomain
import WalletTestSupport

@testable import WalletPostgres

/// The thread that answers a worker's committed commands.
@Suite struct CompletionRelayTests {
    /// Records which deliveries ran, in what order, on which thread.
    final class Log: Sendable {
        let entries = Mutex<[(index: Int, thread: pthread_t)]>([])

        func delivery(_ index: Int) -> CompletionRelay.Delivery {
            (
                completion: { _ in
                    self.entries.withLock { $0.append((index, pthread_self())) }
                },
                result: .failure(.unavailable("delivery \(index)"))
            )
        }

        var indexes: [Int] { entries.withLock { $0.map(\.index) } }
    }

    @Test func deliveriesRunInOrderOnTheRelaysOwnThread() async throws {
        let relay = CompletionRelay()
        relay.start(name: "relay-test")
        let log = Log()
        let poster = try await onOwnThread {
            relay.post((0..<100).map(log.delivery))
            relay.post([])
            relay.post((100..<250).map(log.delivery))
            return pthread_self()
        }
        #expect(await waitUntil { log.indexes.count == 250 })
        relay.stop()
        #expect(log.indexes == Array(0..<250))
        let threads = log.entries.withLock { $0.map(\.thread) }
        #expect(Set(threads).count == 1)
        #expect(threads.first != poster)
    }

    @Test func stopAnswersEverythingQueuedBeforeItReturns() async throws {
        let relay = CompletionRelay()
        relay.start(name: "relay-test")
        let log = Log()
        let slow: CompletionRelay.Delivery = (
            completion: { _ in Thread.sleep(forTimeInterval: 0.05) }, result: .failure(.unavailable("slow"))
        )
        let counted = try await onOwnThread {
            relay.post([slow] + (0..<500).map(log.delivery))
            relay.stop()
            return log.indexes.count
        }
        #expect(counted == 500)
    }

    @Test func aPostAfterStopRunsOnThePostersThread() async throws {
        let relay = CompletionRelay()
        relay.start(name: "relay-test")
        relay.stop()
        let log = Log()
        let (counted, poster) = try await onOwnThread {
            relay.post([log.delivery(7)])
            return (log.indexes.count, pthread_self())
        }
        #expect(counted == 1)
        #expect(log.entries.withLock { $0.first?.thread } == poster)
    }
}
