/// Page tokens are bound to their wallet and signed with a server secret, so
/// a token for another wallet, or one the server never issued, is refused.
public struct PageTokenCodec: Sendable {
    private let secret: [UInt8]

    public init(secret: [UInt8]) {
        precondition(!secret.isEmpty, "page token secret must not be empty")
        self.secret = secret
    }

    public func encode(walletID: String, cursor: Int64) -> String {
        "\(cursor).\(hexString(signature(walletID: walletID, cursor: cursor)))"
    }

    public func decode(_ token: String, walletID: String) throws(LedgerError) -> Int64 {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let cursor = Int64(parts[0]), cursor > 0,
            String(parts[1]) == hexString(signature(walletID: walletID, cursor: cursor))
        else {
            throw LedgerError(
                .invalidArgument, "INVALID_PAGE_TOKEN", "page_token was not issued for this wallet by this service",
                metadata: ["field": "page_token"])
        }
        return cursor
    }

    private func signature(walletID: String, cursor: Int64) -> [UInt8] {
        // HMAC-shaped keyed hash, truncated: enough to tell our tokens apart.
        let inner = SHA256.hash(secret + Array("|\(walletID)|\(cursor)".utf8))
        return Array(SHA256.hash(secret + inner).prefix(12))
    }
}
