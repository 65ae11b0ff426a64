// Migration 2: entries no longer carry a foreign key to transactions.
//
// The key was checked by a row-level trigger for every entry inserted (one
// SPI query per entry row): a fifth of Postgres's CPU per operation on a hot
// wallet. The service writes a transaction's row and its entries in the same
// database transaction and never deletes either (entries are append-only);
// `wallet-server verify` checks that every entry has its transaction and its
// wallet, so an orphan would still be found.
extension Migrations {
    static let m0002EntriesWithoutForeignKey = Migration(
        version: 2, name: "entries without foreign key",
        sql: """
            ALTER TABLE entries DROP CONSTRAINT entries_transaction_id_fkey;
            """)
}
