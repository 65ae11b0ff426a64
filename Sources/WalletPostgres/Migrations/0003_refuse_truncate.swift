// Migration 3: the append-only tables refuse TRUNCATE too. Row triggers do
// not fire for TRUNCATE, so until now it emptied entries or history without
// a word; a statement trigger refuses it like UPDATE and DELETE.
extension Migrations {
    static let m0003RefuseTruncate = Migration(
        version: 3, name: "refuse truncate",
        sql: """
            CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
                FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
            CREATE TRIGGER wallet_history_no_truncate BEFORE TRUNCATE ON wallet_history
                FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
            """)
}
