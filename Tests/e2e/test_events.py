"""WatchEvents end to end, from Python grpcio consumers (wallet-contract.md, "Events").

The long proof runs in the README's test command in a short form (E2E_EVENTS_SECONDS, default
6) and in scripts/events-proof for longer:

- two server instances on one database under a mixed load with retries (every call goes to
  either instance, and is retried with the same transaction_id on the other one when it
  fails), three consumers streaming the whole time (one per instance, one filtered by
  wallet); then the instance one consumer reads from is killed with SIGKILL mid-load and
  that consumer resumes on the other instance from its last cursor. At the end every
  consumer's events equal the ledger exactly: every transaction record and status change
  once, each transaction's last event its status now, per-wallet entry sequences 1..head in
  event order, nothing extra; every acknowledged transaction is in the ledger; verify passes.
- a consumer that stops reading while many events are written holds the server's memory
  within a bound, then catches up;
- cursors: empty, a resumed one, a filtered stream resumed from an unrelated cursor, forged
  ones, from_now, from_now with a cursor.
"""
import collections
import os
import random
import threading
import time
import uuid

import grpc
import pytest

import conftest
import e2e_helpers as h
from e2e_helpers import pb

C = grpc.StatusCode
LOAD_SECONDS = float(os.environ.get("E2E_EVENTS_SECONDS", "6"))
# What a consumer that stops reading may cost the server, in RSS.
SLOW_CONSUMER_RSS_BOUND_KB = 96 * 1024
RETRYABLE = {C.UNAVAILABLE, C.DEADLINE_EXCEEDED, C.RESOURCE_EXHAUSTED, C.CANCELLED, C.UNKNOWN}


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.fixture
def fresh_db():
    base = os.environ["DATABASE_URL"]
    name = "wallet_events_" + uuid.uuid4().hex[:12]
    conftest._psql(base, 'CREATE DATABASE "%s"' % name)
    yield conftest._with_dbname(base, name)
    if os.environ.get("E2E_KEEP_DB") != "1":
        conftest._psql(base, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


class Consumer(threading.Thread):
    """Reads WatchEvents from `address`; on a transport failure it resumes from its last cursor
    on `fallback` (the other instance). Keeps every event it got, in order."""

    def __init__(self, name, address, fallback=None, wallet_id=""):
        super().__init__(name=name, daemon=True)
        self.address, self.fallback, self.wallet_id = address, fallback, wallet_id
        self.events = []
        self.cursor = ""
        self.resumes = []
        self.error = None
        self.stopping = threading.Event()
        self.call = None
        self.lock = threading.Lock()

    def run(self):
        address = self.address
        while not self.stopping.is_set():
            channel = grpc.insecure_channel(address)
            try:
                stub = h.wallet_grpc.WalletStub(channel)
                call = stub.WatchEvents(pb.WatchEventsRequest(after_cursor=self.cursor, wallet_id=self.wallet_id))
                with self.lock:
                    self.call = call
                for event in call:
                    with self.lock:
                        self.events.append(event)
                        self.cursor = event.cursor
            except grpc.RpcError as e:
                if self.stopping.is_set() or e.code() == C.CANCELLED:
                    return
                if e.code() not in RETRYABLE or self.fallback is None:
                    self.error = e
                    return
                self.resumes.append((address, e.code(), len(self.events)))
                address = self.fallback
                time.sleep(0.2)
            finally:
                channel.close()

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def stop(self):
        self.stopping.set()
        with self.lock:
            if self.call is not None:
                self.call.cancel()
        self.join(timeout=30)


class Load:
    """Mixed writes on a set of wallets through either instance, each retried with the same
    transaction_id (on the other instance) until it gets a final answer."""

    def __init__(self, addresses, wallets, asset, threads=6):
        self.addresses = list(addresses)
        self.wallets, self.asset = wallets, asset
        self.acknowledged = set()
        self.problems = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(threads)]
        self.stubs = {a: h.wallet_grpc.WalletStub(grpc.insecure_channel(a)) for a in self.addresses}
        self.dead = set()

    def call(self, method, request):
        """Final answer of `method`, retried across instances: ('ok', response) or ('rej', code)."""
        deadline = time.monotonic() + 120
        attempt = 0
        while time.monotonic() < deadline:
            live = [a for a in self.addresses if a not in self.dead] or self.addresses
            address = live[attempt % len(live)]
            attempt += 1
            try:
                return "ok", getattr(self.stubs[address], method)(request, timeout=5)
            except grpc.RpcError as e:
                if e.code() in RETRYABLE:
                    time.sleep(0.05)
                    continue
                return "rej", e.code()
        with self.lock:
            self.problems.append("%s %r: no final answer in 120 s" % (method, request.transaction_id))
        return "gave up", None

    def worker(self, index):
        rng = random.Random(index)
        n = 0
        while not self.stop.is_set():
            n += 1
            wallet, other = rng.choice(self.wallets), rng.choice(self.wallets)
            tid = "ev-%d-%d-%s" % (index, n, uuid.uuid4().hex[:6])
            kind = rng.randrange(6)
            if kind == 0:
                req, method = pb.CreditRequest(transaction_id=tid, wallet_id=wallet, asset=self.asset, amount=30), "Credit"
            elif kind == 1:
                req, method = pb.DebitRequest(transaction_id=tid, wallet_id=wallet, asset=self.asset,
                                              amount=rng.randrange(1, 200)), "Debit"
            elif kind == 2:
                req, method = pb.AuthorizeRequest(transaction_id=tid, wallet_id=wallet, asset=self.asset,
                                                  amount=10), "Authorize"
            elif kind == 3 and other != wallet:
                req, method = pb.TransferRequest(transaction_id=tid, from_wallet_id=wallet, to_wallet_id=other,
                                                 asset=self.asset, amount=3), "Transfer"
            else:
                req, method = pb.CreditRequest(transaction_id=tid, wallet_id=wallet, asset=self.asset, amount=5), "Credit"
            outcome, response = self.call(method, req)
            if outcome == "ok" or outcome == "rej" and response == C.FAILED_PRECONDITION:
                with self.lock:
                    self.acknowledged.add(tid)
            elif outcome == "rej":
                with self.lock:
                    self.problems.append("%s %s: %s" % (method, tid, response))
            if method == "Authorize" and outcome == "ok":
                follow = pb.SettleRequest(transaction_id=tid + "-s", authorization_id=tid,
                                          destination_wallet_id=other if other != wallet else "") \
                    if rng.random() < 0.5 else pb.RollbackRequest(transaction_id=tid + "-r", target_transaction_id=tid)
                name = "Settle" if isinstance(follow, pb.SettleRequest) else "Rollback"
                outcome, response = self.call(name, follow)
                if outcome == "ok":
                    with self.lock:
                        self.acknowledged.add(follow.transaction_id)

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=150)


