"""Malformed requests, unknown things, overflow, deadlines."""
import time

import grpc
import pytest

import e2e_helpers as h
from e2e_helpers import pb, S

C = grpc.StatusCode
FP = C.FAILED_PRECONDITION

BIG = "x" * (256 * 1024)
MANY = {"k%05d" % i: "v" for i in range(20000)}

# (rpc, fields, the `field` named, acceptable reasons). Placeholders: @W a funded wallet, @P a second
# wallet, @A the asset, @AUTH an open authorization of @W, @TX a fresh transaction id.
INVALID = [
    ("Credit", dict(amount=0), "amount", {"INVALID_AMOUNT"}),
    ("Credit", dict(amount=-1), "amount", {"INVALID_AMOUNT"}),
    ("Debit", dict(amount=0), "amount", {"INVALID_AMOUNT"}),
    ("Debit", dict(amount=-100), "amount", {"INVALID_AMOUNT"}),
    ("Authorize", dict(amount=0), "amount", {"INVALID_AMOUNT"}),
    ("Authorize", dict(amount=-9223372036854775808), "amount", {"INVALID_AMOUNT"}),
    ("Transfer", dict(amount=0), "amount", {"INVALID_AMOUNT"}),
    ("Transfer", dict(amount=-1), "amount", {"INVALID_AMOUNT"}),
    ("Credit", dict(wallet_id="w" * 129), "wallet_id", {"INVALID_WALLET_ID"}),
    ("Credit", dict(wallet_id=""), "wallet_id", {"INVALID_WALLET_ID"}),
    ("Credit", dict(transaction_id="t" * 129), "transaction_id", {"INVALID_TRANSACTION_ID"}),
    ("Credit", dict(transaction_id=""), "transaction_id", {"INVALID_TRANSACTION_ID"}),
    ("Credit", dict(transaction_id="ab\x01cd"), "transaction_id", {"INVALID_TRANSACTION_ID"}),
    ("Credit", dict(transaction_id="caf\u00e9-1"), "transaction_id", {"INVALID_TRANSACTION_ID"}),
    # protobuf-c cuts C strings at a NUL: these must not arrive as "ab" or "w".
    ("Credit", dict(transaction_id="ab\x00cd"), "transaction_id", {"INVALID_TRANSACTION_ID"}),
    ("Debit", dict(wallet_id="@W\x00x"), "wallet_id", {"INVALID_WALLET_ID"}),
    ("Credit", dict(metadata={"note": "a\x00b"}), "metadata", {"INVALID_METADATA"}),
    ("Credit", dict(metadata={"no\x00te": "v"}), "metadata", {"INVALID_METADATA"}),
    ("Debit", dict(funding=["cash\x00x"]), "funding", {"INVALID_FUNDING", "INVALID_BUCKET"}),
    ("Reverse", dict(reason="typo\x00"), "reason", {"INVALID_REASON"}),
    ("Credit", dict(metadata={"note": BIG}), "metadata", {"INVALID_METADATA"}),
    ("Credit", dict(metadata={BIG: "v"}), "metadata", {"INVALID_METADATA"}),
    ("Credit", dict(metadata=MANY), "metadata", {"INVALID_METADATA"}),
    ("Credit", dict(asset="usd"), "asset", {"INVALID_ASSET"}),
    ("Credit", dict(asset=""), "asset", {"INVALID_ASSET"}),
    ("Credit", dict(asset="A" * 17), "asset", {"INVALID_ASSET"}),
    ("Credit", dict(bucket="Cash"), "bucket", {"INVALID_BUCKET"}),
    ("Credit", dict(bucket="b" * 33), "bucket", {"INVALID_BUCKET"}),
    ("Credit", dict(bucket="a-b"), "bucket", {"INVALID_BUCKET"}),
    ("Debit", dict(funding=["Cash"]), "funding", {"INVALID_FUNDING", "INVALID_BUCKET"}),
    ("Debit", dict(funding=["cash", "no way"]), "funding", {"INVALID_FUNDING", "INVALID_BUCKET"}),
    ("Debit", dict(transaction_id="t" * 129), "transaction_id", {"INVALID_TRANSACTION_ID"}),
    ("Authorize", dict(funding=["b" * 33]), "funding", {"INVALID_FUNDING", "INVALID_BUCKET"}),
    ("Settle", dict(capture_amount=-1), "capture_amount", {"INVALID_CAPTURE_AMOUNT"}),
    ("Settle", dict(payout=-1), "payout", {"INVALID_PAYOUT"}),
    ("Settle", dict(payout=5, payout_bucket="Bonus"), "payout_bucket", {"INVALID_PAYOUT_BUCKET", "INVALID_BUCKET"}),
    ("Settle", dict(authorization_id=""), "authorization_id", {"INVALID_AUTHORIZATION_ID"}),
    ("Settle", dict(destination_wallet_id="bad wallet"), "destination_wallet_id",
     {"INVALID_DESTINATION_WALLET_ID"}),
    ("Rollback", dict(target_transaction_id=""), "target_transaction_id", {"INVALID_TARGET_TRANSACTION_ID"}),
    ("Rollback", dict(transaction_id="t" * 129), "transaction_id", {"INVALID_TRANSACTION_ID"}),
    ("Reverse", dict(original_transaction_id=""), "original_transaction_id",
     {"INVALID_ORIGINAL_TRANSACTION_ID"}),
    ("Transfer", dict(from_wallet_id=""), "from_wallet_id", {"INVALID_FROM_WALLET_ID"}),
    ("Transfer", dict(to_wallet_id="w" * 129), "to_wallet_id", {"INVALID_TO_WALLET_ID"}),
    ("Transfer", dict(bucket="BONUS"), "bucket", {"INVALID_BUCKET"}),
    ("GetBalance", dict(wallet_id=""), "wallet_id", {"INVALID_WALLET_ID"}),
    ("GetBalance", dict(asset="eur"), "asset", {"INVALID_ASSET"}),
    # Two keys Swift's String calls equal (NFC and NFD "café"): they would
    # fold into one entry and lose a value.
    ("Credit", dict(metadata={"caf\u00e9": "1", "cafe\u0301": "2"}), "metadata", {"INVALID_METADATA"}),
]


