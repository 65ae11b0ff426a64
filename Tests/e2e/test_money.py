"""Credit, Debit, Authorize, Settle, Rollback, Reverse, Transfer, overdraft."""
import time

import grpc
import pytest

import e2e_helpers as h
from e2e_helpers import pb, K, S

C = grpc.StatusCode
FP = C.FAILED_PRECONDITION


def _funded(stub, wallet, asset, cash=0, bonus=0, overdraft_limit=0):
    w = wallet(overdraft_limit=overdraft_limit)
    if cash:
        h.credit(stub, w, asset, cash)
    if bonus:
        h.credit(stub, w, asset, bonus, bucket="bonus")
    return w


def _buckets(stub, w, asset, names=("cash", "bonus")):
    bal = h.get_balance(stub, w, asset)
    h.check_balance_consistent(bal)
    return {n: h.bucket_of(bal, n) for n in names}


def _house_only(tx, w):
    others = [e for e in tx.entries if e.wallet_id != w]
    assert others, tx
    assert all(e.wallet_id.startswith("sys:") for e in others), tx


# --- Credit ----------------------------------------------------------------------------------

def test_credit_adds_to_cash_by_default_and_the_house_pays(stub, asset, wallet):
    w = wallet()
    now = time.time() * 1e6
    r = h.credit(stub, w, asset, 1000, note="deposit")
    tx = r.transaction
    assert r.replayed is False
    assert (tx.kind, tx.status, tx.wallet_id, tx.asset, tx.amount) == (K.CREDIT, S.POSTED, w, asset, 1000)
    assert tx.transaction_id
    assert dict(tx.metadata) == {"note": "deposit"}
    assert abs(tx.created_at - now) < 300e6, "created_at is Unix microseconds"
    h.check_double_entry(tx)
    assert h.wallet_entries(tx, w) == {"cash": 1000}
    _house_only(tx, w)
    assert r.balance.wallet_id == w and r.balance.asset == asset
    assert h.totals(r.balance) == (1000, 0, 1000)
    assert h.bucket_of(r.balance, "cash") == (1000, 0, 1000)


def test_credit_into_named_bucket(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=1000)
    r = h.credit(stub, w, asset, 250, bucket="bonus")
    assert h.wallet_entries(r.transaction, w) == {"bonus": 250}
    assert h.totals(r.balance) == (1250, 0, 1250)
    assert h.bucket_of(r.balance, "bonus") == (250, 0, 250)
    assert h.bucket_of(r.balance, "cash") == (1000, 0, 1000)


def test_entry_sequence_increases_by_one_per_wallet(stub, asset, wallet):
    w = wallet()
    seqs = []
    for amount in (1, 2, 3):
        tx = h.credit(stub, w, asset, amount).transaction
        seqs += [e.sequence for e in tx.entries if e.wallet_id == w]
    assert seqs == list(range(seqs[0], seqs[0] + 3)), seqs


# --- Debit -----------------------------------------------------------------------------------

# cash 100, bonus 50 before each debit
@pytest.mark.parametrize("funding,amount,drawn,after", [
    ([], 60, [("cash", 60)], {"cash": 40, "bonus": 50}),
    (["cash"], 100, [("cash", 100)], {"cash": 0, "bonus": 50}),
    (["bonus"], 30, [("bonus", 30)], {"cash": 100, "bonus": 20}),
    (["bonus", "cash"], 120, [("bonus", 50), ("cash", 70)], {"cash": 30, "bonus": 0}),
    (["cash", "bonus"], 120, [("cash", 100), ("bonus", 20)], {"cash": 0, "bonus": 30}),
    (["bonus", "cash"], 150, [("bonus", 50), ("cash", 100)], {"cash": 0, "bonus": 0}),
    (["points", "cash"], 50, [("cash", 50)], {"cash": 50, "bonus": 50}),
], ids=["default cash", "cash exact", "bonus only", "bonus then cash", "cash then bonus", "all", "empty bucket first"])
def test_debit_draws_buckets_in_funding_order(stub, asset, wallet, funding, amount, drawn, after):
    w = _funded(stub, wallet, asset, cash=100, bonus=50)
    r = h.debit(stub, w, asset, amount, funding=funding)
    tx = r.transaction
    assert (tx.kind, tx.status, tx.amount, tx.wallet_id) == (K.DEBIT, S.POSTED, amount, w)
    assert h.funding_of(tx) == drawn
    h.check_double_entry(tx)
    assert h.wallet_entries(tx, w) == {b: -a for b, a in drawn}
    _house_only(tx, w)
    for b, posted in after.items():
        assert h.bucket_of(r.balance, b) == (posted, 0, posted)
    assert h.totals(r.balance) == (sum(after.values()), 0, sum(after.values()))
    # the transaction as stored records the same funding
    assert h.funding_of(h.get_tx(stub, tx.transaction_id)) == drawn


