import Testing

@testable import WalletGRPC

/// The permissions file: exactly the contract's shape, or a refusal that
/// says what is wrong (a typo must never silently grant or deny).
@Suite struct PermissionsTests {
    @Test func theContractsExampleParses() throws {
        let permissions = try Permissions.parse(
            Array(
                """
                {"spiffe://casino/game-service": ["Credit", "Debit", "Authorize", "Settle", "Rollback", "GetBalance"],
                 "backoffice": ["*"],
                 "reports": ["GetBalance", "GetTransaction", "ListTransactions", "WatchEvents"]}
                """.utf8))
        let game = try #require(permissions.grant(for: "spiffe://casino/game-service"))
        #expect(game.allows("/wallet.v1.Wallet/Debit"))
        #expect(!game.allows("/wallet.v1.Wallet/Transfer"))
        #expect(game.ratePerSecond == nil)
        #expect(try #require(permissions.grant(for: "backoffice")).allows("/any.Service/Method"))
        #expect(try #require(permissions.grant(for: "reports")).allows("/wallet.v1.Wallet/WatchEvents"))
        #expect(permissions.grant(for: "stranger") == nil)
        #expect(
            permissions.methodsNotServed(["/wallet.v1.Wallet/GetBalance", "/wallet.v1.Wallet/GetTransaction"])
                .contains("/wallet.v1.Wallet/WatchEvents"))
    }

    @Test func anObjectEntryCarriesARate() throws {
        let permissions = try Permissions.parse(
            Array(#"{"reports": {"methods": ["GetBalance", "/grpc.health.v1.Health/Check"], "rate_per_second": 2.5}}"#.utf8))
        let grant = try #require(permissions.grant(for: "reports"))
        #expect(grant.methods == ["/wallet.v1.Wallet/GetBalance", "/grpc.health.v1.Health/Check"])
        #expect(grant.ratePerSecond == 2.5)
    }

    @Test(arguments: [
        (#"["Credit"]"#, "expected a JSON object"),
        (#"{"a": "Credit"}"#, "expected a JSON object"),
        (#"{"a": [1]}"#, "expected a JSON object"),
        (#"{"": ["Credit"]}"#, "an identity is empty"),
        (#"{"a": ["Cre dit"]}"#, "a: Cre dit is not a method name"),
        (#"{"a": ["/wallet.v1.Wallet"]}"#, "a: /wallet.v1.Wallet is not a method path"),
        (#"{"a": ["/x/y/z"]}"#, "a: /x/y/z is not a method path"),
        (#"{"a": {"methods": ["Credit"], "rate": 5}}"#, "unknown key \"rate\""),
        (#"{"a": {"rate_per_second": 5}}"#, "expected a JSON object"),
        (#"{"a": {"methods": ["Credit"], "rate_per_second": 0}}"#, "a: rate_per_second must be a number above 0"),
        (#"{"a": {"methods": ["Credit"], "rate_per_second": -1}}"#, "a: rate_per_second must be a number above 0"),
        ("not json", "expected a JSON object"),
    ])
    func aMalformedFileIsRefusedWithItsReason(file: String, reason: String) {
        do {
            _ = try Permissions.parse(Array(file.utf8))
            Issue.record("\(file) was accepted")
        } catch {
            #expect(error.reason.hasPrefix(reason) || error.reason.contains(reason), "\(error.reason)")
        }
    }
}
