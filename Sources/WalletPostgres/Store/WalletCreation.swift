import WalletDomain

/// A CreateWallet waiting in a lane.
struct PendingCreate: Sendable {
    let request: CreateWallet
    let completion: @Sendable (Result<(wallet: WalletRecord, created: Bool), LedgerError>) -> Void
}

/// Creates many wallets in one database transaction (group commit, as for
/// money movements): one round trip and one commit for everything a lane
/// queued. Creating a wallet is idempotent: an id that exists with the same
/// parameters answers "exists"; with others, WALLET_EXISTS. Within one
/// batch the first request of an id creates it and later ones compare
/// against it, as if they had come one after another.
enum WalletCreation {
    static func apply(_ requests: [CreateWallet], on connection: PostgresConnection, now: Timestamp)
        throws(PostgresError) -> [Result<(wallet: WalletRecord, created: Bool), LedgerError>]
    {
        var firstIndex: [String: Int] = [:]
        var ids: [String] = []
        var limits: [Int64] = []
        var labels: [String] = []
        for (index, request) in requests.enumerated() where firstIndex[request.walletID] == nil {
            firstIndex[request.walletID] = index
            ids.append(request.walletID)
            limits.append(request.overdraftLimit)
            labels.append(RowCoding.encodeMap(request.labels))
        }
        // Binary arrays: no text-literal quoting of ids or labels to get wrong.
        let idsParameter = PostgresBinaryArray.text(ids)
        let results = try connection.pipeline([
            ("begin", []),
            (
                "create_wallets",
                [
                    idsParameter, PostgresBinaryArray.int64(limits), PostgresBinaryArray.text(labels),
                    .text(String(now)), .text(hexString(HashChain.genesis)),
                ]
            ),
            ("load_wallets", [idsParameter]),
            ("commit", []),
        ])
        var inserted = Set<String>()
        for row in 0..<results[1].rowCount {
            if let id = results[1].string(row: row, column: 0) { inserted.insert(id) }
        }
        var stored: [String: WalletRecord] = [:]
        for row in 0..<results[2].rowCount {
            let wallet = RowCoding.wallet(results[2], row: row)
            stored[wallet.id] = wallet
        }
        return requests.enumerated().map { index, request in
            guard let wallet = stored[request.walletID] else {
                return .failure(.internalError("wallet vanished"))
            }
            if inserted.contains(request.walletID), firstIndex[request.walletID] == index {
                return .success((wallet, true))
            }
            do throws(LedgerError) {
                try Registry.existingWallet(wallet, matches: request)
                return .success((wallet, false))
            } catch {
                return .failure(error)
            }
        }
    }
}
