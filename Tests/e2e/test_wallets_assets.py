"""CreateWallet and DefineAsset."""
import time

import grpc
import pytest

import e2e_helpers as h
from e2e_helpers import pb

C = grpc.StatusCode


def test_create_wallet_returns_its_info(stub):
    wid = h.new_wallet_id()
    before = time.time() * 1e6
    r = stub.CreateWallet(pb.CreateWalletRequest(wallet_id=wid, overdraft_limit=250,
                                                 labels={"brand": "poker", "tier": "gold"}), timeout=h.TIMEOUT)
    assert r.created is True
    assert r.wallet.wallet_id == wid
    assert r.wallet.overdraft_limit == 250
    assert dict(r.wallet.labels) == {"brand": "poker", "tier": "gold"}
    assert abs(r.wallet.created_at - before) < 300e6, "created_at must be Unix microseconds"


def test_create_wallet_again_with_same_params_succeeds(stub):
    wid = h.new_wallet_id()
    req = pb.CreateWalletRequest(wallet_id=wid, overdraft_limit=10, labels={"k": "v"})
    first = stub.CreateWallet(req, timeout=h.TIMEOUT)
    again = stub.CreateWallet(req, timeout=h.TIMEOUT)
    assert first.created is True
    assert again.created is False
    assert again.wallet == first.wallet


@pytest.mark.parametrize("other", [
    pb.CreateWalletRequest(overdraft_limit=11, labels={"k": "v"}),
    pb.CreateWalletRequest(overdraft_limit=10, labels={"k": "w"}),
    pb.CreateWalletRequest(overdraft_limit=10),
], ids=["overdraft_limit", "label value", "labels missing"])
def test_create_wallet_with_other_params_is_wallet_exists(stub, other):
    wid = h.new_wallet_id()
    stub.CreateWallet(pb.CreateWalletRequest(wallet_id=wid, overdraft_limit=10, labels={"k": "v"}),
                      timeout=h.TIMEOUT)
    other.wallet_id = wid
    h.expect_error(stub.CreateWallet, C.ALREADY_EXISTS, "WALLET_EXISTS", request=other, timeout=h.TIMEOUT)


def test_create_wallet_with_a_label_in_another_normalization_is_wallet_exists(stub):
    # "café" as one scalar (NFC) and as "e" plus a combining accent (NFD):
    # other bytes, so other parameters.
    wid = h.new_wallet_id()
    stub.CreateWallet(pb.CreateWalletRequest(wallet_id=wid, labels={"note": "caf\u00e9"}), timeout=h.TIMEOUT)
    again = stub.CreateWallet(pb.CreateWalletRequest(wallet_id=wid, labels={"note": "caf\u00e9"}), timeout=h.TIMEOUT)
    assert again.created is False
    h.expect_error(stub.CreateWallet, C.ALREADY_EXISTS, "WALLET_EXISTS",
                   request=pb.CreateWalletRequest(wallet_id=wid, labels={"note": "cafe\u0301"}), timeout=h.TIMEOUT)


@pytest.mark.parametrize("wid", [
    "sys:" + "x" * 8, "sys:house", "", "a b", "a/b", "caf\u00e9", "tab\tid", "x" * 129, "a#b",
], ids=["sys:random", "sys:house", "empty", "space", "slash", "non-ascii", "tab", "129 bytes", "hash"])
def test_create_wallet_bad_id_is_invalid_wallet_id(stub, wid):
    r = h.expect_error(stub.CreateWallet, C.INVALID_ARGUMENT, "INVALID_WALLET_ID",
                       request=pb.CreateWalletRequest(wallet_id=wid), timeout=h.TIMEOUT)
    assert r.metadata.get("field") == "wallet_id"


def test_create_wallet_accepts_every_allowed_character_and_128_bytes(stub):
    for wid in ["Az09._:@-" + h.new_wallet_id(), ("L" + h.new_wallet_id()).ljust(128, "z")]:
        assert len(wid.encode()) <= 128
        r = stub.CreateWallet(pb.CreateWalletRequest(wallet_id=wid), timeout=h.TIMEOUT)
        assert r.created and r.wallet.wallet_id == wid


def test_create_wallet_negative_overdraft_is_invalid(stub):
    r = h.expect_error(stub.CreateWallet, C.INVALID_ARGUMENT, "INVALID_OVERDRAFT_LIMIT",
                       request=pb.CreateWalletRequest(wallet_id=h.new_wallet_id(), overdraft_limit=-1),
                       timeout=h.TIMEOUT)
    assert r.metadata.get("field") == "overdraft_limit"


def test_define_asset_is_idempotent(stub):
    code = h.new_asset()
    first = stub.DefineAsset(pb.DefineAssetRequest(asset=code, decimal_places=2), timeout=h.TIMEOUT)
    again = stub.DefineAsset(pb.DefineAssetRequest(asset=code, decimal_places=2), timeout=h.TIMEOUT)
    assert (first.asset, first.decimal_places, first.created) == (code, 2, True)
    assert (again.asset, again.decimal_places, again.created) == (code, 2, False)


def test_define_asset_with_other_decimal_places_is_asset_exists(stub):
    code = h.new_asset()
    stub.DefineAsset(pb.DefineAssetRequest(asset=code, decimal_places=2), timeout=h.TIMEOUT)
    h.expect_error(stub.DefineAsset, C.ALREADY_EXISTS, "ASSET_EXISTS",
                   request=pb.DefineAssetRequest(asset=code, decimal_places=0), timeout=h.TIMEOUT)


@pytest.mark.parametrize("places", [0, 18])
def test_define_asset_decimal_places_bounds_accepted(stub, places):
    code = h.new_asset()
    r = stub.DefineAsset(pb.DefineAssetRequest(asset=code, decimal_places=places), timeout=h.TIMEOUT)
    assert r.created and r.decimal_places == places


def test_define_asset_decimal_places_19_is_invalid(stub):
    r = h.expect_error(stub.DefineAsset, C.INVALID_ARGUMENT, "INVALID_DECIMAL_PLACES",
                       request=pb.DefineAssetRequest(asset=h.new_asset(), decimal_places=19), timeout=h.TIMEOUT)
    assert r.metadata.get("field") == "decimal_places"


@pytest.mark.parametrize("code", ["", "usd", "US-D", "US D", "A" * 17, "\u00c9UR"],
                         ids=["empty", "lower", "dash", "space", "17 chars", "non-ascii"])
def test_define_asset_bad_code_is_invalid_asset(stub, code):
    r = h.expect_error(stub.DefineAsset, C.INVALID_ARGUMENT, "INVALID_ASSET",
                       request=pb.DefineAssetRequest(asset=code, decimal_places=2), timeout=h.TIMEOUT)
    assert r.metadata.get("field") == "asset"


def test_define_asset_accepts_16_chars_with_digits_and_underscore(stub):
    code = ("C_9" + h.new_asset())[:16]
    assert len(code) == 16
    r = stub.DefineAsset(pb.DefineAssetRequest(asset=code, decimal_places=0), timeout=h.TIMEOUT)
    assert r.created and r.asset == code