def ledger(db_url):
    rows = conftest._psql(db_url, "SELECT transaction_id, status FROM transactions WHERE kind <> 'TOMBSTONE'")
    statuses = dict(line.split("|") for line in rows.splitlines() if line)
    heads = conftest._psql(db_url, "SELECT wallet_id, last_sequence FROM wallets WHERE wallet_id NOT LIKE 'sys:%'")
    return statuses, {w: int(s) for w, s in (line.split("|") for line in heads.splitlines() if line)}


def highest_position(db_url):
    return int(conftest._psql(db_url, "SELECT coalesce(max(position), 0) FROM event_batches").strip())


def batch_of(event):
    return int(event.cursor.split(".")[0])


def expect_exact(events, statuses, heads, who):
    """The consumer's events equal the ledger exactly."""
    status_name = pb.TransactionStatus.Name
    positions = [tuple(int(x) for x in e.cursor.split(".")[:2]) for e in events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions), "%s: out of order or repeated" % who
    pairs = collections.Counter((e.transaction.transaction_id, e.transaction.status) for e in events)
    repeated = [p for p, n in pairs.items() if n > 1]
    assert not repeated, "%s: events repeated: %r" % (who, repeated[:5])
    last = {}
    first = {}
    for e in events:
        last[e.transaction.transaction_id] = status_name(e.transaction.status)
        first.setdefault(e.transaction.transaction_id, e)
    missing = set(statuses) - set(last)
    extra = set(last) - set(statuses)
    assert not missing and not extra, "%s: %d transactions without events (%r), %d events of none (%r)" % (
        who, len(missing), sorted(missing)[:5], len(extra), sorted(extra)[:5])
    wrong = [(t, last[t], s) for t, s in statuses.items() if last[t] != s]
    assert not wrong, "%s: last event's status is not the ledger's: %r" % (who, wrong[:5])
    following = {}
    for e in events:
        if first[e.transaction.transaction_id] is not e:
            continue
        for entry in e.transaction.entries:
            if entry.wallet_id.startswith("sys:"):
                continue
            expected = following.get(entry.wallet_id, 0) + 1
            assert entry.sequence == expected, "%s: %s sequence %d after %d" % (
                who, entry.wallet_id, entry.sequence, expected - 1)
            following[entry.wallet_id] = entry.sequence
    for wallet, head in heads.items():
        assert following.get(wallet, 0) == head, "%s: %s events end at %d, chain at %d" % (
            who, wallet, following.get(wallet, 0), head)


