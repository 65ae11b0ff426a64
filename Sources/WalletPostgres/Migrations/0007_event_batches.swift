// Migration 7: the ledger as a stream of events (WatchEvents). Every batch
// that writes transaction records or changes a status adds one row here, in
// the same database transaction, as its last statement before COMMIT: the
// ids and the statuses it wrote, in the order the rules made them, and the
// player wallets they touch (the GIN index serves a stream filtered by
// wallet).
//
// `position` is taken from the sequence by that last INSERT, so after the
// batch holds every wallet lock it needs and keeps them until COMMIT: two
// batches that touch one wallet take their positions in the order they
// commit. Positions of batches on different wallets may commit out of order
// and a batch that fails after its INSERT leaves a hole; readers handle both
// (docs/architecture.md, "Events: an order that never skips"). The sequence
// must not cache values per session (CACHE 1, the default): a cached value
// would be taken before the locks.
//
// Rows written before this migration get events too, one per transaction
// record with its current status (the history of its status changes before
// the migration is not known), ordered by creation time, a thousand to a
// row.
extension Migrations {
    static let m0007EventBatches = Migration(
        version: 7, name: "event batches",
        sql: """
            CREATE SEQUENCE event_positions AS bigint CACHE 1;
            CREATE TABLE event_batches (
                position         bigint PRIMARY KEY DEFAULT nextval('event_positions'),
                transaction_ids  text[] NOT NULL,
                statuses         text[] NOT NULL,
                wallet_ids       text[] NOT NULL,
                CHECK (cardinality(transaction_ids) = cardinality(statuses))
            );
            ALTER SEQUENCE event_positions OWNED BY event_batches.position;
            CREATE INDEX event_batches_by_wallet ON event_batches USING gin (wallet_ids);
            CREATE TRIGGER event_batches_append_only BEFORE UPDATE OR DELETE ON event_batches
                FOR EACH ROW EXECUTE FUNCTION refuse_change();
            CREATE TRIGGER event_batches_no_truncate BEFORE TRUNCATE ON event_batches
                FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

            WITH existing AS (
                SELECT transaction_id, status,
                       row_number() OVER (ORDER BY created_at, transaction_id) AS number
                FROM transactions WHERE kind <> 'TOMBSTONE'
            ), chunked AS (
                SELECT transaction_id, status, number, (number - 1) / 1000 AS chunk FROM existing
            ), touched AS (
                SELECT c.chunk, array_agg(DISTINCT w) AS wallets
                FROM chunked c JOIN transactions t USING (transaction_id),
                     unnest(ARRAY[t.wallet_id, t.counterparty_wallet_id] || t.entry_wallets) AS w
                WHERE w <> '' AND w NOT LIKE 'sys:%'
                GROUP BY c.chunk
            )
            INSERT INTO event_batches (transaction_ids, statuses, wallet_ids)
            SELECT array_agg(c.transaction_id ORDER BY c.number), array_agg(c.status ORDER BY c.number),
                   COALESCE(t.wallets, '{}')
            FROM chunked c LEFT JOIN touched t USING (chunk)
            GROUP BY c.chunk, t.wallets
            ORDER BY c.chunk;
            """)
}