def _base(rpc, w, p, asset, auth):
    tx = h.new_tx_id()
    return {
        "Credit": dict(transaction_id=tx, wallet_id=w, asset=asset, amount=10),
        "Debit": dict(transaction_id=tx, wallet_id=w, asset=asset, amount=10),
        "Authorize": dict(transaction_id=tx, wallet_id=w, asset=asset, amount=10),
        "Settle": dict(transaction_id=tx, authorization_id=auth),
        "Rollback": dict(transaction_id=tx, target_transaction_id=auth),
        "Reverse": dict(transaction_id=tx, original_transaction_id=auth),
        "Transfer": dict(transaction_id=tx, from_wallet_id=w, to_wallet_id=p, asset=asset, amount=10),
        "GetBalance": dict(wallet_id=w, asset=asset),
    }[rpc]


@pytest.mark.parametrize("rpc,fields,field,reasons", INVALID,
                         ids=["%s %s" % (r[0], i) for i, r in enumerate(INVALID)])
def test_invalid_argument_names_the_field(stub, asset, wallet, rpc, fields, field, reasons):
    w, p = wallet(), wallet()
    h.credit(stub, w, asset, 1000)
    auth = h.authorize(stub, w, asset, 100).transaction.transaction_id
    before = h.norm_balance(h.get_balance(stub, w, asset))
    fields = {k: v.replace("@W", w) if isinstance(v, str) else v for k, v in fields.items()}
    req = getattr(pb, rpc + "Request")(**dict(_base(rpc, w, p, asset, auth), **fields))
    r = h.expect_error(getattr(stub, rpc), C.INVALID_ARGUMENT, request=req, timeout=h.TIMEOUT)
    assert r.reason in reasons, (r.reason, r.metadata)
    assert r.metadata.get("field") == field, r.metadata
    assert h.norm_balance(h.get_balance(stub, w, asset)) == before
    assert h.get_tx(stub, auth).status == S.PENDING


# (rpc, fields, reason); @new is an unknown wallet, @NEWASSET an undefined asset code.
NOT_FOUND = [
    ("Credit", dict(wallet_id="@new"), "WALLET_NOT_FOUND"),
    ("Debit", dict(wallet_id="@new"), "WALLET_NOT_FOUND"),
    ("Authorize", dict(wallet_id="@new"), "WALLET_NOT_FOUND"),
    ("Transfer", dict(from_wallet_id="@new"), "WALLET_NOT_FOUND"),
    ("Transfer", dict(to_wallet_id="@new"), "WALLET_NOT_FOUND"),
    ("Credit", dict(asset="@NEWASSET"), "ASSET_NOT_FOUND"),
    ("Debit", dict(asset="@NEWASSET"), "ASSET_NOT_FOUND"),
    ("Authorize", dict(asset="@NEWASSET"), "ASSET_NOT_FOUND"),
    ("Transfer", dict(asset="@NEWASSET"), "ASSET_NOT_FOUND"),
    ("GetBalance", dict(wallet_id="@new"), "WALLET_NOT_FOUND"),
    ("Settle", dict(authorization_id="@TX"), "TRANSACTION_NOT_FOUND"),
    ("Reverse", dict(original_transaction_id="@TX"), "TRANSACTION_NOT_FOUND"),
]


@pytest.mark.parametrize("rpc,fields,reason", NOT_FOUND,
                         ids=["%s %s" % (r[0], i) for i, r in enumerate(NOT_FOUND)])
