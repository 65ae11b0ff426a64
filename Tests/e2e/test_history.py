"""GetBalance, GetTransaction, ListTransactions."""
import base64

import grpc
import pytest

import e2e_helpers as h
from e2e_helpers import pb, K, S

C = grpc.StatusCode


def test_get_balance_per_bucket_and_total_with_holds(stub, asset, wallet):
    w = wallet()
    h.credit(stub, w, asset, 100)
    h.credit(stub, w, asset, 50, bucket="bonus")
    h.credit(stub, w, asset, 7, bucket="points")
    h.authorize(stub, w, asset, 70, funding=["bonus", "cash"])
    bal = h.get_balance(stub, w, asset)
    assert (bal.wallet_id, bal.asset) == (w, asset)
    h.check_balance_consistent(bal)
    assert h.totals(bal) == (157, 70, 87)
    assert h.bucket_of(bal, "cash") == (100, 20, 80)
    assert h.bucket_of(bal, "bonus") == (50, 50, 0)
    assert h.bucket_of(bal, "points") == (7, 0, 7)


def test_get_balance_all_assets_or_one(stub, wallet):
    a1, a2 = h.new_asset(), h.new_asset()
    for a in (a1, a2):
        stub.DefineAsset(pb.DefineAssetRequest(asset=a, decimal_places=2), timeout=h.TIMEOUT)
    w = wallet()
    h.credit(stub, w, a1, 11)
    h.credit(stub, w, a2, 22)
    everything = stub.GetBalance(pb.GetBalanceRequest(wallet_id=w), timeout=h.TIMEOUT).balances
    assert {b.asset: b.posted for b in everything} == {a1: 11, a2: 22}
    assert all(b.wallet_id == w for b in everything)
    one = stub.GetBalance(pb.GetBalanceRequest(wallet_id=w, asset=a2), timeout=h.TIMEOUT).balances
    assert [(b.asset, b.posted, b.held, b.available) for b in one] == [(a2, 22, 0, 22)]


def test_get_balance_of_unknown_wallet_is_wallet_not_found(stub):
    h.expect_error(stub.GetBalance, C.NOT_FOUND, "WALLET_NOT_FOUND",
                   request=pb.GetBalanceRequest(wallet_id=h.new_wallet_id()), timeout=h.TIMEOUT)


def test_get_transaction_returns_what_the_operation_returned(stub, asset, wallet):
    w = wallet()
    c = h.credit(stub, w, asset, 100, source="bank").transaction
    got = h.get_tx(stub, c.transaction_id)
    assert h.same_transaction(got, c)
    assert got.status == S.POSTED
    assert dict(got.metadata) == {"source": "bank"}


def test_get_transaction_of_unknown_id_is_transaction_not_found(stub):
    h.expect_error(stub.GetTransaction, C.NOT_FOUND, "TRANSACTION_NOT_FOUND",
                   request=pb.GetTransactionRequest(transaction_id=h.new_tx_id()), timeout=h.TIMEOUT)


def _busy_wallet(stub, asset, wallet):
    """A wallet with 9 transactions of every kind that touches it; returns (w, ids oldest first)."""
    w, other = wallet(), wallet()
    ids = []
    ids.append(h.credit(stub, w, asset, 1000).transaction.transaction_id)
    ids.append(h.credit(stub, w, asset, 100, bucket="bonus").transaction.transaction_id)
    d = h.debit(stub, w, asset, 10).transaction.transaction_id
    ids.append(d)
    auth = h.authorize(stub, w, asset, 50).transaction.transaction_id
    ids.append(auth)
    ids.append(h.settle(stub, auth, capture_amount=20).transaction.transaction_id)
    ids.append(h.transfer(stub, w, other, asset, 30).transaction.transaction_id)
    ids.append(h.transfer(stub, other, w, asset, 5).transaction.transaction_id)
    ids.append(h.rollback(stub, d).transaction.transaction_id)
    ids.append(h.debit(stub, w, asset, 1).transaction.transaction_id)
    return w, ids


def test_list_transactions_newest_first_across_pages(stub, asset, wallet):
    w, ids = _busy_wallet(stub, asset, wallet)
    pages, token = [], ""
    for _ in range(10):
        resp = stub.ListTransactions(pb.ListTransactionsRequest(wallet_id=w, page_size=4, page_token=token),
                                     timeout=h.TIMEOUT)
        pages.append([t.transaction_id for t in resp.transactions])
        token = resp.next_page_token
        if not token:
            break
    assert not token, "never reached the last page"
    assert all(len(p) == 4 for p in pages[:-1]), pages
    assert 1 <= len(pages[-1]) <= 4, pages
    flat = [i for p in pages for i in p]
    assert flat == list(reversed(ids))
    everything = h.list_all(stub, w)
    assert [t.transaction_id for t in everything] == list(reversed(ids))
    times = [t.created_at for t in everything]
    assert times == sorted(times, reverse=True)