def test_two_instances_three_consumers_sigkill_and_resume(server_binary, fresh_db, workdir):
    first = conftest.Server(server_binary, fresh_db, os.path.join(workdir, "events-a.log"))
    second = conftest.Server(server_binary, fresh_db, os.path.join(workdir, "events-b.log"))
    first.start()
    second.start()
    try:
        stub = h.wallet_grpc.WalletStub(grpc.insecure_channel(first.address))
        asset = h.new_asset()
        stub.DefineAsset(pb.DefineAssetRequest(asset=asset, decimal_places=2), timeout=h.TIMEOUT)
        wallets = [h.new_wallet_id("ev") for _ in range(6)]
        for w in wallets:
            stub.CreateWallet(pb.CreateWalletRequest(wallet_id=w), timeout=h.TIMEOUT)
            h.credit(stub, w, asset, 10_000)
        watched = wallets[2]

        on_first = Consumer("on-first", first.address, fallback=second.address)
        on_second = Consumer("on-second", second.address)
        filtered = Consumer("filtered", second.address, wallet_id=watched)
        for c in (on_first, on_second, filtered):
            c.start()
        load = Load([first.address, second.address], wallets, asset)
        load.start()
        time.sleep(LOAD_SECONDS / 2)
        got_before_kill = len(on_first.snapshot())
        first.kill()  # SIGKILL, mid-load
        load.dead.add(first.address)
        time.sleep(LOAD_SECONDS / 2)
        load.finish()
        assert not load.problems, load.problems[:5]
        assert got_before_kill > 0, "the first consumer read nothing before the kill"

        high = highest_position(fresh_db)
        for c in (on_first, on_second):
            h.wait_until(lambda: c.snapshot() and batch_of(c.snapshot()[-1]) >= high, 30,
                         what="%s to read through position %d" % (c.name, high))
        time.sleep(0.5)
        for c in (on_first, on_second, filtered):
            c.stop()
            assert c.error is None, "%s: %r" % (c.name, c.error)
        assert on_first.resumes and on_first.resumes[0][0] == first.address, on_first.resumes

        statuses, heads = ledger(fresh_db)
        assert load.acknowledged <= set(statuses), sorted(load.acknowledged - set(statuses))[:5]
        expect_exact(on_first.events, statuses, heads, "consumer resumed across the SIGKILL")
        expect_exact(on_second.events, statuses, heads, "consumer on the second instance")
        assert [e.cursor for e in on_first.events] == [e.cursor for e in on_second.events]
        touching = [e.cursor for e in on_second.events
                    if watched in {e.transaction.wallet_id, e.transaction.counterparty_wallet_id}
                    | {x.wallet_id for x in e.transaction.entries}]
        assert [e.cursor for e in filtered.events] == touching[:len(filtered.events)]
        assert len(filtered.events) >= len(touching) - 1 and len(touching) > 1
        h.run_verify(server_binary, fresh_db)
    finally:
        first.kill()
        second.terminate()


