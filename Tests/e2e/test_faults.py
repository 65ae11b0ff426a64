"""Postgres breaking under load: restarted, stopped, frozen, read-only; a server instance killed.

Each test makes its own cluster (pg_faults.Cluster), starts wallet-server on it and drives mixed
load with wallet-bench --retry-transient while the fault happens. Each ends with the bench's
audit (every acknowledged transaction present once, with its effect; nothing it was told was
not recorded is recorded; no answer left in doubt; no INTERNAL) and a clean
`wallet-server verify`. Where the database is away for a while, a Health/Watch stream must see
NOT_SERVING during the outage and SERVING after, and a call made meanwhile must fail UNAVAILABLE
and record nothing. Short by default (E2E_FAULT_LOAD_SECONDS, E2E_FAULT_OUTAGE_SECONDS; scripts/faults
runs long ones).
"""
import os
import signal
import time

import grpc
import pytest

import conftest
import e2e_helpers as h
import pg_faults
from e2e_helpers import pb
from pg_faults import NOT_SERVING, OUTAGE_SECONDS, SERVING

C = grpc.StatusCode


@pytest.fixture(autouse=True)
def _server_alive_and_ledger_verified():
    """Overrides conftest's check after every test: these tests bring their own servers and verify them."""
    yield


@pytest.fixture
def cluster(server_binary):
    c = pg_faults.Cluster(server_binary)
    c.create()
    yield c
    c.destroy()


def start_server(server_binary, url, workdir, name, port=None):
    srv = conftest.Server(server_binary, url, os.path.join(workdir, name + ".log"))
    if port is not None:
        srv.port = port
        srv.address = "127.0.0.1:%d" % port
    srv.start()
    return srv


class Probe:
    """A wallet of our own, to make a call while the database is away and check its fate after."""

    def __init__(self, address):
        self.channel = grpc.insecure_channel(address)
        self.stub = h.wallet_grpc.WalletStub(self.channel)
        self.asset = h.new_asset()
        self.stub.DefineAsset(pb.DefineAssetRequest(asset=self.asset, decimal_places=2), timeout=h.TIMEOUT)
        self.wallet = h.new_wallet_id("probe")
        self.stub.CreateWallet(pb.CreateWalletRequest(wallet_id=self.wallet), timeout=h.TIMEOUT)
        self.refused = []

    def credit_while_away(self):
        """A credit sent during the outage must fail UNAVAILABLE, saying nothing was recorded."""
        tx = h.new_tx_id()
        with pytest.raises(grpc.RpcError) as caught:
            self.stub.Credit(pb.CreditRequest(transaction_id=tx, wallet_id=self.wallet, asset=self.asset, amount=5),
                             timeout=4.0)
        error = caught.value
        assert error.code() == C.UNAVAILABLE, "%s: %s" % (error.code(), error.details())
        assert "nothing was recorded" in error.details(), error.details()
        self.refused.append(tx)

    def check_nothing_recorded(self):
        """After the outage: the refused ids are unknown, and the same requests now apply fresh."""
        for tx in self.refused:
            h.expect_error(h.get_tx, C.NOT_FOUND, "TRANSACTION_NOT_FOUND", stub=self.stub, tx_id=tx)
            resp = self.stub.Credit(pb.CreditRequest(transaction_id=tx, wallet_id=self.wallet, asset=self.asset,
                                                     amount=5), timeout=h.TIMEOUT)
            assert not resp.replayed

    def close(self):
        self.channel.close()