def test_history_entries_chain_without_gaps_and_sum_to_balance(stub, asset, wallet):
    w, _ = _busy_wallet(stub, asset, wallet)
    entries = [e for t in h.list_all(stub, w) for e in t.entries if e.wallet_id == w]
    seqs = sorted(e.sequence for e in entries)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert len({bytes(e.hash) for e in entries}) == len(entries)
    sums = {}
    for e in entries:
        sums[e.bucket] = sums.get(e.bucket, 0) + e.amount
    bal = h.get_balance(stub, w, asset)
    for b in bal.buckets:
        assert sums.get(b.bucket, 0) == b.posted, (b, sums)


def test_list_default_page_size_is_50(stub, asset, wallet):
    w = wallet()
    for _ in range(51):
        h.credit(stub, w, asset, 1)
    resp = stub.ListTransactions(pb.ListTransactionsRequest(wallet_id=w), timeout=h.TIMEOUT)
    assert len(resp.transactions) == 50
    assert resp.next_page_token
    rest = stub.ListTransactions(pb.ListTransactionsRequest(wallet_id=w, page_token=resp.next_page_token),
                                 timeout=h.TIMEOUT)
    assert len(rest.transactions) == 1 and not rest.next_page_token


def test_incoming_transfer_and_settle_into_pot_appear_in_payee_history(stub, asset, wallet):
    player, friend, pot = wallet(), wallet(), wallet(prefix="pot")
    h.credit(stub, player, asset, 1000)
    t = h.transfer(stub, player, friend, asset, 100).transaction
    auth = h.authorize(stub, player, asset, 200).transaction
    s = h.settle(stub, auth.transaction_id, destination_wallet_id=pot).transaction
    friend_hist = h.list_all(stub, friend)
    assert [(x.transaction_id, x.kind) for x in friend_hist] == [(t.transaction_id, K.TRANSFER)]
    pot_hist = h.list_all(stub, pot)
    assert [(x.transaction_id, x.kind) for x in pot_hist] == [(s.transaction_id, K.SETTLE)]


def test_authorization_appears_in_history(stub, asset, wallet):
    w = wallet()
    h.credit(stub, w, asset, 100)
    auth = h.authorize(stub, w, asset, 40).transaction
    newest = h.list_all(stub, w)[0]
    assert (newest.transaction_id, newest.kind, newest.status) == (auth.transaction_id, K.AUTHORIZE, S.PENDING)


def test_page_token_of_another_wallet_is_invalid_page_token(stub, asset, wallet):
    w1, w2 = wallet(), wallet()
    for w in (w1, w2):
        for _ in range(3):
            h.credit(stub, w, asset, 1)
    token = stub.ListTransactions(pb.ListTransactionsRequest(wallet_id=w1, page_size=1),
                                  timeout=h.TIMEOUT).next_page_token
    assert token
    r = h.expect_error(stub.ListTransactions, C.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN",
                       request=pb.ListTransactionsRequest(wallet_id=w2, page_size=1, page_token=token),
                       timeout=h.TIMEOUT)
    assert r.metadata.get("field") == "page_token"


@pytest.mark.parametrize("token", ["garbage", "AAAA", base64.urlsafe_b64encode(b"\x00" * 24).decode(),
                                   "\u00e9\u00e9", "x" * 5000],
                         ids=["word", "short b64", "zero b64", "non-ascii", "long"])
def test_garbage_page_token_is_invalid_page_token(stub, asset, wallet, token):
    w = wallet()
    h.credit(stub, w, asset, 1)
    h.expect_error(stub.ListTransactions, C.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN",
                   request=pb.ListTransactionsRequest(wallet_id=w, page_token=token), timeout=h.TIMEOUT)


def test_page_size_1001_is_invalid_and_1000_is_fine(stub, asset, wallet):
    w = wallet()
    h.credit(stub, w, asset, 1)
    r = h.expect_error(stub.ListTransactions, C.INVALID_ARGUMENT, "INVALID_PAGE_SIZE",
                       request=pb.ListTransactionsRequest(wallet_id=w, page_size=1001), timeout=h.TIMEOUT)
    assert r.metadata.get("field") == "page_size"
    ok = stub.ListTransactions(pb.ListTransactionsRequest(wallet_id=w, page_size=1000), timeout=h.TIMEOUT)
    assert len(ok.transactions) == 1 and not ok.next_page_token


def test_list_transactions_of_unknown_wallet_is_wallet_not_found(stub):
    h.expect_error(stub.ListTransactions, C.NOT_FOUND, "WALLET_NOT_FOUND",
                   request=pb.ListTransactionsRequest(wallet_id=h.new_wallet_id()), timeout=h.TIMEOUT)