def test_a_consumer_that_stops_reading_holds_bounded_memory_then_catches_up(server_binary, fresh_db, workdir):
    server = conftest.Server(server_binary, fresh_db, os.path.join(workdir, "events-slow.log"))
    server.start()
    try:
        channel = grpc.insecure_channel(server.address)
        stub = h.wallet_grpc.WalletStub(channel)
        asset = h.new_asset()
        stub.DefineAsset(pb.DefineAssetRequest(asset=asset, decimal_places=2), timeout=h.TIMEOUT)
        wallet = h.new_wallet_id("slow")
        stub.CreateWallet(pb.CreateWalletRequest(wallet_id=wallet), timeout=h.TIMEOUT)
        before = highest_position(fresh_db)
        # A consumer that reads one event and then nothing.
        slow = stub.WatchEvents(pb.WatchEventsRequest(from_now=True))
        h.credit(stub, wallet, asset, 1)
        first = next(slow)
        rss_start = rss_kb(server.proc.pid)
        peak = rss_start
        total = int(os.environ.get("E2E_EVENTS_SLOW_EVENTS", "20000"))
        # wallet-bench writes them fast (hot: one wallet, group commit).
        import subprocess
        bench = subprocess.Popen(
            [os.environ.get("WALLET_BENCH", "wallet-bench"), "--target", server.address, "--scenario", "hot",
             "--duration", "60", "--concurrency", "64"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                peak = max(peak, rss_kb(server.proc.pid))
                written = int(conftest._psql(fresh_db, "SELECT count(*) FROM transactions").strip())
                if written >= total:
                    break
                time.sleep(0.2)
        finally:
            bench.terminate()
            bench.wait(timeout=30)
        time.sleep(2)  # the stream is blocked on flow control by now
        peak = max(peak, rss_kb(server.proc.pid))
        assert peak - rss_start < SLOW_CONSUMER_RSS_BOUND_KB, "RSS %d -> %d KiB with a consumer not reading" % (
            rss_start, peak)
        print("slow consumer: RSS %d -> peak %d KiB while %d transactions were written" % (
            rss_start, peak, total))
        # It catches up: every event committed since it started, in order, none missing or repeated.
        expected = [line for line in conftest._psql(
            fresh_db, "SELECT u.id FROM event_batches b, unnest(b.transaction_ids) WITH ORDINALITY AS u(id, n) "
            "WHERE b.position > %d ORDER BY b.position, u.n" % before).splitlines() if line]
        seen = [first]
        caught_up_by = time.monotonic() + 120
        for event in slow:
            seen.append(event)
            if len(seen) == len(expected) or time.monotonic() > caught_up_by:
                break
        slow.cancel()
        assert [e.transaction.transaction_id for e in seen] == expected
    finally:
        server.terminate()


def test_cursors_from_now_and_filters(server, stub, asset):
    a, b = h.new_wallet_id("cur"), h.new_wallet_id("cur")
    for w in (a, b):
        stub.CreateWallet(pb.CreateWalletRequest(wallet_id=w), timeout=h.TIMEOUT)
    live = stub.WatchEvents(pb.WatchEventsRequest(from_now=True))
    ids = [h.credit(stub, a if i % 2 else b, asset, 10 + i).transaction.transaction_id for i in range(6)]
    got = [next(live) for _ in range(6)]
    live.cancel()
    assert [e.transaction.transaction_id for e in got] == ids

    # From the start of the ledger (empty cursor): these six among everything, in order.
    everything = []
    call = stub.WatchEvents(pb.WatchEventsRequest())
    for event in call:
        everything.append(event)
        if event.transaction.transaction_id == ids[-1]:
            break
    call.cancel()
    assert [e.transaction.transaction_id for e in everything if e.transaction.transaction_id in ids] == ids
    # Resuming after the third gives the fourth on, never the third again.
    resumed = stub.WatchEvents(pb.WatchEventsRequest(after_cursor=got[2].cursor))
    assert [next(resumed).transaction.transaction_id for _ in range(3)] == ids[3:]
    resumed.cancel()
    # A filtered stream resumed from a cursor of another wallet's event: that wallet's later events.
    filtered = stub.WatchEvents(pb.WatchEventsRequest(after_cursor=got[0].cursor, wallet_id=a))
    assert [next(filtered).transaction.transaction_id for _ in range(3)] == [ids[1], ids[3], ids[5]]
    filtered.cancel()
    # A stream from the very first event's cursor: everything but the first event of the ledger.
    second_pass = stub.WatchEvents(pb.WatchEventsRequest(after_cursor=everything[0].cursor))
    assert next(second_pass).cursor == everything[1].cursor
    second_pass.cancel()

    for bad in ("x", "1.0", got[0].cursor[:-1] + ("0" if got[0].cursor[-1] != "0" else "1"), "9" + got[0].cursor):
        err = h.expect_error(lambda: next(stub.WatchEvents(pb.WatchEventsRequest(after_cursor=bad))),
                             C.INVALID_ARGUMENT, "INVALID_CURSOR")
        assert err.metadata.get("field") == "after_cursor"
    h.expect_error(lambda: next(stub.WatchEvents(pb.WatchEventsRequest(after_cursor=got[0].cursor, from_now=True))),
                   C.INVALID_ARGUMENT, "INVALID_FROM_NOW")
    h.expect_error(lambda: next(stub.WatchEvents(pb.WatchEventsRequest(wallet_id="bad wallet")), ),
                   C.INVALID_ARGUMENT, "INVALID_WALLET_ID")


def test_example_consumer_persists_its_cursor_and_resumes_after_a_restart(server, stub, asset, workdir):
    import subprocess
    import sys
    wallet = h.new_wallet_id("consumer")
    stub.CreateWallet(pb.CreateWalletRequest(wallet_id=wallet), timeout=h.TIMEOUT)
    ids = [h.credit(stub, wallet, asset, 1 + i).transaction.transaction_id for i in range(7)]
    cursor_file = os.path.join(workdir, "consumer.cursor")
    script = os.path.join(conftest.REPO, "examples", "consumer.py")

    def run(max_events):
        out = subprocess.run([sys.executable, script, server.address, "--cursor-file", cursor_file,
                              "--wallet", wallet, "--max-events", str(max_events)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return [line.split()[1] for line in out.stdout.splitlines()]

    first = run(3)   # handles three, then stops (a restart)
    assert first == ids[:3]
    saved = open(cursor_file).read()
    assert saved and "\n" not in saved
    rest = run(4)    # resumes after the third: nothing skipped, nothing again
    assert rest == ids[3:]
