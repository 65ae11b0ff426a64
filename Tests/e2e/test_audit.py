"""`wallet-server verify` must really check: a clean ledger passes, tampered stored history fails.

Runs on its own database (tampering must not poison the session's ledger). The entry table is
found through information_schema (a table with wallet_id, amount and hash columns), so the test
does not depend on the schema's names; the append-only trigger is bypassed the way an attacker
with superuser rights would (session_replication_role = replica).
"""
import os
import subprocess
import uuid

import grpc
import pytest

import conftest
import e2e_helpers as h
from e2e_helpers import pb


def _entry_table(db_url):
    rows = conftest._psql(db_url, """
        SELECT table_schema || '.' || table_name FROM information_schema.columns
        WHERE column_name IN ('wallet_id', 'amount', 'hash')
          AND table_schema NOT IN ('pg_catalog', 'information_schema')
        GROUP BY table_schema, table_name HAVING count(*) = 3""").split()
    assert len(rows) == 1, "cannot tell which table holds the ledger entries: %s" % rows
    return rows[0]


def _verify_rc(binary, db_url):
    res = subprocess.run([binary, "verify", "--database-url", db_url], capture_output=True, text=True, timeout=300)
    return res.returncode, res.stdout + res.stderr


@pytest.mark.parametrize("tamper", [
    "UPDATE {t} SET amount = amount + 1 WHERE wallet_id = '{w}' AND amount = -30",
    "UPDATE {t} SET hash = decode(repeat('00', 32), 'hex') WHERE wallet_id = '{w}' AND amount = 100",
    "DELETE FROM {t} WHERE wallet_id = '{w}' AND amount = -30",
], ids=["entry amount", "entry hash", "entry deleted"])
def test_verify_detects_tampered_entries(server_binary, workdir, tamper):
    base = os.environ["DATABASE_URL"]
    name = "wallet_e2e_audit_" + uuid.uuid4().hex[:12]
    conftest._psql(base, 'CREATE DATABASE "%s"' % name)
    db_url = conftest._with_dbname(base, name)
    srv = conftest.Server(server_binary, db_url, os.path.join(workdir, name + ".log"))
    try:
        srv.start()
        with grpc.insecure_channel(srv.address) as ch:
            stub = h.wallet_grpc.WalletStub(ch)
            asset = h.new_asset()
            stub.DefineAsset(pb.DefineAssetRequest(asset=asset, decimal_places=2), timeout=h.TIMEOUT)
            w = h.new_wallet_id()
            stub.CreateWallet(pb.CreateWalletRequest(wallet_id=w), timeout=h.TIMEOUT)
            h.credit(stub, w, asset, 100)
            h.debit(stub, w, asset, 30)
            h.credit(stub, w, asset, 5)
        assert srv.terminate() == 0, srv.log()
        rc, out = _verify_rc(server_binary, db_url)
        assert rc == 0, "verify fails on a clean ledger:\n" + out
        table = _entry_table(db_url)
        conftest._psql(db_url, "SET session_replication_role = replica; " + tamper.format(t=table, w=w))
        rc, out = _verify_rc(server_binary, db_url)
        assert rc != 0, "verify did not notice tampering (%s):\n%s" % (tamper, out)
        assert out.strip(), "verify must print a report"
    finally:
        srv.kill()
        if os.environ.get("E2E_KEEP_DB") != "1":
            conftest._psql(base, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
