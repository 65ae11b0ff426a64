"""wallet-bench against a real server: its open-loop pacer sends exactly the
scheduled calls at the asked rate, and its audit passes on a ledger it loaded.

The binary is WALLET_BENCH, else the debug build next to the server's.
"""
import json
import os
import re
import subprocess

import pytest

import conftest


def _bench_binary():
    path = os.environ.get("WALLET_BENCH", os.path.join(conftest.REPO, ".build", "debug", "wallet-bench"))
    if not os.access(path, os.X_OK):
        pytest.fail("wallet-bench not found or not executable: %s (set WALLET_BENCH or run `swift build`)" % path)
    return path


def _run(server, database_url, *args):
    cmd = [_bench_binary(), "--target", server.address, "--database-url", database_url, "--json"] + list(args)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    lines = res.stdout.strip().splitlines()
    assert lines, "wallet-bench printed nothing (exit %s):\n%s" % (res.returncode, res.stderr)
    report = json.loads(lines[-1])
    return res.returncode, report, res.stdout + res.stderr


def test_open_loop_sends_the_schedule_at_the_rate(server, database_url):
    rate, seconds = 400, 2
    rc, report, out = _run(server, database_url, "--scenario", "mixed", "--wallets", "50",
                           "--concurrency", "32", "--rate", str(rate), "--duration", str(seconds), "--timeline")
    assert rc == 0 and report["ok"], out
    assert report["mode"] == "open"
    # Every slot of the schedule is sent (the pacer wakes once per tick and
    # sends what is due), and none is dropped.
    assert report["calls"] == rate * seconds, out
    assert report["unsent"] == 0, out
    assert report["errors"] == 0 and report["unexpected"] == 0, out
    assert report["verify_ok"] is True, out
    assert seconds <= report["elapsed_s"] < seconds + 1.0, out
    # Spread over the run, not sent in a burst: at 400/s a quarter second
    # holds about 100 of the 800 completions; a burst would put most of
    # them into one or two quarters.
    per_quarter = [int(m.group(1)) for m in re.finditer(r"^\s+[0-9.]+ s: (\d+) calls", out, re.MULTILINE)]
    assert sum(per_quarter) == rate * seconds, out
    assert max(per_quarter) <= 0.4 * rate * seconds, out


def test_closed_loop_hot_wallet_audits_clean(server, database_url):
    rc, report, out = _run(server, database_url, "--scenario", "hot", "--concurrency", "8", "--duration", "1")
    assert rc == 0 and report["ok"], out
    assert report["mode"] == "closed" and report["calls"] > 0, out
    assert report["errors"] == 0 and report["verify_ok"] is True, out