@pytest.mark.parametrize("funding,amount", [([], 101), (["bonus"], 51), (["cash", "bonus"], 151)],
                         ids=["cash only", "bonus only", "both"])
def test_debit_beyond_funded_buckets_is_insufficient_funds(stub, asset, wallet, funding, amount):
    w = _funded(stub, wallet, asset, cash=100, bonus=50)
    r = h.expect_error(h.debit, FP, "INSUFFICIENT_FUNDS", stub=stub, wallet_id=w, asset=asset,
                       amount=amount, funding=funding)
    h.assert_balance_metadata(r.metadata, 150, 0, 150)
    assert _buckets(stub, w, asset) == {"cash": (100, 0, 100), "bonus": (50, 0, 50)}


def test_debit_of_empty_wallet_without_overdraft_is_insufficient_funds(stub, asset, wallet):
    w = wallet()
    r = h.expect_error(h.debit, FP, "INSUFFICIENT_FUNDS", stub=stub, wallet_id=w, asset=asset, amount=1)
    h.assert_balance_metadata(r.metadata, 0, 0, 0)


# --- overdraft -------------------------------------------------------------------------------

def test_overdraft_limit_lets_cash_go_down_to_minus_the_limit(stub, asset, wallet):
    w = wallet(overdraft_limit=500)
    r = h.debit(stub, w, asset, 300)
    assert h.bucket_of(r.balance, "cash") == (-300, 0, -300)
    r = h.debit(stub, w, asset, 200)
    assert h.totals(r.balance) == (-500, 0, -500)
    rej = h.expect_error(h.debit, FP, "INSUFFICIENT_FUNDS", stub=stub, wallet_id=w, asset=asset, amount=1)
    h.assert_balance_metadata(rej.metadata, -500, 0, -500)
    r = h.credit(stub, w, asset, 100)
    assert h.totals(r.balance) == (-400, 0, -400)


def test_overdraft_does_not_apply_to_other_buckets(stub, asset, wallet):
    w = wallet(overdraft_limit=500)
    h.credit(stub, w, asset, 10, bucket="bonus")
    h.expect_error(h.debit, FP, "INSUFFICIENT_FUNDS", stub=stub, wallet_id=w, asset=asset,
                   amount=11, funding=["bonus"])
    r = h.debit(stub, w, asset, 20, funding=["bonus", "cash"])
    assert h.funding_of(r.transaction) == [("bonus", 10), ("cash", 10)]
    assert h.bucket_of(r.balance, "bonus") == (0, 0, 0)
    assert h.bucket_of(r.balance, "cash") == (-10, 0, -10)


# --- Authorize / Settle ----------------------------------------------------------------------

def test_authorize_reserves_without_posting(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=100, bonus=50)
    r = h.authorize(stub, w, asset, 120, funding=["bonus", "cash"])
    tx = r.transaction
    assert (tx.kind, tx.status, tx.amount, tx.wallet_id) == (K.AUTHORIZE, S.PENDING, 120, w)
    assert h.funding_of(tx) == [("bonus", 50), ("cash", 70)]
    assert h.totals(r.balance) == (150, 120, 30)
    assert h.bucket_of(r.balance, "bonus") == (50, 50, 0)
    assert h.bucket_of(r.balance, "cash") == (100, 70, 30)
    assert h.wallet_entries(tx, w) == {}, "a hold moves no posted money"
    # only the available 30 of cash can still be debited
    h.expect_error(h.debit, FP, "INSUFFICIENT_FUNDS", stub=stub, wallet_id=w, asset=asset, amount=31)
    r2 = h.debit(stub, w, asset, 30)
    assert h.totals(r2.balance) == (120, 120, 0)


def test_authorize_beyond_available_is_insufficient_funds(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=100)
    h.authorize(stub, w, asset, 70)
    r = h.expect_error(h.authorize, FP, "INSUFFICIENT_FUNDS", stub=stub, wallet_id=w, asset=asset, amount=31)
    h.assert_balance_metadata(r.metadata, 100, 70, 30)


