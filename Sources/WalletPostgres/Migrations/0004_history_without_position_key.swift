// Migration 4: wallet_history loses its primary key on `position`. Nothing
// looks a row up by position alone: history is read per wallet through
// (wallet_id, position DESC), and `position` stays unique (a sequence). Each
// recorded transaction paid for one more B-tree insert than it needed, one
// of seven per debit.
extension Migrations {
    static let m0004HistoryWithoutPositionKey = Migration(
        version: 4, name: "history without position key",
        sql: """
            ALTER TABLE wallet_history DROP CONSTRAINT wallet_history_pkey;
            """)
}
