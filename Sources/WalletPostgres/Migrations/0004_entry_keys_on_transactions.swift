// Migration 4: fewer index entries per operation.
//
// Index insertions were the largest single part of Postgres's CPU on the
// write path (about a third of it, profiled under the hot scenario), and a
// debit made seven of them. Two indexes go:
//
// - entries_by_transaction (two insertions per debit, one probe per id in
//   every batch, though only replays and targets have entries). A
//   transaction's row now carries its entries' keys (wallet, sequence, in
//   entry order), written with the row in the same statement; entries are
//   found through the entries' primary key. Entries keep their
//   transaction_id column, and `wallet-server verify` checks that both sides
//   agree.
// - wallet_history's primary key on `position`: nothing looks a history row
//   up by position alone (pages use (wallet_id, position)), and the sequence
//   behind it already makes positions unique.
//
// And the hold-expiry index gains `expires_at > 0` in its predicate (every
// hold expires; the sweeper's query says so too). Both partial indexes on
// open holds had the same predicate, so a generic plan made on a new
// database's empty tables could pick the expiry index for a batch's
// wallet-keyed lookup of open holds and scan every open hold there was
// (found by StoreTests.workerPlansMadeOnEmptyTablesLookRowsUpByKey); now
// only the wallet-keyed index answers a query that does not ask about
// expiry.
//
// Rows written before this migration get their keys here, in the same
// database transaction as the rest of it. The columns keep no default: an
// instance still running the previous build (whose inserts do not name them)
// fails its writes with a NOT NULL error instead of recording entries that
// no key finds. The migration holds its tables' locks while it rewrites
// every transaction row: stop every instance first (docs/operations.md).
extension Migrations {
    static let m0004EntryKeysOnTransactions = Migration(
        version: 4, name: "entry keys on transactions",
        sql: """
            ALTER TABLE transactions
                ADD COLUMN entry_wallets text[] NOT NULL DEFAULT '{}',
                ADD COLUMN entry_sequences bigint[] NOT NULL DEFAULT '{}';
            UPDATE transactions t
            SET entry_wallets = e.wallets, entry_sequences = e.sequences
            FROM (SELECT transaction_id,
                         array_agg(wallet_id ORDER BY entry_index, wallet_id, sequence) AS wallets,
                         array_agg(sequence ORDER BY entry_index, wallet_id, sequence) AS sequences
                  FROM entries GROUP BY transaction_id) e
            WHERE t.transaction_id = e.transaction_id;
            ALTER TABLE transactions
                ALTER COLUMN entry_wallets DROP DEFAULT,
                ALTER COLUMN entry_sequences DROP DEFAULT;
            DROP INDEX entries_by_transaction;
            ALTER TABLE wallet_history DROP CONSTRAINT wallet_history_pkey;
            DROP INDEX transactions_hold_expiry;
            CREATE INDEX transactions_hold_expiry ON transactions (expires_at)
                WHERE kind = 'AUTHORIZE' AND status = 'PENDING' AND expires_at > 0;
            """)
}
