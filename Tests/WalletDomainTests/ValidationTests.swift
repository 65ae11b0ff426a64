import Testing
import WalletDomain
import WalletTestSupport

/// One malformed request and the INVALID_<FIELD> it must get.
struct InvalidRequest: Sendable, CustomTestStringConvertible {
    var name: String
    var field: String
    var build: @Sendable () throws -> Void

    var testDescription: String { name }
}

/// One well-formed request at the edge of a limit.
struct ValidRequest: Sendable, CustomTestStringConvertible {
    var name: String
    var build: @Sendable () throws -> Void

    var testDescription: String { name }
}

private let long129 = String(repeating: "a", count: 129)
private let long128 = String(repeating: "a", count: 128)
private let bigMap = Dictionary(uniqueKeysWithValues: (0...Limits.metadataEntriesMax).map { ("k\($0)", "v") })
private let fullMap = Dictionary(uniqueKeysWithValues: (1...Limits.metadataEntriesMax).map { ("k\($0)", "v") })

private func creditWith(
    id: String = "t1", wallet: String = "alice", asset: String = "USD", amount: Int64 = 1, bucket: String = "",
    metadata: [String: String] = [:]
) throws(LedgerError) {
    _ = try Credit(
        transactionID: id, walletID: wallet, asset: asset, amount: amount, bucket: bucket, metadata: metadata)
}

private func debitWith(amount: Int64 = 1, funding: [String] = [], metadata: [String: String] = [:]) throws(LedgerError)
{
    _ = try Debit(
        transactionID: "t1", walletID: "alice", asset: "USD", amount: amount, funding: funding, metadata: metadata)
}

private func authorizeWith(amount: Int64 = 1, funding: [String] = [], expiresInMilliseconds: Int64 = 0)
    throws(LedgerError)
{
    _ = try Authorize(
        transactionID: "t1", walletID: "alice", asset: "USD", amount: amount, funding: funding, metadata: [:],
        expiresInMilliseconds: expiresInMilliseconds)
}

private func settleWith(
    id: String = "t1", authorization: String = "h1", capture: Int64 = 0, payout: Int64 = 0, payoutBucket: String = "",
    destination: String = "", metadata: [String: String] = [:]
) throws(LedgerError) {
    _ = try Settle(
        transactionID: id, authorizationID: authorization, captureAmount: capture, payout: payout,
        payoutBucket: payoutBucket, destinationWalletID: destination, metadata: metadata)
}

private func transferWith(from: String = "a", to: String = "b", amount: Int64 = 1, bucket: String = "")
    throws(LedgerError)
{
    _ = try Transfer(
        transactionID: "t1", fromWalletID: from, toWalletID: to, asset: "USD", amount: amount, bucket: bucket,
        metadata: [:])
}

