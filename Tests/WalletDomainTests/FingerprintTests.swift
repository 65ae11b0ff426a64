import Testing
import WalletDomain
import WalletTestSupport

/// A request's fingerprint survives its trip through storage unchanged, so
/// an identical retry is a replay even after a restart.
@Suite("Request fingerprints")
struct FingerprintTests {
    @Test(arguments: [
        "\u{301}starts with a combining mark", "=\u{301}", "a=b=c", "back\\slash", "new\nline", "semi;colon",
        "ü", "",
    ])
    func encodedFingerprintDecodesToTheSameFields(value: String) {
        let fingerprint = RequestFingerprint([
            ("reason", value), ("metadata", RequestFingerprint.mapValue(["k=\u{301}": value, "x;y": "z"])),
        ])
        let decoded = RequestFingerprint(encoded: fingerprint.encoded)
        #expect(decoded == fingerprint)
        #expect(decoded.differingFields(from: fingerprint).isEmpty)
        #expect(Array(decoded.encoded.utf8) == Array(fingerprint.encoded.utf8))
    }

    @Test func aReservedTargetIdIsRefused() {
        #expect(throws: LedgerError.self) {
            _ = try Rollback(transactionID: "r-1", targetTransactionID: "sys:expire:h-1", metadata: [:])
        }
        #expect(throws: LedgerError.self) {
            _ = try Reverse(transactionID: "r-2", originalTransactionID: "sys:expire:h-1", reason: "", metadata: [:])
        }
        #expect(throws: LedgerError.self) {
            _ = try Settle(
                transactionID: "s-1", authorizationID: "sys:x", captureAmount: 0, payout: 0, payoutBucket: "",
                destinationWalletID: "", metadata: [:])
        }
    }
}

/// Sums of holds on a wallet with a very large overdraft stay exact: no trap.
@Suite("Large amounts")
struct LargeAmountTests {
    @Test func holdsNearInt64MaxOnAnOverdraftWalletDoNotTrap() async throws {
        let store = InMemoryLedgerStore(clock: { 1_000_000 })
        _ = try await store.defineAsset(try DefineAsset(code: "USD", decimalPlaces: 2))
        _ = try await store.createWallet(try CreateWallet(walletID: "w", overdraftLimit: .max, labels: [:]))
        _ = try await store.execute(
            .credit(try Credit(transactionID: "c", walletID: "w", asset: "USD", amount: 1, bucket: "", metadata: [:])),
            deadline: nil)
        _ = try await store.execute(
            .authorize(
                try Authorize(
                    transactionID: "a1", walletID: "w", asset: "USD", amount: .max, funding: [], metadata: [:],
                    expiresInMilliseconds: 0)),
            deadline: nil)
        let second = try await store.execute(
            .authorize(
                try Authorize(
                    transactionID: "a2", walletID: "w", asset: "USD", amount: 1, funding: [], metadata: [:],
                    expiresInMilliseconds: 0)),
            deadline: nil)
        #expect(second.balance?.held == .max)
        let state = await store.state
        #expect(LedgerAuditor.problems(in: state, now: 1_000_000).isEmpty)
    }
}
