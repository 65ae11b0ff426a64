import Testing

@testable import WalletGRPC

/// The database's reasons for NOT_SERVING, alone and together with others:
/// health is SERVING only while none holds, and clears by itself.
@Suite struct HealthReasonsTests {
    @Test(arguments: [HealthService.NotServingReason.databaseUnreachable, .databaseReadOnly])
    func aDatabaseReasonTurnsHealthNotServingUntilCleared(reason: HealthService.NotServingReason) {
        let health = HealthService()
        #expect(health.status(of: "") == .serving)
        #expect(health.set(reason, holds: true))
        #expect(health.status(of: "") == .notServing)
        #expect(health.status(of: "wallet.v1.Wallet") == .notServing)
        #expect(health.notServingReasons == [reason])
        // Another reason at the same time keeps it NOT_SERVING when one clears.
        health.set(.listenerStopped, holds: true)
        #expect(health.set(reason, holds: false))
        #expect(health.status(of: "") == .notServing)
        health.set(.listenerStopped, holds: false)
        #expect(health.status(of: "") == .serving)
        #expect(!health.set(reason, holds: false), "clearing a reason that does not hold changes nothing")
    }

    @Test func reasonsHaveTheirWireNames() {
        #expect(HealthService.NotServingReason.databaseUnreachable.rawValue == "database_unreachable")
        #expect(HealthService.NotServingReason.databaseReadOnly.rawValue == "database_read_only")
    }
}