@Suite("Validation: malformed requests are INVALID_<FIELD> with `field`")
struct ValidationTests {
    static let invalid: [InvalidRequest] = [
        // transaction_id: 1 to 128 bytes of printable ASCII, not sys:
        InvalidRequest(name: "empty transaction_id", field: "transaction_id") { try creditWith(id: "") },
        InvalidRequest(name: "129-byte transaction_id", field: "transaction_id") { try creditWith(id: long129) },
        InvalidRequest(name: "transaction_id with a newline", field: "transaction_id") { try creditWith(id: "a\nb") },
        InvalidRequest(name: "transaction_id with DEL", field: "transaction_id") { try creditWith(id: "a\u{7f}") },
        InvalidRequest(name: "non-ASCII transaction_id", field: "transaction_id") { try creditWith(id: "pé") },
        InvalidRequest(name: "sys: transaction_id", field: "transaction_id") { try creditWith(id: "sys:expire:h1") },
        // wallet_id: 1 to 128 bytes of [A-Za-z0-9._:@-], not sys:
        InvalidRequest(name: "empty wallet_id", field: "wallet_id") { try creditWith(wallet: "") },
        InvalidRequest(name: "129-byte wallet_id", field: "wallet_id") { try creditWith(wallet: long129) },
        InvalidRequest(name: "wallet_id with a space", field: "wallet_id") { try creditWith(wallet: "al ice") },
        InvalidRequest(name: "wallet_id with a slash", field: "wallet_id") { try creditWith(wallet: "a/b") },
        InvalidRequest(name: "non-ASCII wallet_id", field: "wallet_id") { try creditWith(wallet: "zoë") },
        InvalidRequest(name: "sys: wallet_id", field: "wallet_id") { try creditWith(wallet: "sys:house:USD:0") },
        InvalidRequest(name: "sys: CreateWallet", field: "wallet_id") {
            _ = try CreateWallet(walletID: "sys:house:USD:3", overdraftLimit: 0, labels: [:])
        },
        // asset: 1 to 16 of A-Z 0-9 _
        InvalidRequest(name: "empty asset", field: "asset") { try creditWith(asset: "") },
        InvalidRequest(name: "lowercase asset", field: "asset") { try creditWith(asset: "usd") },
        InvalidRequest(name: "17-byte asset", field: "asset") {
            try creditWith(asset: String(repeating: "A", count: 17))
        },
        InvalidRequest(name: "asset with a dash", field: "asset") { try creditWith(asset: "US-D") },
        InvalidRequest(name: "DefineAsset bad code", field: "asset") {
            _ = try DefineAsset(code: "chips", decimalPlaces: 0)
        },
        // amounts
        InvalidRequest(name: "zero credit", field: "amount") { try creditWith(amount: 0) },
        InvalidRequest(name: "negative credit", field: "amount") { try creditWith(amount: -5) },
        InvalidRequest(name: "Int64.min credit", field: "amount") { try creditWith(amount: .min) },
        InvalidRequest(name: "zero debit", field: "amount") { try debitWith(amount: 0) },
        InvalidRequest(name: "negative authorize", field: "amount") { try authorizeWith(amount: -1) },
        InvalidRequest(name: "zero transfer", field: "amount") { try transferWith(amount: 0) },
        InvalidRequest(name: "negative capture", field: "capture_amount") { try settleWith(capture: -1) },
        InvalidRequest(name: "negative payout", field: "payout") { try settleWith(payout: -1) },
        // buckets: 1 to 32 of a-z 0-9 _
        InvalidRequest(name: "uppercase bucket", field: "bucket") { try creditWith(bucket: "Cash") },
        InvalidRequest(name: "33-byte bucket", field: "bucket") {
            try creditWith(bucket: String(repeating: "b", count: 33))
        },
        InvalidRequest(name: "bucket with a dash", field: "bucket") { try creditWith(bucket: "free-spins") },
        InvalidRequest(name: "transfer bad bucket", field: "bucket") { try transferWith(bucket: "BONUS") },
        InvalidRequest(name: "bad payout_bucket", field: "payout_bucket") { try settleWith(payoutBucket: "Bonus") },
        // funding
        InvalidRequest(name: "duplicate funding", field: "funding") {
            try debitWith(funding: ["cash", "bonus", "cash"])
        },
        InvalidRequest(name: "bad funding bucket", field: "funding") { try debitWith(funding: ["cash", "Bonus"]) },
        InvalidRequest(name: "empty funding bucket", field: "funding") { try authorizeWith(funding: [""]) },
        InvalidRequest(name: "too many funding buckets", field: "funding") {
            try debitWith(funding: (0...Limits.fundingBucketsMax).map { "b\($0)" })
        },
        InvalidRequest(name: "authorize duplicate funding", field: "funding") {
            try authorizeWith(funding: ["bonus", "bonus"])
        },
        // expires_in_ms: 0 (default) to 7 days
        InvalidRequest(name: "negative expires_in_ms", field: "expires_in_ms") {
            try authorizeWith(expiresInMilliseconds: -1)
        },
        InvalidRequest(name: "expires_in_ms over 7 days", field: "expires_in_ms") {
            try authorizeWith(expiresInMilliseconds: 7 * 24 * 3_600_000 + 1)
        },
        InvalidRequest(name: "expires_in_ms Int64.max", field: "expires_in_ms") {
            try authorizeWith(expiresInMilliseconds: .max)
        },
        // wallets and assets
        InvalidRequest(name: "decimal_places 19", field: "decimal_places") {
            _ = try DefineAsset(code: "USD", decimalPlaces: 19)
        },
        InvalidRequest(name: "negative overdraft_limit", field: "overdraft_limit") {
            _ = try CreateWallet(walletID: "alice", overdraftLimit: -1, labels: [:])
        },
        InvalidRequest(name: "too many labels", field: "labels") {
            _ = try CreateWallet(walletID: "alice", overdraftLimit: 0, labels: bigMap)
        },
        // metadata: at most 32 entries, keys 1 to 64 bytes, values at most 512 bytes
        InvalidRequest(name: "33 metadata entries", field: "metadata") { try creditWith(metadata: bigMap) },
        InvalidRequest(name: "empty metadata key", field: "metadata") { try creditWith(metadata: ["": "v"]) },
        InvalidRequest(name: "65-byte metadata key", field: "metadata") {
            try creditWith(metadata: [String(repeating: "k", count: 65): "v"])
        },
        InvalidRequest(name: "metadata key of 33 two-byte characters", field: "metadata") {
            try creditWith(metadata: [String(repeating: "é", count: 33): "v"])
        },
        InvalidRequest(name: "513-byte metadata value", field: "metadata") {
            try creditWith(metadata: ["k": String(repeating: "v", count: 513)])
        },
        InvalidRequest(name: "NUL in a metadata key", field: "metadata") { try creditWith(metadata: ["a\u{0}b": "v"]) },
        InvalidRequest(name: "NUL in a metadata value", field: "metadata") {
            try creditWith(metadata: ["k": "v\u{0}"])
        },
        InvalidRequest(name: "NUL in a label", field: "labels") {
            _ = try CreateWallet(walletID: "alice", overdraftLimit: 0, labels: ["tier": "\u{0}"])
        },
        InvalidRequest(name: "debit metadata", field: "metadata") { try debitWith(metadata: bigMap) },
        InvalidRequest(name: "settle metadata", field: "metadata") { try settleWith(metadata: ["": ""]) },
        // references to other transactions and wallets
        InvalidRequest(name: "empty authorization_id", field: "authorization_id") { try settleWith(authorization: "") },
        InvalidRequest(name: "129-byte authorization_id", field: "authorization_id") {
            try settleWith(authorization: long129)
        },
        InvalidRequest(name: "sys: destination", field: "destination_wallet_id") {
            try settleWith(destination: "sys:house:USD:1")
        },
        InvalidRequest(name: "bad destination", field: "destination_wallet_id") {
            try settleWith(destination: "table 9")
        },
        InvalidRequest(name: "empty rollback target", field: "target_transaction_id") {
            _ = try Rollback(transactionID: "r1", targetTransactionID: "", metadata: [:])
        },
        InvalidRequest(name: "rollback of itself", field: "target_transaction_id") {
            _ = try Rollback(transactionID: "r1", targetTransactionID: "r1", metadata: [:])
        },
        InvalidRequest(name: "rollback bad id", field: "transaction_id") {
            _ = try Rollback(transactionID: "", targetTransactionID: "d1", metadata: [:])
        },
        InvalidRequest(name: "empty reverse original", field: "original_transaction_id") {
            _ = try Reverse(transactionID: "v1", originalTransactionID: "", reason: "", metadata: [:])
        },
        InvalidRequest(name: "reverse of itself", field: "original_transaction_id") {
            _ = try Reverse(transactionID: "v1", originalTransactionID: "v1", reason: "", metadata: [:])
        },
        InvalidRequest(name: "513-byte reason", field: "reason") {
            _ = try Reverse(
                transactionID: "v1", originalTransactionID: "c1", reason: String(repeating: "r", count: 513),
                metadata: [:])
        },
        InvalidRequest(name: "NUL in reason", field: "reason") {
            _ = try Reverse(transactionID: "v1", originalTransactionID: "c1", reason: "oops\u{0}", metadata: [:])
        },
        InvalidRequest(name: "bad from_wallet_id", field: "from_wallet_id") { try transferWith(from: "") },
        InvalidRequest(name: "sys: from_wallet_id", field: "from_wallet_id") {
            try transferWith(from: "sys:house:USD:0")
        },
        InvalidRequest(name: "bad to_wallet_id", field: "to_wallet_id") { try transferWith(to: "b!") },
        InvalidRequest(name: "transfer to itself", field: "to_wallet_id") { try transferWith(from: "a", to: "a") },
    ]

