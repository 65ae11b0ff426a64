"""Authorization expiry."""
import os
import time

import grpc
import pytest

import e2e_helpers as h
from e2e_helpers import pb, K, S

C = grpc.StatusCode
FP = C.FAILED_PRECONDITION
SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
SWEEP_TIMEOUT = float(os.environ.get("E2E_SWEEP_TIMEOUT", "120"))


def _expired_hold(stub, asset, wallet, ms=300):
    w = wallet()
    h.credit(stub, w, asset, 100)
    auth = h.authorize(stub, w, asset, 80, expires_in_ms=ms)
    assert h.totals(auth.balance) == (100, 80, 20)
    tx = auth.transaction
    assert abs(tx.expires_at - tx.created_at - ms * 1000) <= 2_000_000, (tx.created_at, tx.expires_at)
    time.sleep(ms / 1000.0 + 0.4)
    return w, tx


def test_expired_hold_no_longer_counts_against_available(stub, asset, wallet):
    w, _ = _expired_hold(stub, asset, wallet)
    assert h.totals(h.get_balance(stub, w, asset)) == (100, 0, 100)
    r = h.debit(stub, w, asset, 100)  # the whole amount is spendable again
    assert h.totals(r.balance) == (0, 0, 0)


def test_settle_after_expiry_is_hold_expired(stub, asset, wallet):
    w, auth = _expired_hold(stub, asset, wallet)
    r = h.expect_error(h.settle, FP, "HOLD_EXPIRED", stub=stub, authorization_id=auth.transaction_id)
    h.assert_balance_metadata(r.metadata, 100, 0, 100)
    assert h.totals(h.get_balance(stub, w, asset)) == (100, 0, 100)


def test_rollback_of_expired_hold_is_ok_and_moves_nothing(stub, asset, wallet):
    w, auth = _expired_hold(stub, asset, wallet)
    r = h.rollback(stub, auth.transaction_id)
    assert r.target_found is True
    assert h.wallet_entries(r.transaction, w) == {}
    assert h.totals(h.get_balance(stub, w, asset)) == (100, 0, 100)


def test_sweeper_marks_expired_and_writes_one_expire_transaction(stub, asset, wallet):
    w, auth = _expired_hold(stub, asset, wallet)
    h.wait_until(lambda: h.get_tx(stub, auth.transaction_id).status == S.EXPIRED, SWEEP_TIMEOUT,
                 interval=0.5, what="authorization status EXPIRED")
    hist = h.list_all(stub, w)
    expires = [t for t in hist if t.kind == K.EXPIRE]
    assert len(expires) == 1, [(t.transaction_id, t.kind) for t in hist]
    assert expires[0].status == S.POSTED
    assert h.wallet_entries(expires[0], w) == {}, "releasing a hold moves no posted money"
    time.sleep(2.0)  # more sweeps must not write it again
    assert sum(1 for t in h.list_all(stub, w) if t.kind == K.EXPIRE) == 1
    assert h.totals(h.get_balance(stub, w, asset)) == (100, 0, 100)


def test_default_expiry_is_15_minutes(stub, asset, wallet):
    w = wallet()
    h.credit(stub, w, asset, 10)
    tx = h.authorize(stub, w, asset, 5).transaction
    assert abs(tx.expires_at - tx.created_at - 15 * 60 * 1_000_000) <= 2_000_000


def test_expiry_of_exactly_7_days_is_accepted(stub, asset, wallet):
    w = wallet()
    h.credit(stub, w, asset, 10)
    tx = h.authorize(stub, w, asset, 5, expires_in_ms=SEVEN_DAYS_MS).transaction
    assert abs(tx.expires_at - tx.created_at - SEVEN_DAYS_MS * 1000) <= 2_000_000


@pytest.mark.parametrize("ms", [SEVEN_DAYS_MS + 1, 30 * 24 * 3600 * 1000, -1], ids=["7d+1ms", "30d", "negative"])
def test_bad_expiry_is_invalid_argument(stub, asset, wallet, ms):
    w = wallet()
    h.credit(stub, w, asset, 10)
    r = h.expect_error(h.authorize, C.INVALID_ARGUMENT, "INVALID_EXPIRES_IN_MS", stub=stub, wallet_id=w,
                       asset=asset, amount=5, expires_in_ms=ms)
    assert r.metadata.get("field") == "expires_in_ms"
    assert h.totals(h.get_balance(stub, w, asset)) == (10, 0, 10)
