"""Helpers shared by the e2e tests. Imported after conftest put the generated stubs on sys.path."""
import os
import secrets
import subprocess
import sys
import time
import uuid

import grpc

from wallet.v1 import wallet_pb2 as pb
from wallet.v1 import wallet_pb2_grpc as wallet_grpc
from google.rpc import status_pb2, error_details_pb2

health_pb = sys.modules["wallet_e2e_health_pb2"]

TIMEOUT = 15.0  # seconds, per ordinary call
ERROR_INFO_TYPE_URL = "type.googleapis.com/google.rpc.ErrorInfo"
DOMAIN = "wallet.v1"
INT64_MAX = 2 ** 63 - 1

K = pb.TransactionKind
S = pb.TransactionStatus


# --- ids -------------------------------------------------------------------------------------

def uuid7():
    """A UUIDv7 (RFC 9562): 48-bit Unix ms timestamp, version 7, variant 10, random rest."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 68) & 0xFFF) << 64          # rand_a, 12 bits
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)                 # rand_b, 62 bits
    return str(uuid.UUID(int=value))


def new_tx_id():
    return uuid7()


def new_wallet_id(prefix="w"):
    return "%s-%s" % (prefix, uuid.uuid4().hex)


def new_asset():
    """1..16 of [A-Z0-9_]: 'T' + 15 random hex digits, upper case."""
    return "T" + uuid.uuid4().hex[:15].upper()


# --- errors ----------------------------------------------------------------------------------

def error_info(err):
    """(reason, metadata dict) of the google.rpc.ErrorInfo in an RpcError's
    grpc-status-details-bin trailer; asserts the envelope is well formed."""
    trailers = err.trailing_metadata() or ()
    raw = [v for k, v in trailers if k == "grpc-status-details-bin"]
    assert raw, "no grpc-status-details-bin trailer on %s: %s" % (err.code(), err.details())
    status = status_pb2.Status()
    status.ParseFromString(raw[0])
    assert status.code == err.code().value[0], \
        "google.rpc.Status.code %d != gRPC status %s" % (status.code, err.code())
    assert len(status.details) >= 1, "google.rpc.Status has no details"
    anyd = status.details[0]
    assert anyd.type_url == ERROR_INFO_TYPE_URL, anyd.type_url
    info = error_details_pb2.ErrorInfo()
    info.ParseFromString(anyd.value)
    assert info.domain == DOMAIN, info.domain
    return info.reason, dict(info.metadata)


class Rejected:
    """What expect_error found: .code, .reason, .metadata, .details."""

    def __init__(self, err):
        self.err = err
        self.code = err.code()
        self.details = err.details()
        self.reason, self.metadata = error_info(err)


def expect_error(fn, code, reason=None, **kwargs):
    """Call fn(**kwargs); it must fail with `code` (and `reason` when given)."""
    try:
        resp = fn(**kwargs)
    except grpc.RpcError as e:
        assert e.code() == code, "expected %s/%s, got %s: %s" % (code, reason, e.code(), e.details())
        r = Rejected(e)
        if reason is not None:
            assert r.reason == reason, "expected reason %s, got %s (%s)" % (reason, r.reason, r.metadata)
        return r
    raise AssertionError("expected %s/%s, call succeeded: %s" % (code, reason, resp))


def assert_balance_metadata(md, posted, held, available):
    """Business rejections carry the wallet's totals for the asset as decimal strings."""
    assert (md.get("posted"), md.get("held"), md.get("available")) == (str(posted), str(held), str(available)), md


# --- health / verify ------------------------------------------------------------------------

def health_check(channel, service="", timeout=5.0):
    call = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb.HealthCheckResponse.FromString)
    return call(health_pb.HealthCheckRequest(service=service), timeout=timeout).status


