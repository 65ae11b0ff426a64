import WalletDomain

/// Re-checks every invariant of the contract against the database, from the
/// entries up: nothing it reports is taken on trust from a materialized row.
public enum LedgerVerifier {
    /// Entries read per round trip while walking hash chains.
    static let chainPageRowsMax = 10_000

    /// Problems found; empty when the ledger is sound.
    public static func verify(databaseURL: String) throws -> [String] {
        let connection = try PostgresConnection(url: databaseURL)
        defer { connection.close() }
        var problems: [String] = []
        func check(_ title: String, _ sql: String, _ parameters: [String?] = []) throws {
            let rows = try connection.execute(sql, parameters)
            for row in 0..<min(rows.rowCount, 20) {
                let values = (0..<rows.columnCount).map { rows.string(row: row, column: $0) ?? "NULL" }
                problems.append("\(title): \(values.joined(separator: " "))")
            }
            if rows.rowCount > 20 { problems.append("\(title): \(rows.rowCount - 20) more") }
        }
        // REPEATABLE READ: every check sees the same snapshot.
        try connection.executeScript("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        defer { _ = try? connection.executeScript("ROLLBACK") }

        // 1. posted = sum of entries, for every (wallet, asset, bucket).
        try check(
            "posted differs from the sum of entries (wallet asset bucket posted sum)",
            """
            SELECT coalesce(b.wallet_id, e.wallet_id), coalesce(b.asset, e.asset), coalesce(b.bucket, e.bucket),
                   coalesce(b.posted, 0), coalesce(e.total, 0)
            FROM balances b
            FULL JOIN (SELECT wallet_id, asset, bucket, sum(amount) AS total FROM entries
                       GROUP BY wallet_id, asset, bucket) e
              ON e.wallet_id = b.wallet_id AND e.asset = b.asset AND e.bucket = b.bucket
            WHERE coalesce(b.posted, 0) <> coalesce(e.total, 0)
            """)
        // 2. every asset sums to zero, and so does every transaction.
        try check(
            "entries of an asset do not sum to zero (asset sum)",
            "SELECT asset, sum(amount) FROM entries GROUP BY asset HAVING sum(amount) <> 0")
        try check(
            "a transaction's entries do not balance (transaction asset sum)",
            "SELECT transaction_id, asset, sum(amount) FROM entries GROUP BY transaction_id, asset HAVING sum(amount) <> 0"
        )
        // Every entry belongs to a stored transaction and a stored wallet
        // (checked here, not by foreign keys: see migration 2).
        try check(
            "entry without its transaction (wallet sequence transaction)",
            """
            SELECT e.wallet_id, e.sequence, e.transaction_id FROM entries e
            WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE t.transaction_id = e.transaction_id)
            """)
        try check(
            "entry of an unknown wallet (wallet sequence)",
            """
            SELECT e.wallet_id, e.sequence FROM entries e
            WHERE NOT EXISTS (SELECT 1 FROM wallets w WHERE w.wallet_id = e.wallet_id)
            """)
        // A transaction's row lists its entries' keys, in entry order
        // (migration 4); the entries name the same transaction and index.
        try check(
            "a transaction's entry keys and its entries disagree (transaction wallet sequence)",
            """
            SELECT coalesce(k.transaction_id, e.transaction_id), coalesce(k.wallet_id, e.wallet_id),
                   coalesce(k.sequence, e.sequence)
            FROM (SELECT t.transaction_id, u.wallet_id, u.sequence, u.n - 1 AS entry_index
                  FROM transactions t,
                       unnest(t.entry_wallets, t.entry_sequences) WITH ORDINALITY AS u(wallet_id, sequence, n)) k
            FULL JOIN entries e ON e.wallet_id = k.wallet_id AND e.sequence = k.sequence
                AND e.transaction_id = k.transaction_id AND e.entry_index = k.entry_index
            WHERE k.transaction_id IS NULL OR e.transaction_id IS NULL
            """)
        // History pages by position within a wallet, so positions must not
        // repeat; their sequence makes them unique (no index since migration 4).
        try check(
            "a history position repeats (position count)",
            "SELECT position, count(*) FROM wallet_history GROUP BY position HAVING count(*) > 1")
        // A credit, debit or transfer moved exactly its amount, in its asset,
        // on the wallets it names (the row's amount is not chained, so a
        // changed amount shows only here).
        try check(
            "entries differ from the transaction's amount (transaction kind amount on-wallet on-counterparty)",
            """
            SELECT t.transaction_id, t.kind, t.amount,
                   coalesce(sum(e.amount) FILTER (WHERE e.wallet_id = t.wallet_id), 0),
                   coalesce(sum(e.amount) FILTER (WHERE e.wallet_id = t.counterparty_wallet_id), 0)
            FROM transactions t LEFT JOIN entries e ON e.transaction_id = t.transaction_id
            WHERE t.kind IN ('CREDIT', 'DEBIT', 'TRANSFER') AND t.status <> 'REJECTED'
            GROUP BY t.transaction_id, t.kind, t.amount
            HAVING (t.kind = 'CREDIT'
                    AND coalesce(sum(e.amount) FILTER (WHERE e.wallet_id = t.wallet_id), 0) <> t.amount)
                OR (t.kind IN ('DEBIT', 'TRANSFER')
                    AND coalesce(sum(e.amount) FILTER (WHERE e.wallet_id = t.wallet_id), 0) <> -t.amount)
                OR (t.kind = 'TRANSFER'
                    AND coalesce(sum(e.amount) FILTER (WHERE e.wallet_id = t.counterparty_wallet_id), 0) <> t.amount)
                OR bool_or(e.asset <> t.asset)
            """)
        // 3. no bucket below its floor once open, unexpired holds are counted.
        try check(
            "bucket below its floor (wallet asset bucket available floor)",
            """
            WITH held AS (
                SELECT t.wallet_id, t.asset, split_part(part, ':', 1) AS bucket,
                       sum(split_part(part, ':', 2)::bigint) AS held
                FROM transactions t, unnest(string_to_array(t.funding, ',')) AS part
                WHERE t.kind = 'AUTHORIZE' AND t.status = 'PENDING' AND t.expires_at > $1
                GROUP BY 1, 2, 3
            )
            SELECT b.wallet_id, b.asset, b.bucket, b.posted - coalesce(h.held, 0),
                   CASE WHEN b.bucket = 'cash' THEN -w.overdraft_limit ELSE 0 END
            FROM balances b
            JOIN wallets w ON w.wallet_id = b.wallet_id AND NOT w.is_system
            LEFT JOIN held h ON h.wallet_id = b.wallet_id AND h.asset = b.asset AND h.bucket = b.bucket
            WHERE b.posted - coalesce(h.held, 0) < CASE WHEN b.bucket = 'cash' THEN -w.overdraft_limit ELSE 0 END
            """, [String(RowCoding.microseconds())])
        try check(
            "hold with a non-positive part (transaction funding)",
            """
            SELECT transaction_id, funding FROM transactions, unnest(string_to_array(funding, ',')) AS part
            WHERE kind = 'AUTHORIZE' AND split_part(part, ':', 2)::bigint <= 0
            """)
        // 4. one outcome per transaction_id: rejections and holds move no money;
        //    an expired hold has exactly one EXPIRE.
        try check(
            "a rejected, tombstone or authorize transaction has entries (transaction kind status)",
            """
            SELECT DISTINCT t.transaction_id, t.kind, t.status FROM transactions t JOIN entries e USING (transaction_id)
            WHERE t.status = 'REJECTED' OR t.kind IN ('TOMBSTONE', 'AUTHORIZE', 'EXPIRE')
            """)
        try check(
            "expired hold without exactly one EXPIRE (hold count)",
            """
            SELECT h.transaction_id, count(x.transaction_id) FROM transactions h
            LEFT JOIN transactions x ON x.kind = 'EXPIRE' AND x.target_id = h.transaction_id
            WHERE h.kind = 'AUTHORIZE' AND h.status = 'EXPIRED'
            GROUP BY h.transaction_id HAVING count(x.transaction_id) <> 1
            """)
        try check(
            "an expiry id holds something else, or an EXPIRE's hold is not EXPIRED (transaction kind target)",
            """
            SELECT x.transaction_id, x.kind, x.target_id FROM transactions x
            LEFT JOIN transactions h ON h.transaction_id = x.target_id
            WHERE (x.transaction_id LIKE 'sys:expire:%' AND x.kind <> 'EXPIRE')
               OR (x.kind = 'EXPIRE' AND (h.transaction_id IS NULL OR h.kind <> 'AUTHORIZE' OR h.status <> 'EXPIRED'))
            """)
        // A changed status has exactly one transaction that changed it.
        try check(
            "a settled, rolled-back or reversed transaction without exactly one compensation (transaction kind status count)",
            """
            SELECT o.transaction_id, o.kind, o.status, count(c.transaction_id)
            FROM transactions o
            LEFT JOIN transactions c ON c.target_id = o.transaction_id AND c.status IN ('POSTED', 'REVERSED') AND (
                (o.status = 'REVERSED' AND c.kind = 'REVERSE')
                OR (o.status = 'SETTLED' AND c.kind = 'SETTLE')
                OR (o.status = 'ROLLED_BACK' AND c.kind = 'ROLLBACK' AND c.amount > 0))
            WHERE o.status = 'REVERSED' OR o.status = 'SETTLED'
               OR (o.status = 'ROLLED_BACK' AND o.kind IN ('DEBIT', 'AUTHORIZE'))
            GROUP BY o.transaction_id, o.kind, o.status
            HAVING count(c.transaction_id) <> 1
            """)
        try check(
            "a stored request does not match its hash (transaction)",
            "SELECT transaction_id FROM transactions WHERE request_hash <> sha256(convert_to(request, 'UTF8'))")
        // 5. hash chains: gapless sequences, each hash recomputed, heads match.
        var lastWallet = ""
        var lastSequence: Int64 = 0
        var walletID = ""
        var previous = HashChain.genesis
        var expected: UInt64 = 1
        var heads: [String: (UInt64, [UInt8])] = [:]
        while true {
            let rows = try connection.execute(
                """
                SELECT wallet_id, sequence, transaction_id, entry_index, asset, bucket, amount, hash FROM entries
                WHERE (wallet_id, sequence) > ($1, $2) ORDER BY wallet_id, sequence LIMIT $3
                """, [lastWallet, String(lastSequence), String(chainPageRowsMax)])
            if rows.rowCount == 0 { break }
            for row in 0..<rows.rowCount {
                let (transactionID, _, entry) = RowCoding.entry(rows, row: row)
                if entry.walletID != walletID {
                    if !walletID.isEmpty { heads[walletID] = (expected - 1, previous) }
                    walletID = entry.walletID
                    previous = HashChain.genesis
                    expected = 1
                }
                if entry.sequence != expected {
                    problems.append("wallet \(walletID): sequence \(entry.sequence) where \(expected) was expected")
                    expected = entry.sequence
                }
                let hash = HashChain.hash(previous: previous, entry: entry, transactionID: transactionID)
                if hash != entry.hash {
                    problems.append("wallet \(walletID): hash chain breaks at sequence \(entry.sequence)")
                }
                previous = entry.hash
                expected += 1
                lastWallet = entry.walletID
                lastSequence = Int64(entry.sequence)
            }
        }
        if !walletID.isEmpty { heads[walletID] = (expected - 1, previous) }
        let wallets = try connection.execute("SELECT wallet_id, last_sequence, last_hash FROM wallets")
        for row in 0..<wallets.rowCount {
            let id = wallets.string(row: row, column: 0) ?? ""
            let sequence = UInt64(wallets.int64(row: row, column: 1) ?? 0)
            let hash = wallets.bytes(row: row, column: 2) ?? []
            let head = heads[id] ?? (0, HashChain.genesis)
            if head.0 != sequence || head.1 != hash {
                problems.append("wallet \(id): chain head \(sequence) does not match its last entry \(head.0)")
            }
        }
        return problems
    }
}