# wallet: cash 1000, hold 400 on cash; pot: empty
@pytest.mark.parametrize("capture,payout,payout_bucket,to_pot,cash_after,bonus_after,pot_after", [
    (0, 0, "", False, 600, 0, 0),
    (400, 0, "", False, 600, 0, 0),
    (250, 0, "", False, 750, 0, 0),
    (250, 100, "bonus", False, 750, 100, 0),
    (250, 100, "", False, 850, 0, 0),
    (0, 0, "", True, 600, 0, 400),
    (300, 50, "", True, 750, 0, 300),
], ids=["whole hold", "exact hold", "partial releases rest", "payout to bonus", "payout to cash",
        "into pot", "partial into pot with payout"])
def test_settle(stub, asset, wallet, capture, payout, payout_bucket, to_pot, cash_after, bonus_after, pot_after):
    w = _funded(stub, wallet, asset, cash=1000)
    pot = wallet(prefix="pot")
    auth = h.authorize(stub, w, asset, 400).transaction
    r = h.settle(stub, auth.transaction_id, capture_amount=capture, payout=payout, payout_bucket=payout_bucket,
                 destination_wallet_id=pot if to_pot else "")
    tx = r.transaction
    captured = capture or 400
    assert (tx.kind, tx.status) == (K.SETTLE, S.POSTED)
    assert tx.target_transaction_id == auth.transaction_id
    assert r.replayed is False
    h.check_double_entry(tx)
    mine = h.wallet_entries(tx, w)
    expected = {"cash": -captured}
    if payout:
        b = payout_bucket or "cash"
        expected[b] = expected.get(b, 0) + payout
    assert {b: a for b, a in mine.items() if a} == {b: a for b, a in expected.items() if a}
    if to_pot:
        assert tx.counterparty_wallet_id == pot
        assert h.wallet_entries(tx, pot) == {"cash": captured}
    else:
        assert all(e.wallet_id.startswith("sys:") for e in tx.entries if e.wallet_id != w)
    # the answer carries the authorizing wallet's balance, nothing held any more
    assert r.balance.wallet_id == w
    assert h.totals(r.balance) == (cash_after + bonus_after, 0, cash_after + bonus_after)
    assert _buckets(stub, w, asset) == {"cash": (cash_after, 0, cash_after),
                                        "bonus": (bonus_after, 0, bonus_after)}
    assert h.totals(h.get_balance(stub, pot, asset)) == (pot_after, 0, pot_after)
    assert h.get_tx(stub, auth.transaction_id).status == S.SETTLED


def test_settle_whole_hold_takes_money_from_the_held_buckets(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=100, bonus=50)
    auth = h.authorize(stub, w, asset, 120, funding=["bonus", "cash"]).transaction
    r = h.settle(stub, auth.transaction_id)
    assert h.wallet_entries(r.transaction, w) == {"bonus": -50, "cash": -70}
    assert _buckets(stub, w, asset) == {"cash": (30, 0, 30), "bonus": (0, 0, 0)}


def test_second_settle_of_a_hold_is_already_settled(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=1000)
    auth = h.authorize(stub, w, asset, 400).transaction
    h.settle(stub, auth.transaction_id, capture_amount=100)
    r = h.expect_error(h.settle, FP, "ALREADY_SETTLED", stub=stub, authorization_id=auth.transaction_id,
                       capture_amount=100)
    h.assert_balance_metadata(r.metadata, 900, 0, 900)
    assert h.totals(h.get_balance(stub, w, asset)) == (900, 0, 900)


def test_capture_above_hold_is_amount_exceeds_hold_and_hold_stays_open(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=1000)
    auth = h.authorize(stub, w, asset, 400).transaction
    r = h.expect_error(h.settle, FP, "AMOUNT_EXCEEDS_HOLD", stub=stub, authorization_id=auth.transaction_id,
                       capture_amount=401)
    h.assert_balance_metadata(r.metadata, 1000, 400, 600)
    assert h.get_tx(stub, auth.transaction_id).status == S.PENDING
    h.settle(stub, auth.transaction_id, capture_amount=400)
    assert h.totals(h.get_balance(stub, w, asset)) == (600, 0, 600)


def test_settle_of_unknown_authorization_is_transaction_not_found(stub):
    h.expect_error(h.settle, C.NOT_FOUND, "TRANSACTION_NOT_FOUND", stub=stub, authorization_id=h.new_tx_id())