def run_verify(binary, db_url, timeout=300):
    res = subprocess.run([binary, "verify", "--database-url", db_url],
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, "wallet-server verify exited %d:\n%s\n%s" % (
        res.returncode, res.stdout[-8000:], res.stderr[-8000:])


# --- balances and transactions ---------------------------------------------------------------

def bucket_of(balance, name):
    """(posted, held, available) of one bucket in a Balance; zeros if absent."""
    for b in balance.buckets:
        if b.bucket == name:
            return (b.posted, b.held, b.available)
    return (0, 0, 0)


def totals(balance):
    return (balance.posted, balance.held, balance.available)


def norm_balance(balance):
    """Comparable form of a Balance: totals and buckets by name (order-free, zero buckets dropped)."""
    return (balance.wallet_id, balance.asset, balance.posted, balance.held, balance.available,
            tuple(sorted((b.bucket, b.posted, b.held, b.available) for b in balance.buckets
                         if (b.posted, b.held, b.available) != (0, 0, 0))))


def get_balance(stub, wallet_id, asset):
    resp = stub.GetBalance(pb.GetBalanceRequest(wallet_id=wallet_id, asset=asset), timeout=TIMEOUT)
    found = [b for b in resp.balances if b.asset == asset]
    assert len(found) <= 1, resp
    if not found:
        return pb.Balance(wallet_id=wallet_id, asset=asset)
    return found[0]


def check_balance_consistent(balance):
    """Totals are the sum of buckets; available = posted - held everywhere."""
    assert balance.available == balance.posted - balance.held, balance
    assert balance.posted == sum(b.posted for b in balance.buckets), balance
    assert balance.held == sum(b.held for b in balance.buckets), balance
    for b in balance.buckets:
        assert b.available == b.posted - b.held, balance


def wallet_entries(tx, wallet_id):
    """{bucket: summed amount} of the transaction's entries on one wallet (zero sums dropped)."""
    out = {}
    for e in tx.entries:
        if e.wallet_id == wallet_id:
            out[e.bucket] = out.get(e.bucket, 0) + e.amount
    return {b: a for b, a in out.items() if a != 0}


def check_double_entry(tx):
    """Entries sum to zero per asset; each hash is 32 bytes."""
    sums = {}
    for e in tx.entries:
        sums[e.asset] = sums.get(e.asset, 0) + e.amount
        assert len(e.hash) == 32, e
    assert all(v == 0 for v in sums.values()), tx
    if tx.entries:
        assert len(tx.entries) >= 2, tx


def funding_of(tx):
    """[(bucket, amount)] drawn, in draw order, zero rows dropped."""
    return [(f.bucket, f.amount) for f in tx.funding if f.amount != 0]


def same_transaction(a, b):
    """Replays return the original transaction: same id, kind, amounts, entries, time.
    (status may have moved on since: a debit may be ROLLED_BACK by now.)"""
    def key(t):
        return (t.transaction_id, t.kind, t.wallet_id, t.asset, t.amount, t.created_at,
                tuple((e.wallet_id, e.asset, e.bucket, e.amount, e.sequence, bytes(e.hash)) for e in t.entries),
                tuple((f.bucket, f.amount) for f in t.funding), t.target_transaction_id,
                t.counterparty_wallet_id)
    return key(a) == key(b)


def list_all(stub, wallet_id, page_size=1000, limit_pages=1000):
    out, token = [], ""
    for _ in range(limit_pages):
        resp = stub.ListTransactions(pb.ListTransactionsRequest(
            wallet_id=wallet_id, page_size=page_size, page_token=token), timeout=TIMEOUT)
        out.extend(resp.transactions)
        token = resp.next_page_token
        if not token:
            return out
    raise AssertionError("ListTransactions never reached the last page")


def credit(stub, wallet_id, asset, amount, bucket="", tx_id=None, **md):
    tx_id = tx_id or new_tx_id()
    return stub.Credit(pb.CreditRequest(transaction_id=tx_id, wallet_id=wallet_id, asset=asset,
                                        amount=amount, bucket=bucket, metadata=md), timeout=TIMEOUT)


def debit(stub, wallet_id, asset, amount, funding=(), tx_id=None):
    tx_id = tx_id or new_tx_id()
    return stub.Debit(pb.DebitRequest(transaction_id=tx_id, wallet_id=wallet_id, asset=asset,
                                      amount=amount, funding=list(funding)), timeout=TIMEOUT)


def authorize(stub, wallet_id, asset, amount, funding=(), expires_in_ms=0, tx_id=None):
    tx_id = tx_id or new_tx_id()
    return stub.Authorize(pb.AuthorizeRequest(transaction_id=tx_id, wallet_id=wallet_id, asset=asset,
                                              amount=amount, funding=list(funding),
                                              expires_in_ms=expires_in_ms), timeout=TIMEOUT)


def settle(stub, authorization_id, capture_amount=0, payout=0, payout_bucket="",
           destination_wallet_id="", tx_id=None):
    tx_id = tx_id or new_tx_id()
    return stub.Settle(pb.SettleRequest(transaction_id=tx_id, authorization_id=authorization_id,
                                        capture_amount=capture_amount, payout=payout,
                                        payout_bucket=payout_bucket,
                                        destination_wallet_id=destination_wallet_id), timeout=TIMEOUT)


def rollback(stub, target, tx_id=None):
    tx_id = tx_id or new_tx_id()
    return stub.Rollback(pb.RollbackRequest(transaction_id=tx_id, target_transaction_id=target),
                         timeout=TIMEOUT)


def reverse(stub, original, reason="back office correction", tx_id=None):
    tx_id = tx_id or new_tx_id()
    return stub.Reverse(pb.ReverseRequest(transaction_id=tx_id, original_transaction_id=original,
                                          reason=reason), timeout=TIMEOUT)


def transfer(stub, src, dst, asset, amount, bucket="", tx_id=None):
    tx_id = tx_id or new_tx_id()
    return stub.Transfer(pb.TransferRequest(transaction_id=tx_id, from_wallet_id=src, to_wallet_id=dst,
                                            asset=asset, amount=amount, bucket=bucket), timeout=TIMEOUT)


def get_tx(stub, tx_id):
    return stub.GetTransaction(pb.GetTransactionRequest(transaction_id=tx_id), timeout=TIMEOUT).transaction


def wait_until(pred, timeout, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# --- raw protobuf wire reading (for server reflection, whose protos are not in Protos/) ------

def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def wire_fields(buf):
    """[(field number, value)] of a serialized message; length-delimited values as bytes."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        out.append((num, v))
    return out


def wire_bytes(num, data):
    """A length-delimited field (string, bytes, embedded message or map entry)."""
    return bytes([num << 3 | 2]) + _encode_varint(len(data)) + data


def wire_string(num, s):
    return wire_bytes(num, s.encode())


def _encode_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)
