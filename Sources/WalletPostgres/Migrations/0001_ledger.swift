// Migration 1: the double-entry ledger. Forward-only: never edit a migration
// that has shipped; add the next number instead.
extension Migrations {
    static let m0001Ledger = Migration(
        version: 1, name: "ledger",
        sql: """
            CREATE TABLE assets (
                code            text PRIMARY KEY,
                decimal_places  integer NOT NULL CHECK (decimal_places BETWEEN 0 AND 18),
                created_at      bigint NOT NULL              -- Unix microseconds
            );

            -- One row per wallet. Its row lock is the wallet's serialization
            -- point: every write to the wallet's balances, entries and holds
            -- happens in a database transaction that holds it. It also keeps
            -- the head of the wallet's entry hash chain.
            CREATE TABLE wallets (
                wallet_id        text PRIMARY KEY,
                overdraft_limit  bigint NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0),
                labels           jsonb NOT NULL DEFAULT '{}',
                is_system        boolean NOT NULL DEFAULT false,
                created_at       bigint NOT NULL,
                last_sequence    bigint NOT NULL DEFAULT 0,
                last_hash        bytea NOT NULL
            );

            -- Materialized posted balance per (wallet, asset, bucket); always
            -- written in the same transaction as the entries it sums.
            CREATE TABLE balances (
                wallet_id  text NOT NULL REFERENCES wallets,
                asset      text NOT NULL REFERENCES assets,
                bucket     text NOT NULL,
                posted     bigint NOT NULL,
                PRIMARY KEY (wallet_id, asset, bucket)
            );

            -- One row per transaction_id, forever: the idempotency record
            -- (request + its hash) and the outcome, success or pinned
            -- rejection. Holds are AUTHORIZE rows in status PENDING.
            -- TOMBSTONE rows reserve an id that a Rollback saw first.
            CREATE TABLE transactions (
                transaction_id          text PRIMARY KEY,
                kind                    text NOT NULL,
                status                  text NOT NULL,
                wallet_id               text NOT NULL,
                asset                   text NOT NULL,
                amount                  bigint NOT NULL,
                created_at              bigint NOT NULL,
                metadata                jsonb NOT NULL DEFAULT '{}',
                target_id               text NOT NULL DEFAULT '',
                funding                 text NOT NULL DEFAULT '',   -- bucket:amount,...
                expires_at              bigint NOT NULL DEFAULT 0,
                reason                  text NOT NULL DEFAULT '',
                counterparty_wallet_id  text NOT NULL DEFAULT '',
                target_found            boolean NOT NULL DEFAULT false,
                request                 text NOT NULL DEFAULT '',
                request_hash            bytea NOT NULL
            );
            CREATE INDEX transactions_open_holds ON transactions (wallet_id)
                WHERE kind = 'AUTHORIZE' AND status = 'PENDING';
            CREATE INDEX transactions_hold_expiry ON transactions (expires_at)
                WHERE kind = 'AUTHORIZE' AND status = 'PENDING';

            -- Append-only: the trigger below refuses UPDATE and DELETE.
            CREATE TABLE entries (
                wallet_id       text NOT NULL,
                sequence        bigint NOT NULL,
                transaction_id  text NOT NULL REFERENCES transactions,
                entry_index     integer NOT NULL,
                asset           text NOT NULL,
                bucket          text NOT NULL,
                amount          bigint NOT NULL,
                hash            bytea NOT NULL,
                PRIMARY KEY (wallet_id, sequence)
            );
            CREATE INDEX entries_by_transaction ON entries (transaction_id);

            -- A wallet's history: every transaction that touches it (an entry
            -- on it, a hold of it, a transfer or settle into it). Not kept
            -- for system wallets.
            CREATE TABLE wallet_history (
                position        bigserial PRIMARY KEY,
                wallet_id       text NOT NULL,
                transaction_id  text NOT NULL
            );
            CREATE INDEX wallet_history_by_wallet ON wallet_history (wallet_id, position DESC);

            CREATE TABLE settings (
                name   text PRIMARY KEY,
                value  bytea NOT NULL
            );

            CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
            END $$;
            CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
                FOR EACH ROW EXECUTE FUNCTION refuse_change();
            CREATE TRIGGER wallet_history_append_only BEFORE UPDATE OR DELETE ON wallet_history
                FOR EACH ROW EXECUTE FUNCTION refuse_change();
            """)
}
