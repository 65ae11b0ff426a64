"""Exactly once: replays, pinned rejections, mismatches, and what records nothing."""
import grpc
import pytest

import e2e_helpers as h
from e2e_helpers import pb, K, S

C = grpc.StatusCode
FP = C.FAILED_PRECONDITION


# Each case: set up, then return (rpc name, request, wallet whose balance the answer carries).
def _case_credit(stub, asset, wallet):
    w = wallet()
    return "Credit", pb.CreditRequest(transaction_id=h.new_tx_id(), wallet_id=w, asset=asset, amount=100), w


def _case_debit(stub, asset, wallet):
    w = wallet()
    h.credit(stub, w, asset, 500)
    return "Debit", pb.DebitRequest(transaction_id=h.new_tx_id(), wallet_id=w, asset=asset, amount=100), w


def _case_authorize(stub, asset, wallet):
    w = wallet()
    h.credit(stub, w, asset, 500)
    return "Authorize", pb.AuthorizeRequest(transaction_id=h.new_tx_id(), wallet_id=w, asset=asset,
                                            amount=100), w


def _case_settle(stub, asset, wallet):
    w, pot = wallet(), wallet(prefix="pot")
    h.credit(stub, w, asset, 500)
    auth = h.authorize(stub, w, asset, 100).transaction.transaction_id
    return "Settle", pb.SettleRequest(transaction_id=h.new_tx_id(), authorization_id=auth, capture_amount=60,
                                      payout=10, destination_wallet_id=pot), w


def _case_rollback(stub, asset, wallet):
    w = wallet()
    h.credit(stub, w, asset, 500)
    d = h.debit(stub, w, asset, 100).transaction.transaction_id
    return "Rollback", pb.RollbackRequest(transaction_id=h.new_tx_id(), target_transaction_id=d), w


def _case_reverse(stub, asset, wallet):
    w = wallet()
    c = h.credit(stub, w, asset, 500).transaction.transaction_id
    return "Reverse", pb.ReverseRequest(transaction_id=h.new_tx_id(), original_transaction_id=c,
                                        reason="duplicate deposit"), w


def _case_transfer(stub, asset, wallet):
    a, b = wallet(), wallet()
    h.credit(stub, a, asset, 500)
    return "Transfer", pb.TransferRequest(transaction_id=h.new_tx_id(), from_wallet_id=a, to_wallet_id=b,
                                          asset=asset, amount=100), a


