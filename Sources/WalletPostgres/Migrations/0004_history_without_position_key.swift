// Migration 4: wallet_history trades its primary key on `position` for a
// unique index on (wallet_id, position). Nothing looks a row up by position
// alone: history is read per wallet, paging with `position < cursor`, so what
// must stay unique is a position within its wallet, and the per-wallet index
// that pages already exists. Each recorded transaction paid for one more
// B-tree insert than it needed, one of seven per debit. (On a large table this
// builds an index under an exclusive lock: run `wallet-server migrate` in a
// quiet moment.)
extension Migrations {
    static let m0004HistoryWithoutPositionKey = Migration(
        version: 4, name: "history without position key",
        sql: """
            CREATE UNIQUE INDEX wallet_history_by_wallet_position ON wallet_history (wallet_id, position DESC);
            DROP INDEX wallet_history_by_wallet;
            ALTER TABLE wallet_history DROP CONSTRAINT wallet_history_pkey;
            """)
}
