"""A real high-availability pair: pg_auto_failover (monitor, primary, synchronous secondary, all on
loopback). The primary is killed under load; the server follows the new primary through the
formation's multi-host URL (target_session_attrs=read-write), health goes NOT_SERVING and back,
and no acknowledged transaction is lost (wallet-bench's audit against the new primary, then
verify). Needs pg_autoctl (Debian's postgresql-15-auto-failover, installed by scripts/setup).
"""
import os
import shutil
import time

import pytest

import conftest
import e2e_helpers as h
import pg_faults
from pg_faults import NOT_SERVING, SERVING


@pytest.fixture(autouse=True)
def _server_alive_and_ledger_verified():
    """Overrides conftest's check after every test: this test brings its own server and verifies it."""
    yield


@pytest.fixture
def formation():
    if shutil.which("pg_autoctl") is None:
        pytest.fail("pg_autoctl not found: install postgresql-15-auto-failover (scripts/setup does)")
    f = pg_faults.AutoFailover()
    try:
        started = time.monotonic()
        f.start()
        print("formation up in %.1f s" % (time.monotonic() - started))
        yield f
    finally:
        f.destroy()


def test_primary_killed_under_load_server_follows_the_new_primary(server_binary, formation, workdir):
    url = formation.url()
    # Synchronous: a commit the server acknowledged is on the secondary too.
    assert formation.synchronous_standbys("node1"), "node1 has no synchronous standby"
    srv = conftest.Server(server_binary, url, os.path.join(workdir, "failover.log"))
    srv.start()
    watch = pg_faults.HealthWatch(srv.address)
    try:
        watch.wait_for(SERVING, 10)
        bench = pg_faults.Bench(srv.address, url, workdir, "failover", seconds=pg_faults.LOAD_SECONDS + 12)
        bench.wait_loading()
        time.sleep(1.5)
        before = len(watch.statuses())
        killed = time.monotonic()
        formation.kill("node1")
        index = watch.wait_for(NOT_SERVING, 30, after=before)
        print("NOT_SERVING %.1f s after the primary was killed" % (watch.seen[index][0] - killed))
        index = watch.wait_for(SERVING, 90, after=index + 1)
        print("SERVING %.1f s after the primary was killed" % (watch.seen[index][0] - killed))
        formation.wait_states({"node2": "wait_primary"}, timeout=60)
        report = bench.finish()
        print("failover: %d calls, %.0f/s, p99 %.1f ms, max %.1f ms" % (
            report["calls"], report["throughput"], report["p99_ms"], report["max_ms"]))
        assert srv.alive(), srv.log()
        assert srv.log_count("database unreachable") > 0, srv.log()
    finally:
        watch.close()
        code = srv.terminate() if srv.alive() else srv.proc.returncode
    assert code == 0, srv.log()
    h.run_verify(server_binary, url)