def run_outage(server_binary, cluster, workdir, name, begin, end, expect_not_serving=True, probe_calls=True):
    """One server on `cluster` under load; begin() the fault, hold it OUTAGE_SECONDS, end() it.
    Returns the server (stopped) for log checks."""
    srv = start_server(server_binary, cluster.url, workdir, name)
    watch = pg_faults.HealthWatch(srv.address)
    probe = Probe(srv.address)
    try:
        watch.wait_for(SERVING, 10)
        bench = pg_faults.Bench(srv.address, cluster.url, workdir, name)
        bench.wait_loading()
        time.sleep(1.0)
        before = len(watch.statuses())
        began = time.monotonic()
        begin()
        try:
            if expect_not_serving:
                index = watch.wait_for(NOT_SERVING, OUTAGE_SECONDS + 5, after=before)
                print("%s: NOT_SERVING %.1f s after the fault began" % (name, watch.seen[index][0] - began))
            if probe_calls:
                probe.credit_while_away()
            left = OUTAGE_SECONDS - (time.monotonic() - began)
            if left > 0:
                time.sleep(left)
        finally:
            ended = time.monotonic()
            end()
        if expect_not_serving:
            index = watch.wait_for(SERVING, 30, after=before + 1)
            print("%s: SERVING %.1f s after the fault ended" % (name, watch.seen[index][0] - ended))
        else:
            h.wait_until(lambda: watch.statuses()[-1] == SERVING, 30, what="SERVING")
        report = bench.finish()
        print("%s: %d calls, %.0f/s, p99 %.1f ms, max %.1f ms" % (
            name, report["calls"], report["throughput"], report["p99_ms"], report["max_ms"]))
        probe.check_nothing_recorded()
        assert srv.alive(), srv.log()
    finally:
        watch.close()
        probe.close()
        code = srv.terminate() if srv.alive() else srv.proc.returncode
    assert code == 0, srv.log()
    h.run_verify(server_binary, cluster.url)
    return srv


def test_postgres_restarted_under_load(server_binary, cluster, workdir):
    """A crash restart (immediate: no checkpoint, in-flight commits cut) in the middle of the load."""
    run_outage(server_binary, cluster, workdir, "restart",
               begin=lambda: cluster.restart("immediate"), end=lambda: None,
               expect_not_serving=False, probe_calls=False)


def test_postgres_stopped_then_started(server_binary, cluster, workdir):
    srv = run_outage(server_binary, cluster, workdir, "stopped",
                     begin=lambda: cluster.stop("fast"), end=cluster.start)
    assert srv.log_count("database unreachable") > 0, srv.log()


def test_postgres_frozen(server_binary, cluster, workdir):
    """SIGSTOP on the postmaster and every backend: sessions stay open and nothing answers. Calls
    in flight wait (the bench's deadlines pass and it resends); the probe's timeout turns health
    NOT_SERVING; SIGCONT, and everything goes on."""
    srv = run_outage(server_binary, cluster, workdir, "frozen", begin=cluster.freeze, end=cluster.thaw,
                     probe_calls=False)
    assert srv.log_count("database unreachable: probe") > 0, srv.log()


def test_postgres_read_only(server_binary, cluster, workdir):
    """default_transaction_read_only through ALTER SYSTEM and a reload: open sessions' next
    transactions are read-only, so writes fail with 25006; then writable again."""
    def read_only():
        cluster.psql("ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")

    def writable():
        cluster.psql("SET default_transaction_read_only = off", "ALTER SYSTEM RESET default_transaction_read_only",
                     "SELECT pg_reload_conf()")
    srv = run_outage(server_binary, cluster, workdir, "read-only", begin=read_only, end=writable)
    assert srv.log_count("25006") > 0, "writes never met a read-only refusal:\n" + srv.log()
    assert srv.log_count("database read-only") > 0, srv.log()


def test_two_instances_one_killed(server_binary, cluster, workdir):
    """Two servers on one database, each under its own load; one is killed with SIGKILL (its
    lanes' batches cut wherever they were) and started again on its port, as a supervisor
    would: its clients' resends then get final answers, replays of whatever had committed."""
    first = start_server(server_binary, cluster.url, workdir, "instance-a")
    second = start_server(server_binary, cluster.url, workdir, "instance-b")
    try:
        bench_a = pg_faults.Bench(first.address, cluster.url, workdir, "instance-a")
        bench_b = pg_faults.Bench(second.address, cluster.url, workdir, "instance-b")
        bench_a.wait_loading()
        bench_b.wait_loading()
        time.sleep(1.5)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        time.sleep(1.0)
        first.start()
        report_a = bench_a.finish()
        report_b = bench_b.finish()
        print("killed instance: %d calls; other: %d calls" % (report_a["calls"], report_b["calls"]))
        assert second.alive(), second.log()
    finally:
        codes = [s.terminate() for s in (first, second) if s.alive()]
    assert codes == [0, 0], first.log() + second.log()
    h.run_verify(server_binary, cluster.url)