    @Test(arguments: invalid)
    func malformedRequestIsInvalidArgumentNamingItsField(_ request: InvalidRequest) throws {
        do {
            try request.build()
            Issue.record("\(request.name) was accepted")
        } catch {
            let error = try #require(error as? LedgerError)
            #expect(error.code == .invalidArgument)
            #expect(error.reason == "INVALID_\(request.field.uppercased())")
            #expect(error.metadata["field"] == request.field)
        }
    }

    static let valid: [ValidRequest] = [
        ValidRequest(name: "128-byte transaction_id") { try creditWith(id: long128) },
        ValidRequest(name: "printable ASCII transaction_id") { try creditWith(id: " !~{}\"' 0190b6c2-7e5f-7abc") },
        ValidRequest(name: "128-byte wallet_id") { try creditWith(wallet: long128) },
        ValidRequest(name: "wallet_id with every allowed mark") { try creditWith(wallet: "A.b_c:d@e-f9") },
        ValidRequest(name: "16-byte asset") { try creditWith(asset: "ABCDEFGHIJ_12345") },
        ValidRequest(name: "32-byte bucket") { try creditWith(bucket: String(repeating: "b", count: 32)) },
        ValidRequest(name: "Int64.max credit") { try creditWith(amount: .max) },
        ValidRequest(name: "32 metadata entries") { try creditWith(metadata: fullMap) },
        ValidRequest(name: "64-byte key, 512-byte value") {
            try creditWith(metadata: [String(repeating: "k", count: 64): String(repeating: "v", count: 512)])
        },
        ValidRequest(name: "empty metadata value") { try creditWith(metadata: ["k": ""]) },
        ValidRequest(name: "16 funding buckets") {
            try debitWith(funding: (1...Limits.fundingBucketsMax).map { "b\($0)" })
        },
        ValidRequest(name: "expires_in_ms exactly 7 days") {
            try authorizeWith(expiresInMilliseconds: 7 * 24 * 3_600_000)
        },
        ValidRequest(name: "decimal_places 18") { _ = try DefineAsset(code: "ETH", decimalPlaces: 18) },
        ValidRequest(name: "overdraft_limit 0") { _ = try CreateWallet(walletID: "a", overdraftLimit: 0, labels: [:]) },
        ValidRequest(name: "512-byte reason") {
            _ = try Reverse(
                transactionID: "v1", originalTransactionID: "c1", reason: String(repeating: "r", count: 512),
                metadata: [:])
        },
        ValidRequest(name: "settle with zero capture and payout, empty destination") { try settleWith() },
    ]