def test_unknown_wallet_asset_or_transaction_is_not_found(stub, asset, wallet, rpc, fields, reason):
    w, p = wallet(), wallet()
    h.credit(stub, w, asset, 1000)
    auth = h.authorize(stub, w, asset, 100).transaction.transaction_id
    subst = {"@new": h.new_wallet_id(), "@NEWASSET": h.new_asset(), "@TX": h.new_tx_id()}
    fields = {k: subst.get(v, v) for k, v in fields.items()}
    req = getattr(pb, rpc + "Request")(**dict(_base(rpc, w, p, asset, auth), **fields))
    h.expect_error(getattr(stub, rpc), C.NOT_FOUND, reason, request=req, timeout=h.TIMEOUT)
    assert h.totals(h.get_balance(stub, w, asset)) == (1000, 100, 900)


def test_an_id_with_a_nul_is_refused_not_taken_for_its_prefix(stub, asset, wallet):
    w = wallet()
    tx = h.new_tx_id()
    h.credit(stub, w, asset, 100, tx_id=tx)
    for longer in (tx + "\x00", tx + "\x00other"):
        h.expect_error(h.credit, C.INVALID_ARGUMENT, "INVALID_TRANSACTION_ID", stub=stub, wallet_id=w,
                       asset=asset, amount=100, tx_id=longer)
        h.expect_error(h.credit, C.INVALID_ARGUMENT, "INVALID_TRANSACTION_ID", stub=stub, wallet_id=w,
                       asset=asset, amount=7, tx_id=longer)
    assert h.totals(h.get_balance(stub, w, asset)) == (100, 0, 100)


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_nul_is_refused_also_beside_bytes_protobuf_c_tolerates(channel, stub, asset, wallet, where):
    # protobuf-c keeps an overlong field-0 key (80 00) as an unknown field; the
    # NUL check must not give up on such a request and let "tx\0cd" in as "tx".
    w = wallet()
    tx = h.new_tx_id()
    body = pb.CreditRequest(transaction_id=tx + "\x00cd", wallet_id=w, asset=asset, amount=5).SerializeToString()
    odd = b"\x80\x00\x00"
    raw = channel.unary_unary("/wallet.v1.Wallet/Credit")
    r = h.expect_error(raw, C.INVALID_ARGUMENT, request=odd + body if where == "before" else body + odd,
                       timeout=h.TIMEOUT)
    assert r.reason in {"INVALID_REQUEST", "INVALID_TRANSACTION_ID"}, r.reason
    h.expect_error(h.get_tx, C.NOT_FOUND, stub=stub, tx_id=tx)
    assert h.totals(h.get_balance(stub, w, asset)) == (0, 0, 0)


def test_credit_overflowing_int64_is_pinned_balance_overflow(stub, asset, wallet):
    w = wallet()
    h.credit(stub, w, asset, h.INT64_MAX)
    tx = h.new_tx_id()
    r = h.expect_error(h.credit, FP, "BALANCE_OVERFLOW", stub=stub, wallet_id=w, asset=asset, amount=1, tx_id=tx)
    h.assert_balance_metadata(r.metadata, h.INT64_MAX, 0, h.INT64_MAX)
    h.debit(stub, w, asset, 10)  # now there would be room: the rejection stays pinned
    r = h.expect_error(h.credit, FP, "BALANCE_OVERFLOW", stub=stub, wallet_id=w, asset=asset, amount=1, tx_id=tx)
    h.assert_balance_metadata(r.metadata, h.INT64_MAX - 10, 0, h.INT64_MAX - 10)
    assert h.totals(h.get_balance(stub, w, asset)) == (h.INT64_MAX - 10, 0, h.INT64_MAX - 10)
    rejected = h.get_tx(stub, tx)
    assert (rejected.status, rejected.reason) == (S.REJECTED, "BALANCE_OVERFLOW")


@pytest.mark.parametrize("timeout", [1e-6, 1e-5, 1e-4, 1e-3], ids=["1us", "10us", "100us", "1ms"])
def test_tiny_deadline_then_retry_applies_exactly_once(stub, asset, wallet, timeout):
    w = wallet()
    h.credit(stub, w, asset, 1000)
    req = pb.DebitRequest(transaction_id=h.new_tx_id(), wallet_id=w, asset=asset, amount=123)
    early = None
    try:
        early = stub.Debit(req, timeout=timeout)
    except grpc.RpcError as e:
        assert e.code() == C.DEADLINE_EXCEEDED, (e.code(), e.details())
    time.sleep(0.3)
    later = stub.Debit(req, timeout=h.TIMEOUT)
    if timeout <= 1e-6:
        assert early is None and later.replayed is False, "work whose deadline passed before it started was applied"
    if early is not None:
        assert later.replayed is True and h.same_transaction(early.transaction, later.transaction)
    assert h.totals(h.get_balance(stub, w, asset)) == (877, 0, 877)
    assert h.totals(stub.Debit(req, timeout=h.TIMEOUT).balance) == (877, 0, 877)
