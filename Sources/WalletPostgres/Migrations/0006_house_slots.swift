// Migration 6: house slots beyond the first 16. A house slot wallet holds one
// Int64; when the slots a batch holds have no room for an amount, the store
// locks every slot of the asset (and, when none has room, opens the next
// one). That lookup goes through this index: the system wallets only (16
// per asset plus the slots opened since), by asset (the third part of
// `sys:house:<ASSET>:<slot>`), so it never scans the players' wallets. Building it reads the wallets table once and blocks
// writes to it meanwhile (seconds for millions of wallets).
extension Migrations {
    static let m0006HouseSlots = Migration(
        version: 6, name: "house slots",
        sql: """
            CREATE INDEX wallets_house_slots ON wallets (split_part(wallet_id, ':', 3)) WHERE is_system;
            """)
}