    @Test(arguments: valid)
    func requestAtTheEdgeOfALimitIsAccepted(_ request: ValidRequest) {
        do {
            try request.build()
        } catch {
            Issue.record("\(request.name) was refused: \(error)")
        }
    }

    @Test func defaultsAreFilledIn() throws {
        let credit = try Credit(transactionID: "t", walletID: "a", asset: "USD", amount: 1, bucket: "", metadata: [:])
        #expect(credit.bucket == "cash")
        let debit = try Debit(transactionID: "t", walletID: "a", asset: "USD", amount: 1, funding: [], metadata: [:])
        #expect(debit.funding == ["cash"])
        let authorize = try Authorize(
            transactionID: "t", walletID: "a", asset: "USD", amount: 1, funding: [], metadata: [:],
            expiresInMilliseconds: 0)
        #expect(authorize.expiresInMilliseconds == 15 * 60 * 1000)
        let settle = try Settle(
            transactionID: "t", authorizationID: "h", captureAmount: 0, payout: 0, payoutBucket: "",
            destinationWalletID: "", metadata: [:])
        #expect(settle.payoutBucket == "cash")
        #expect(Limits.holdExpiryMaxMilliseconds == 7 * 24 * 3_600_000)
    }

    /// Validation runs before any lookup, so a malformed request never
    /// reaches the ledger and the caller may retry with a fixed one.
    @Test func aRejectedRequestRecordsNothing() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        let before = await ledger.state()
        #expect(throws: LedgerError.self) { try credit("", "alice", 0) }
        #expect(await ledger.state().transactions.count == before.transactions.count)
        try await ledger.ok(credit("c1", "alice", 10))
    }
}
