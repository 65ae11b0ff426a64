"""Soak: many threads, hot and cold wallets, every operation mixed, retries and duplicates.

The effect of every acknowledged success is taken from the entries in its answer; at the end
GetBalance must equal those effects exactly, every replay must have returned the same
transaction (or the same pinned rejection), and `wallet-server verify` must pass.
"""
import collections
import os
import random
import threading
import time

import grpc

import conftest
import e2e_helpers as h
from e2e_helpers import pb, K, S

C = grpc.StatusCode
SOAK_SECONDS = float(os.environ.get("E2E_SOAK_SECONDS", "60"))
THREADS = int(os.environ.get("E2E_SOAK_THREADS", "16"))
CHANNELS = 4
HOT, POTS, COLD = 3, 2, 48
RETRYABLE = {C.UNAVAILABLE, C.DEADLINE_EXCEEDED, C.RESOURCE_EXHAUSTED}
GIVE_UP_AFTER = 180.0  # seconds of retrying one call before calling it a failure


class Book:
    """Thread-safe record of every final answer, by transaction_id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.first = {}                        # tx id -> ("ok", Transaction) | ("rej", code, reason)
        self.fresh = collections.Counter()     # tx id -> answers with replayed=false
        self.posted = collections.Counter()    # (wallet, bucket) -> expected posted
        self.problems = []
        self.stats = collections.Counter()

    def problem(self, msg):
        with self.lock:
            if len(self.problems) < 200:
                self.problems.append(msg)

    def ok(self, rpc, req, resp):
        tx = resp.transaction
        txid = req.transaction_id
        if tx.transaction_id != txid:
            self.problem("%s %s answered transaction %s" % (rpc, txid, tx.transaction_id))
        try:
            h.check_double_entry(tx)
            h.check_balance_consistent(resp.balance)
            assert resp.balance.held >= 0
        except AssertionError as e:
            self.problem("%s %s: %s" % (rpc, txid, e))
        with self.lock:
            self.stats["ok " + rpc] += 1
            if resp.replayed:
                self.stats["replayed"] += 1
            else:
                self.fresh[txid] += 1
                if self.fresh[txid] > 1:
                    self.problems.append("%s %s applied %d times (replayed=false)" % (rpc, txid, self.fresh[txid]))
            prev = self.first.get(txid)
            if prev is None:
                self.first[txid] = ("ok", tx)
                for e in tx.entries:
                    if not e.wallet_id.startswith("sys:"):
                        self.posted[(e.wallet_id, e.bucket)] += e.amount
            elif prev[0] != "ok" or not h.same_transaction(prev[1], tx):
                self.problems.append("%s %s: replay differs: first %r, now ok %r" % (rpc, txid, prev, tx))

    def rejected(self, rpc, req, code, reason):
        txid = req.transaction_id
        with self.lock:
            self.stats["rej %s %s" % (rpc, reason)] += 1
            prev = self.first.get(txid)
            if prev is None:
                self.first[txid] = ("rej", code, reason)
            elif prev != ("rej", code, reason):
                self.problems.append("%s %s: replay differs: first %r, now %s/%s" % (rpc, txid, prev, code, reason))


class Client:
    def __init__(self, stubs, book, rng):
        self.stubs = stubs
        self.book = book
        self.rng = rng

    def call(self, rpc, req, short_first=False):
        """Retry until a final answer: ("ok", resp) or ("rej", reason)."""
        start = time.monotonic()
        attempt = 0
        while True:
            stub = self.rng.choice(self.stubs)
            timeout = self.rng.uniform(0.001, 0.05) if (short_first and attempt == 0) else 20.0
            attempt += 1
            try:
                resp = getattr(stub, rpc)(req, timeout=timeout)
            except grpc.RpcError as e:
                code = e.code()
                if code in RETRYABLE:
                    if time.monotonic() - start > GIVE_UP_AFTER:
                        self.book.problem("%s %s: still %s after %.0fs" % (rpc, req.transaction_id, code,
                                                                        GIVE_UP_AFTER))
                        return ("gaveup", None)
                    time.sleep(self.rng.uniform(0.001, 0.02) * min(attempt, 10))
                    continue
                try:
                    reason, _ = h.error_info(e)
                except AssertionError as ae:
                    self.book.problem("%s %s: bad error envelope: %s" % (rpc, req.transaction_id, ae))
                    return ("bad", None)
                if code != C.FAILED_PRECONDITION:
                    self.book.problem("%s %s: unexpected %s %s: %s" % (rpc, req.transaction_id, code, reason,
                                                                     e.details()))
                    return ("bad", reason)
                self.book.rejected(rpc, req, code, reason)
                return ("rej", reason)
            self.book.ok(rpc, req, resp)
            return ("ok", resp)

    def run(self, rpc, req):
        """One logical operation: maybe a short first deadline, maybe concurrent exact duplicates,
        maybe a later replay of the same request."""
        r = self.rng.random()
        if r < 0.05:
            results = []
            threads = [threading.Thread(target=lambda: results.append(self.call(rpc, req)))
                       for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            out = results[0]
            if len({r[0] for r in results}) != 1 or len({r[1] for r in results if r[0] == "rej"}) > 1:
                self.book.problem("%s %s: concurrent duplicates answered differently: %s" % (
                    rpc, req.transaction_id, [(r[0], r[1] if r[0] != "ok" else "") for r in results]))
        else:
            out = self.call(rpc, req, short_first=r < 0.15)
        if self.rng.random() < 0.15:
            again = self.call(rpc, req)
            if again[0] == "ok" and not again[1].replayed:
                self.book.problem("%s %s: replay not marked replayed" % (rpc, req.transaction_id))
            if again[0] != out[0]:
                self.book.problem("%s %s: replay answered %s, first %s" % (rpc, req.transaction_id,
                                                                         again[0], out[0]))
        return out


def _worker(idx, stubs, book, asset, hot, pots, cold, stop_at, auths):
    rng = random.Random(idx * 7919 + int(time.time()))
    cl = Client(stubs, book, rng)
    players = hot + cold
    reversible = []

    def player():
        return rng.choice(hot) if rng.random() < 0.5 else rng.choice(cold)

    while time.monotonic() < stop_at:
        op = rng.choices(["credit", "debit", "bet", "transfer", "reverse", "tombstone", "cashout"],
                         weights=[20, 20, 25, 15, 8, 4, 8])[0]
        tx = h.new_tx_id()
        if op == "credit":
            w = player()
            bucket = rng.choice(["", "bonus"])
            amount = rng.randint(1, 1000)
            st, resp = cl.run("Credit", pb.CreditRequest(transaction_id=tx, wallet_id=w, asset=asset,
                                                         amount=amount, bucket=bucket))
            if st == "ok":
                if h.wallet_entries(resp.transaction, w) != {bucket or "cash": amount}:
                    book.problem("credit %s entries %s" % (tx, resp.transaction.entries))
                reversible.append(tx)
        elif op == "debit":
            w = player()
            amount = rng.randint(1, 1500)
            funding = rng.choice([[], ["bonus", "cash"], ["cash", "bonus"]])
            st, resp = cl.run("Debit", pb.DebitRequest(transaction_id=tx, wallet_id=w, asset=asset,
                                                       amount=amount, funding=funding))
            if st == "ok":
                mine = h.wallet_entries(resp.transaction, w)
                drawn = h.funding_of(resp.transaction)
                if sum(mine.values()) != -amount or {b: -a for b, a in drawn} != {b: a for b, a in mine.items() if a}:
                    book.problem("debit %s entries %s funding %s" % (tx, mine, drawn))
                if rng.random() < 0.3:
                    st2, r2 = cl.run("Rollback", pb.RollbackRequest(transaction_id=h.new_tx_id(),
                                                                    target_transaction_id=tx))
                    if st2 == "ok" and (not r2.target_found or h.wallet_entries(r2.transaction, w) !=
                                        {b: -a for b, a in mine.items() if a}):
                        book.problem("rollback of debit %s: %s" % (tx, r2))
                else:
                    reversible.append(tx)
        elif op == "bet":
            w = player()
            amount = rng.randint(1, 1000)
            st, resp = cl.run("Authorize", pb.AuthorizeRequest(
                transaction_id=tx, wallet_id=w, asset=asset, amount=amount,
                funding=rng.choice([[], ["bonus", "cash"]]), expires_in_ms=3600 * 1000))
            if st != "ok":
                continue
            auths.append(tx)
            settle_req = pb.SettleRequest(
                transaction_id=h.new_tx_id(), authorization_id=tx,
                capture_amount=rng.choice([0, rng.randint(1, amount)]),
                payout=rng.choice([0, 0, rng.randint(1, 2000)]), payout_bucket=rng.choice(["", "bonus"]),
                destination_wallet_id=rng.choice(["", rng.choice(pots)]))
            rb_req = pb.RollbackRequest(transaction_id=h.new_tx_id(), target_transaction_id=tx)
            x = rng.random()
            if x < 0.1:  # settle and rollback race: exactly one of them wins
                res = {}
                ta = threading.Thread(target=lambda: res.__setitem__("s", cl.run("Settle", settle_req)))
                tb = threading.Thread(target=lambda: res.__setitem__("r", cl.run("Rollback", rb_req)))
                ta.start(); tb.start(); ta.join(); tb.join()
                s_ok, r_ok = res["s"][0] == "ok", res["r"][0] == "ok"
                if s_ok == r_ok:
                    book.problem("settle/rollback race on %s: settle %s, rollback %s" % (tx, res["s"], res["r"]))
                if s_ok:
                    reversible.append(settle_req.transaction_id)
            elif x < 0.7:
                st, _ = cl.run("Settle", settle_req)
                if st == "ok":
                    reversible.append(settle_req.transaction_id)
                else:
                    book.problem("settle of open hold %s rejected" % tx)
            else:
                st, r2 = cl.run("Rollback", rb_req)
                if st != "ok" or not r2.target_found:
                    book.problem("rollback of open hold %s: %s" % (tx, st))
        elif op == "transfer":
            a, b = rng.sample(players, 2)
            amount = rng.randint(1, 1000)
            st, resp = cl.run("Transfer", pb.TransferRequest(transaction_id=tx, from_wallet_id=a, to_wallet_id=b,
                                                             asset=asset, amount=amount))
            if st == "ok" and (h.wallet_entries(resp.transaction, a) != {"cash": -amount}
                               or h.wallet_entries(resp.transaction, b) != {"cash": amount}):
                book.problem("transfer %s entries %s" % (tx, resp.transaction.entries))
        elif op == "cashout":  # stand-up: cash the player out of a table pot
            pot = rng.choice(pots)
            cl.run("Transfer", pb.TransferRequest(transaction_id=tx, from_wallet_id=pot,
                                                  to_wallet_id=player(), asset=asset,
                                                  amount=rng.randint(1, 500)))
        elif op == "reverse" and reversible:
            orig = reversible.pop(rng.randrange(len(reversible)))
            st, _ = cl.run("Reverse", pb.ReverseRequest(transaction_id=tx, original_transaction_id=orig,
                                                        reason="soak"))
            if st == "ok" and rng.random() < 0.3:
                st2, reason = cl.run("Reverse", pb.ReverseRequest(transaction_id=h.new_tx_id(),
                                                                  original_transaction_id=orig, reason="again"))
                if (st2, reason) != ("rej", "ALREADY_REVERSED"):
                    book.problem("second reverse of %s: %s %s" % (orig, st2, reason))
        elif op == "tombstone":  # the cancel overtakes its bet
            st, r = cl.run("Rollback", pb.RollbackRequest(transaction_id=h.new_tx_id(), target_transaction_id=tx))
            if st != "ok" or r.target_found:
                book.problem("rollback of unknown %s: %s" % (tx, st))
            w = player()
            req = pb.DebitRequest(transaction_id=tx, wallet_id=w, asset=asset, amount=10)
            st, reason = cl.run("Debit", req)
            if (st, reason) != ("rej", "ALREADY_ROLLED_BACK"):
                book.problem("late bet %s after its rollback: %s %s" % (tx, st, reason))


def _soak(addresses, seconds, stub, asset, wallet):
    book = Book()
    channels = [grpc.insecure_channel(addresses[i % len(addresses)],
                                      options=[("grpc.use_local_subchannel_pool", 1)])
                for i in range(CHANNELS)]
    stubs = [h.wallet_grpc.WalletStub(ch) for ch in channels]
    try:
        hot = [wallet(prefix="hot") for _ in range(HOT)]
        pots = [wallet(prefix="pot") for _ in range(POTS)]
        cold = [wallet(prefix="cold") for _ in range(COLD)]
        seed = Client(stubs, book, random.Random(1))
        for w in hot:
            assert seed.call("Credit", pb.CreditRequest(transaction_id=h.new_tx_id(), wallet_id=w, asset=asset,
                                                        amount=50_000_000))[0] == "ok"
        for w in cold:
            for bucket, amount in (("", 200_000), ("bonus", 20_000)):
                assert seed.call("Credit", pb.CreditRequest(transaction_id=h.new_tx_id(), wallet_id=w, asset=asset,
                                                            amount=amount, bucket=bucket))[0] == "ok"
        auths = []  # list.append is atomic
        stop_at = time.monotonic() + seconds
        workers = [threading.Thread(target=_worker, args=(i, stubs, book, asset, hot, pots,
                                                          cold, stop_at, auths), daemon=True)
                   for i in range(THREADS)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(timeout=seconds + 2 * GIVE_UP_AFTER + 60)
        assert not any(t.is_alive() for t in workers), "soak workers hung"

        # holds still open: none expected, but account for them from their funding
        held = collections.Counter()
        for a in auths:
            t = h.get_tx(stub, a)
            if t.status == S.PENDING:
                for f in t.funding:
                    held[(t.wallet_id, f.bucket)] += f.amount
        ours = set(hot + pots + cold)
        strangers = {w for (w, _) in book.posted if w not in ours}
        assert not strangers, "entries on wallets the soak never used: %s" % strangers
        mismatches = []
        for w in sorted(ours):
            bal = h.get_balance(stub, w, asset)
            h.check_balance_consistent(bal)
            got = {b.bucket: (b.posted, b.held) for b in bal.buckets if (b.posted, b.held) != (0, 0)}
            want = {}
            for (ww, b), v in book.posted.items():
                if ww == w:
                    want[b] = (v, 0)
            for (ww, b), v in held.items():
                if ww == w:
                    want[b] = (want.get(b, (0, 0))[0], v)
            want = {b: v for b, v in want.items() if v != (0, 0)}
            if got != want:
                mismatches.append((w, got, want))
        print("soak stats:", dict(book.stats))
        assert not book.problems, "\n".join(book.problems[:50])
        assert not mismatches, mismatches[:10]
        for kind in ("ok Credit", "ok Debit", "ok Authorize", "ok Settle", "ok Rollback", "ok Transfer",
                     "ok Reverse", "replayed"):
            assert book.stats[kind] > 0, "soak never exercised %s: %s" % (kind, dict(book.stats))
    finally:
        for ch in channels:
            ch.close()


def test_soak_balances_match_acknowledged_effects(server, stub, asset, wallet, verifier):
    _soak([server.address], SOAK_SECONDS, stub, asset, wallet)
    verifier()


def test_soak_on_two_instances_sharing_one_database(server, server_binary, database_url, workdir, stub, asset,
                                                    wallet, verifier):
    other = conftest.Server(server_binary, database_url, os.path.join(workdir, "soak-second.log"))
    other.start()
    try:
        _soak([server.address, other.address], max(5.0, SOAK_SECONDS / 3), stub, asset, wallet)
        assert other.alive(), other.log()
    finally:
        code = other.terminate()
    assert code == 0, other.log()
    verifier()


def test_two_instances_expire_each_hold_exactly_once(server, server_binary, database_url, workdir, stub, asset,
                                                     wallet):
    other = conftest.Server(server_binary, database_url, os.path.join(workdir, "expire-second.log"))
    other.start()
    try:
        wallets_ = [wallet() for _ in range(20)]
        auths = {}
        for w in wallets_:
            h.credit(stub, w, asset, 100)
            auths[w] = h.authorize(stub, w, asset, 60, expires_in_ms=300).transaction.transaction_id
        timeout = float(os.environ.get("E2E_SWEEP_TIMEOUT", "120"))
        h.wait_until(lambda: all(h.get_tx(stub, a).status == S.EXPIRED for a in auths.values()), timeout,
                     interval=0.5, what="all 20 holds EXPIRED")
        time.sleep(2.0)  # both sweepers get more turns
        for w in wallets_:
            hist = h.list_all(stub, w)
            assert sum(1 for t in hist if t.kind == K.EXPIRE) == 1, [(t.transaction_id, t.kind) for t in hist]
            assert h.totals(h.get_balance(stub, w, asset)) == (100, 0, 100)
    finally:
        code = other.terminate()
    assert code == 0, other.log()