CASES = [_case_credit, _case_debit, _case_authorize, _case_settle, _case_rollback, _case_reverse, _case_transfer]
CASE_IDS = ["credit", "debit", "authorize", "settle", "rollback", "reverse", "transfer"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_replay_returns_original_outcome_with_current_balance(stub, asset, wallet, case):
    rpc, req, w = case(stub, asset, wallet)
    call = getattr(stub, rpc)
    first = call(req, timeout=h.TIMEOUT)
    assert first.replayed is False
    assert first.transaction.transaction_id == req.transaction_id
    h.credit(stub, w, asset, 7)  # the balance moves on between the call and its replay
    now = h.get_balance(stub, w, asset)
    again = call(req, timeout=h.TIMEOUT)
    assert again.replayed is True
    assert h.same_transaction(again.transaction, first.transaction)
    assert h.norm_balance(again.balance) == h.norm_balance(now), "a replay carries the current balance"
    assert h.norm_balance(h.get_balance(stub, w, asset)) == h.norm_balance(now), "a replay never moves money"
    if rpc == "Rollback":
        assert again.target_found == first.target_found


def test_pinned_insufficient_funds_stays_after_deposit(stub, asset, wallet):
    w = wallet()
    h.credit(stub, w, asset, 100)
    bet = h.new_tx_id()
    r1 = h.expect_error(h.debit, FP, "INSUFFICIENT_FUNDS", stub=stub, wallet_id=w, asset=asset, amount=500,
                        tx_id=bet)
    h.assert_balance_metadata(r1.metadata, 100, 0, 100)
    h.credit(stub, w, asset, 1000)
    r2 = h.expect_error(h.debit, FP, "INSUFFICIENT_FUNDS", stub=stub, wallet_id=w, asset=asset, amount=500,
                        tx_id=bet)
    h.assert_balance_metadata(r2.metadata, 1100, 0, 1100)
    assert h.totals(h.get_balance(stub, w, asset)) == (1100, 0, 1100)
    rejected = h.get_tx(stub, bet)
    assert (rejected.status, rejected.reason) == (S.REJECTED, "INSUFFICIENT_FUNDS")
    assert h.wallet_entries(rejected, w) == {}


# (rpc, original request fields, changed fields, expected `fields`)
MISMATCH = [
    ("Credit", dict(amount=100), dict(amount=101), {"amount"}),
    ("Credit", dict(amount=100), dict(bucket="bonus"), {"bucket"}),
    ("Credit", dict(amount=100), dict(amount=5, bucket="bonus"), {"amount", "bucket"}),
    ("Credit", dict(amount=100), dict(wallet_id="@other"), {"wallet_id"}),
    ("Credit", dict(amount=100), dict(asset="@other"), {"asset"}),
    ("Debit", dict(amount=10, funding=["cash"]), dict(funding=["bonus", "cash"]), {"funding"}),
    ("Debit", dict(amount=10), dict(amount=11), {"amount"}),
    ("Authorize", dict(amount=10, expires_in_ms=60000), dict(expires_in_ms=120000), {"expires_in_ms"}),
    ("Transfer", dict(amount=10), dict(to_wallet_id="@other"), {"to_wallet_id"}),
]


@pytest.mark.parametrize("rpc,orig,changed,fields", MISMATCH,
                         ids=["credit amount", "credit bucket", "credit amount+bucket", "credit wallet",
                              "credit asset", "debit funding", "debit amount", "authorize expiry",
                              "transfer payee"])
def test_same_id_other_params_is_idempotency_mismatch(stub, asset, wallet, rpc, orig, changed, fields):
    w, other_w, payee = wallet(), wallet(), wallet()
    other_asset = h.new_asset()
    stub.DefineAsset(pb.DefineAssetRequest(asset=other_asset, decimal_places=2), timeout=h.TIMEOUT)
    for wid in (w, other_w):
        h.credit(stub, wid, asset, 1000)
        h.credit(stub, wid, asset, 1000, bucket="bonus")
        h.credit(stub, wid, other_asset, 1000)
    req_cls = getattr(pb, rpc + "Request")
    tx = h.new_tx_id()

    def build(fields_):
        base = dict(transaction_id=tx, asset=asset)
        if rpc == "Transfer":
            base.update(from_wallet_id=w, to_wallet_id=payee)
        else:
            base.update(wallet_id=w)
        for k, v in fields_.items():
            if v == "@other":
                v = {"wallet_id": other_w, "to_wallet_id": other_w, "asset": other_asset}[k]
            base[k] = v
        return req_cls(**base)

    call = getattr(stub, rpc)
    call(build(orig), timeout=h.TIMEOUT)
    before = {wid: h.norm_balance(h.get_balance(stub, wid, asset)) for wid in (w, other_w, payee)}
    r = h.expect_error(call, C.ALREADY_EXISTS, "IDEMPOTENCY_MISMATCH",
                       request=build(dict(orig, **changed)), timeout=h.TIMEOUT)
    assert set(r.metadata.get("fields", "").split(",")) == fields, r.metadata
    assert {wid: h.norm_balance(h.get_balance(stub, wid, asset)) for wid in (w, other_w, payee)} == before


def test_mismatch_against_a_pinned_rejection(stub, asset, wallet):
    w = wallet()
    tx = h.new_tx_id()
    h.expect_error(h.debit, FP, "INSUFFICIENT_FUNDS", stub=stub, wallet_id=w, asset=asset, amount=50, tx_id=tx)
    h.credit(stub, w, asset, 100)
    r = h.expect_error(h.debit, C.ALREADY_EXISTS, "IDEMPOTENCY_MISMATCH", stub=stub, wallet_id=w, asset=asset,
                       amount=40, tx_id=tx)
    assert set(r.metadata.get("fields", "").split(",")) == {"amount"}
    assert h.totals(h.get_balance(stub, w, asset)) == (100, 0, 100)


def test_same_id_on_another_rpc_is_idempotency_mismatch(stub, asset, wallet):
    w = wallet()
    tx = h.new_tx_id()
    h.credit(stub, w, asset, 100, tx_id=tx)
    h.expect_error(h.debit, C.ALREADY_EXISTS, "IDEMPOTENCY_MISMATCH", stub=stub, wallet_id=w, asset=asset,
                   amount=100, tx_id=tx)
    assert h.totals(h.get_balance(stub, w, asset)) == (100, 0, 100)


def test_unknown_wallet_records_nothing(stub, asset):
    w = h.new_wallet_id()
    tx = h.new_tx_id()
    h.expect_error(h.credit, C.NOT_FOUND, "WALLET_NOT_FOUND", stub=stub, wallet_id=w, asset=asset, amount=100,
                   tx_id=tx)
    stub.CreateWallet(pb.CreateWalletRequest(wallet_id=w), timeout=h.TIMEOUT)
    r = h.credit(stub, w, asset, 100, tx_id=tx)
    assert r.replayed is False
    assert h.totals(r.balance) == (100, 0, 100)


def test_unknown_asset_records_nothing(stub, wallet):
    w = wallet()
    code = h.new_asset()
    tx = h.new_tx_id()
    h.expect_error(h.credit, C.NOT_FOUND, "ASSET_NOT_FOUND", stub=stub, wallet_id=w, asset=code, amount=100,
                   tx_id=tx)
    stub.DefineAsset(pb.DefineAssetRequest(asset=code, decimal_places=0), timeout=h.TIMEOUT)
    r = h.credit(stub, w, code, 100, tx_id=tx)
    assert r.replayed is False
    assert h.totals(r.balance) == (100, 0, 100)


@pytest.mark.parametrize("bad", [dict(amount=0), dict(amount=-5), dict(bucket="BAD BUCKET")],
                         ids=["zero", "negative", "bucket"])
def test_invalid_argument_records_nothing(stub, asset, wallet, bad):
    w = wallet()
    tx = h.new_tx_id()
    req = pb.CreditRequest(transaction_id=tx, wallet_id=w, asset=asset, amount=100)
    bad_req = pb.CreditRequest()
    bad_req.CopyFrom(req)
    for k, v in bad.items():
        setattr(bad_req, k, v)
    h.expect_error(stub.Credit, C.INVALID_ARGUMENT, request=bad_req, timeout=h.TIMEOUT)
    h.expect_error(stub.GetTransaction, C.NOT_FOUND, "TRANSACTION_NOT_FOUND",
                   request=pb.GetTransactionRequest(transaction_id=tx), timeout=h.TIMEOUT)
    r = stub.Credit(req, timeout=h.TIMEOUT)
    assert r.replayed is False
    assert h.totals(r.balance) == (100, 0, 100)


def test_concurrent_exact_duplicates_apply_once(channel, stub, asset, wallet):
    w = wallet()
    h.credit(stub, w, asset, 1000)
    req = pb.DebitRequest(transaction_id=h.new_tx_id(), wallet_id=w, asset=asset, amount=300)
    futures = [stub.Debit.future(req, timeout=h.TIMEOUT) for _ in range(12)]
    answers = [f.result() for f in futures]
    assert sum(1 for a in answers if not a.replayed) == 1
    assert all(h.same_transaction(a.transaction, answers[0].transaction) for a in answers)
    assert h.totals(h.get_balance(stub, w, asset)) == (700, 0, 700)


def test_metadata_in_another_unicode_normalization_is_a_mismatch(stub, asset, wallet):
    # "café" as one scalar (NFC) and as "e" plus a combining accent (NFD):
    # the same text to Swift's String ==, other bytes on the wire. A retry
    # must send the same bytes to be answered as the original.
    w = wallet()
    tx = h.new_tx_id()
    first = h.credit(stub, w, asset, 100, tx_id=tx, note="caf\u00e9")
    r = h.expect_error(h.credit, C.ALREADY_EXISTS, "IDEMPOTENCY_MISMATCH", stub=stub, wallet_id=w, asset=asset,
                       amount=100, tx_id=tx, note="cafe\u0301")
    assert r.metadata.get("fields") == "metadata", r.metadata
    again = h.credit(stub, w, asset, 100, tx_id=tx, note="caf\u00e9")
    assert again.replayed and again.transaction.metadata["note"] == "caf\u00e9"
    assert first.transaction.transaction_id == again.transaction.transaction_id
    assert h.totals(h.get_balance(stub, w, asset)) == (100, 0, 100)


def test_metadata_key_in_nfd_first_round_trips_byte_for_byte(stub, asset, wallet):
    # The first request's key is the decomposed form: it is stored and
    # returned as sent, its own retry replays, and the composed form of the
    # same text is another request.
    w = wallet()
    tx = h.new_tx_id()
    nfd = {"cafe\u0301": "x"}
    first = stub.Credit(pb.CreditRequest(transaction_id=tx, wallet_id=w, asset=asset, amount=40, metadata=nfd),
                        timeout=h.TIMEOUT)
    assert [k.encode() for k in first.transaction.metadata] == ["cafe\u0301".encode()]
    assert [k.encode() for k in h.get_tx(stub, tx).metadata] == ["cafe\u0301".encode()]
    again = stub.Credit(pb.CreditRequest(transaction_id=tx, wallet_id=w, asset=asset, amount=40, metadata=nfd),
                        timeout=h.TIMEOUT)
    assert again.replayed
    r = h.expect_error(h.credit, C.ALREADY_EXISTS, "IDEMPOTENCY_MISMATCH", stub=stub, wallet_id=w, asset=asset,
                       amount=40, tx_id=tx, **{"caf\u00e9": "x"})
    assert r.metadata.get("fields") == "metadata", r.metadata
    assert h.totals(h.get_balance(stub, w, asset)) == (40, 0, 40)


def test_a_map_key_repeated_with_the_same_bytes_keeps_the_last_value(channel, stub, asset, wallet):
    # Protobuf's rule for a map entry sent twice: the last one wins. (Keys
    # that differ only in normalization are refused instead: test_bad_input.)
    def entry(key, value):
        return h.wire_bytes(6, h.wire_string(1, key) + h.wire_string(2, value))

    w = wallet()
    tx = h.new_tx_id()
    body = pb.CreditRequest(transaction_id=tx, wallet_id=w, asset=asset, amount=25).SerializeToString()
    raw = channel.unary_unary("/wallet.v1.Wallet/Credit")
    answer = pb.CreditResponse.FromString(raw(body + entry("note", "first") + entry("note", "last"),
                                              timeout=h.TIMEOUT))
    assert dict(answer.transaction.metadata) == {"note": "last"}
    assert dict(h.get_tx(stub, tx).metadata) == {"note": "last"}
    assert h.credit(stub, w, asset, 25, tx_id=tx, note="last").replayed
    h.expect_error(h.credit, C.ALREADY_EXISTS, "IDEMPOTENCY_MISMATCH", stub=stub, wallet_id=w, asset=asset,
                   amount=25, tx_id=tx, note="first")
    assert h.totals(h.get_balance(stub, w, asset)) == (25, 0, 25)