def test_settle_into_unknown_destination_is_wallet_not_found(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=100)
    auth = h.authorize(stub, w, asset, 50).transaction
    h.expect_error(h.settle, C.NOT_FOUND, "WALLET_NOT_FOUND", stub=stub, authorization_id=auth.transaction_id,
                   destination_wallet_id=h.new_wallet_id())
    assert h.get_tx(stub, auth.transaction_id).status == S.PENDING


# --- Rollback --------------------------------------------------------------------------------

def test_rollback_of_debit_returns_money_to_exactly_its_buckets(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=100, bonus=50)
    d = h.debit(stub, w, asset, 120, funding=["bonus", "cash"]).transaction
    h.credit(stub, w, asset, 5)  # cash moves on meanwhile
    r = h.rollback(stub, d.transaction_id)
    tx = r.transaction
    assert r.target_found is True
    assert (tx.kind, tx.status, tx.target_transaction_id) == (K.ROLLBACK, S.POSTED, d.transaction_id)
    h.check_double_entry(tx)
    assert h.wallet_entries(tx, w) == {"bonus": 50, "cash": 70}
    assert _buckets(stub, w, asset) == {"cash": (105, 0, 105), "bonus": (50, 0, 50)}
    assert h.get_tx(stub, d.transaction_id).status == S.ROLLED_BACK


def test_rollback_of_authorization_releases_the_hold(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=100, bonus=50)
    auth = h.authorize(stub, w, asset, 120, funding=["bonus", "cash"]).transaction
    r = h.rollback(stub, auth.transaction_id)
    assert r.target_found is True
    assert r.transaction.kind == K.ROLLBACK
    assert h.wallet_entries(r.transaction, w) == {}
    assert _buckets(stub, w, asset) == {"cash": (100, 0, 100), "bonus": (50, 0, 50)}
    assert h.get_tx(stub, auth.transaction_id).status == S.ROLLED_BACK
    h.expect_error(h.settle, FP, "ALREADY_ROLLED_BACK", stub=stub, authorization_id=auth.transaction_id)


@pytest.mark.parametrize("late", ["debit", "authorize"])
def test_rollback_of_unknown_target_leaves_a_tombstone(stub, asset, wallet, late):
    w = _funded(stub, wallet, asset, cash=100)
    bet = h.new_tx_id()
    r = h.rollback(stub, bet)
    assert r.target_found is False
    assert r.transaction.kind == K.ROLLBACK
    fn = h.debit if late == "debit" else h.authorize
    rej = h.expect_error(fn, FP, "ALREADY_ROLLED_BACK", stub=stub, wallet_id=w, asset=asset, amount=40, tx_id=bet)
    h.assert_balance_metadata(rej.metadata, 100, 0, 100)
    assert h.totals(h.get_balance(stub, w, asset)) == (100, 0, 100)
    # replaying the late bet keeps the same answer
    h.expect_error(fn, FP, "ALREADY_ROLLED_BACK", stub=stub, wallet_id=w, asset=asset, amount=40, tx_id=bet)


def test_second_rollback_of_same_target_is_ok_and_moves_nothing(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=100)
    d = h.debit(stub, w, asset, 60).transaction
    first = h.rollback(stub, d.transaction_id)
    assert h.wallet_entries(first.transaction, w) == {"cash": 60}
    second = h.rollback(stub, d.transaction_id)
    assert second.target_found is True
    assert second.replayed is False
    assert second.transaction.transaction_id != first.transaction.transaction_id
    assert h.wallet_entries(second.transaction, w) == {}
    assert h.totals(h.get_balance(stub, w, asset)) == (100, 0, 100)


def test_rollback_of_settled_authorization_is_already_settled(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=100)
    auth = h.authorize(stub, w, asset, 60).transaction
    h.settle(stub, auth.transaction_id)
    r = h.expect_error(h.rollback, FP, "ALREADY_SETTLED", stub=stub, target=auth.transaction_id)
    h.assert_balance_metadata(r.metadata, 40, 0, 40)
    assert h.totals(h.get_balance(stub, w, asset)) == (40, 0, 40)


def test_rollback_of_credit_is_not_rollbackable(stub, asset, wallet):
    w = wallet()
    c = h.credit(stub, w, asset, 100).transaction
    r = h.expect_error(h.rollback, FP, "NOT_ROLLBACKABLE", stub=stub, target=c.transaction_id)
    h.assert_balance_metadata(r.metadata, 100, 0, 100)
    assert h.get_tx(stub, c.transaction_id).status == S.POSTED


# --- Reverse ---------------------------------------------------------------------------------

