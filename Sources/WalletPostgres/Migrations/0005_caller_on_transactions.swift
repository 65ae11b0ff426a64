// Migration 5: every transaction row records the identity whose call wrote
// it (the client certificate's; '' when the call carried none), returned as
// `Transaction.caller`. A status change keeps the row's caller; expiries,
// written by the sweeper, have ''.
//
// Rows written before this migration get '': no identity was recorded for
// them, and the service cannot know one now. The default only fills them
// (Postgres 11 and later store it in the catalog: no table rewrite, so this
// migration is quick whatever the ledger's size) and is dropped at once, as
// migration 4 dropped its defaults: an instance still running the previous
// build (whose inserts do not name the column) fails its writes with a NOT
// NULL error, recording nothing, instead of writing rows that say "no
// identity" for calls that carried one. Stop every instance of the previous
// build before migrating (docs/operations.md).
extension Migrations {
    static let m0005CallerOnTransactions = Migration(
        version: 5, name: "caller on transactions",
        sql: """
            ALTER TABLE transactions ADD COLUMN caller text NOT NULL DEFAULT '';
            ALTER TABLE transactions ALTER COLUMN caller DROP DEFAULT;
            """)
}