def _reverse_case_credit(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=1000)
    orig = h.credit(stub, w, asset, 300, bucket="bonus").transaction
    return orig, {w: {"bonus": -300}}, {w: {"cash": 1000, "bonus": 0}}


def _reverse_case_debit(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=100, bonus=50)
    orig = h.debit(stub, w, asset, 120, funding=["bonus", "cash"]).transaction
    return orig, {w: {"bonus": 50, "cash": 70}}, {w: {"cash": 100, "bonus": 50}}


def _reverse_case_settle(stub, asset, wallet):
    w = _funded(stub, wallet, asset, cash=1000)
    pot = wallet(prefix="pot")
    auth = h.authorize(stub, w, asset, 400).transaction
    orig = h.settle(stub, auth.transaction_id, capture_amount=300, payout=50, payout_bucket="bonus",
                    destination_wallet_id=pot).transaction
    return orig, {w: {"cash": 300, "bonus": -50}, pot: {"cash": -300}}, \
        {w: {"cash": 1000, "bonus": 0}, pot: {"cash": 0, "bonus": 0}}


@pytest.mark.parametrize("case", [_reverse_case_credit, _reverse_case_debit, _reverse_case_settle],
                         ids=["credit", "debit", "settle"])
def test_reverse_compensates_once(stub, asset, wallet, case):
    orig, moves, after = case(stub, asset, wallet)
    r = h.reverse(stub, orig.transaction_id)
    tx = r.transaction
    assert (tx.kind, tx.status, tx.target_transaction_id) == (K.REVERSE, S.POSTED, orig.transaction_id)
    h.check_double_entry(tx)
    for wid, exp in moves.items():
        assert {b: a for b, a in h.wallet_entries(tx, wid).items() if a} == exp
    for wid, exp in after.items():
        got = _buckets(stub, wid, asset)
        assert got == {b: (v, 0, v) for b, v in exp.items()}
    assert h.get_tx(stub, orig.transaction_id).status == S.REVERSED
    if orig.kind == K.SETTLE:
        assert h.get_tx(stub, orig.target_transaction_id).status == S.SETTLED
    h.expect_error(h.reverse, FP, "ALREADY_REVERSED", stub=stub, original=orig.transaction_id)
    for wid, exp in after.items():
        assert _buckets(stub, wid, asset) == {b: (v, 0, v) for b, v in exp.items()}


def test_reverse_of_unknown_transaction_is_not_found(stub):
    h.expect_error(h.reverse, C.NOT_FOUND, "TRANSACTION_NOT_FOUND", stub=stub, original=h.new_tx_id())


# --- Transfer --------------------------------------------------------------------------------

@pytest.mark.parametrize("bucket", ["", "bonus"])
def test_transfer_moves_between_wallets(stub, asset, wallet, bucket):
    a = wallet()
    b = wallet()
    h.credit(stub, a, asset, 1000, bucket=bucket)
    r = h.transfer(stub, a, b, asset, 300, bucket=bucket)
    tx = r.transaction
    name = bucket or "cash"
    assert (tx.kind, tx.status, tx.amount, tx.wallet_id) == (K.TRANSFER, S.POSTED, 300, a)
    assert tx.counterparty_wallet_id == b
    h.check_double_entry(tx)
    assert h.wallet_entries(tx, a) == {name: -300}
    assert h.wallet_entries(tx, b) == {name: 300}
    assert r.balance.wallet_id == a
    assert h.bucket_of(r.balance, name) == (700, 0, 700)
    assert h.bucket_of(h.get_balance(stub, b, asset), name) == (300, 0, 300)


def test_transfer_beyond_available_is_insufficient_funds(stub, asset, wallet):
    a = wallet()
    b = wallet()
    h.credit(stub, a, asset, 100)
    h.authorize(stub, a, asset, 30)
    r = h.expect_error(h.transfer, FP, "INSUFFICIENT_FUNDS", stub=stub, src=a, dst=b, asset=asset, amount=71)
    h.assert_balance_metadata(r.metadata, 100, 30, 70)
    assert h.totals(h.get_balance(stub, b, asset)) == (0, 0, 0)


def test_transfer_to_unknown_wallet_is_wallet_not_found(stub, asset, wallet):
    a = _funded(stub, wallet, asset, cash=100)
    h.expect_error(h.transfer, C.NOT_FOUND, "WALLET_NOT_FOUND", stub=stub, src=a, dst=h.new_wallet_id(),
                   asset=asset, amount=10)
    assert h.totals(h.get_balance(stub, a, asset)) == (100, 0, 100)
