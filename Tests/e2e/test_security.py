"""Callers, identity and permissions (contract: "Callers, identity and permissions").

Real certificates (scripts/dev-certs, plus a few signed here), Python grpcio
over mutual TLS, against servers started with the flags each scenario needs,
on the session's database. Three servers in all: one with mTLS and
permissions for most scenarios, one (configured through the environment) whose
files the reload scenarios rewrite, one plaintext on a non-loopback address.

Setup (assets, wallets, money) goes through the session's plaintext server,
which has no permissions configured, and so do the "nothing was recorded"
checks (GetTransaction of a refused id is NOT_FOUND).
"""
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import grpc
import pytest

import conftest
import e2e_helpers as h
import e2e_tls as tls
import http2_raw as raw

C = grpc.StatusCode
WALLET = "/wallet.v1.Wallet/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"

# The identities of the certificates below, as the contract derives them.
GAME = "spiffe://casino/game-service"  # URI SAN beside a DNS SAN and a CN: the URI wins
BACKOFFICE = "backoffice"              # DNS SAN, CN backoffice-operator: DNS beats CN
REPORTS = "reports"                    # CN only
ADMIN = "spiffe://casino/admin"
PROBE = "spiffe://casino/probe"
STRANGER = "spiffe://casino/stranger"  # valid certificate, no permissions entry
LIMITED = "spiffe://casino/limited"
RATE_PER_SECOND = 5

PERMISSIONS = {
    GAME: ["Credit", "Debit", "Authorize", "Settle", "Rollback", "GetBalance"],
    # backoffice and reports may each write Credit here (unlike the contract's example), so that
    # the identity of each rule (URI, DNS, CN) can be seen on a transaction it wrote.
    BACKOFFICE: ["Credit", "Reverse", "GetBalance", "GetTransaction", "ListTransactions"],
    REPORTS: ["GetBalance", "GetTransaction", "ListTransactions", "WatchEvents", "Credit"],
    ADMIN: ["*"],
    PROBE: [HEALTH_CHECK, REFLECTION],
    LIMITED: {"methods": ["Credit", "GetBalance"], "rate_per_second": RATE_PER_SECOND},
    # Only its expiry can keep the expired certificate out.
    "spiffe://casino/expired": ["*"],
}

# Which identity each client certificate carries (name of its file in the certs directory).
IDENTITY_OF = {"game-service": GAME, "backoffice": BACKOFFICE, "reports": REPORTS}


class PKI:
    def __init__(self, root):
        self.certs = tls.dev_certs(os.path.join(root, "certs"))
        # Another CA with a certificate of the very same identity as ours.
        self.other = tls.dev_certs(os.path.join(root, "other-ca"))
        self.ca = os.path.join(self.certs, "ca.pem")
        for name, uri in (("admin", ADMIN), ("probe", PROBE), ("stranger", STRANGER), ("limited", LIMITED)):
            tls.make_certificate(self.certs, self.certs, name, uri=uri, cn=name + "-cn")
        now = datetime.datetime.now(datetime.timezone.utc)
        tls.make_certificate(self.certs, self.certs, "expired", uri="spiffe://casino/expired", cn="expired",
                             not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1))
        self.permissions = os.path.join(root, "permissions.json")
        with open(self.permissions, "w") as f:
            json.dump(PERMISSIONS, f, indent=2)

    def path(self, name, ext="pem"):
        return os.path.join(self.certs, "%s.%s" % (name, ext))

    def channel(self, address, name):
        return tls.client_channel(address, self.certs, name)


@pytest.fixture(scope="module")
def pki(workdir):
    return PKI(os.path.join(workdir, "security"))


def _tls_flags(pki, certs_dir=None, permissions=None):
    certs_dir = certs_dir or pki.certs
    return ["--tls-cert", os.path.join(certs_dir, "server.pem"), "--tls-key", os.path.join(certs_dir, "server.key"),
            "--tls-client-ca", os.path.join(certs_dir, "ca.pem"),
            "--permissions", permissions or pki.permissions]


@pytest.fixture(scope="module")
def secure(server_binary, database_url, workdir, pki):
    """mTLS with the permissions above."""
    srv = conftest.Server(server_binary, database_url, os.path.join(workdir, "secure.log"),
                          extra_args=_tls_flags(pki),
                          health_channel=lambda address: pki.channel(address, "admin"))
    srv.start()
    yield srv
    srv.terminate()


@pytest.fixture(scope="module")
def clients(secure, pki):
    """clients[name] -> a WalletStub over mTLS presenting certificate `name`; clients.channel(name) its channel."""
    channels = {}

    class Stubs(dict):
        def __missing__(self, name):
            channels[name] = pki.channel(secure.address, name)
            self[name] = h.wallet_grpc.WalletStub(channels[name])
            return self[name]

        def channel(self, name):
            self[name]  # noqa: B018 (creates it)
            return channels[name]

    stubs = Stubs()
    yield stubs
    for ch in channels.values():
        ch.close()


def _funded_wallet(stub, asset, wallet, amount=10_000):
    w = wallet()
    h.credit(stub, w, asset, amount)
    return w


def assert_not_recorded(stub, tx_id):
    h.expect_error(h.get_tx, C.NOT_FOUND, stub=stub, tx_id=tx_id)


def _refused_transport(channel):
    """A call on `channel` fails before it reaches the server: the TLS handshake was refused."""
    with pytest.raises(grpc.RpcError) as ei:
        h.health_check(channel, timeout=5.0)
    assert ei.value.code() == C.UNAVAILABLE, (ei.value.code(), ei.value.details())


def _reflection_services(channel):
    call = channel.stream_stream(REFLECTION)
    answers = list(call(iter([h.wire_string(7, "")]), timeout=h.TIMEOUT))
    listed = dict(h.wire_fields(answers[0]))
    assert 6 in listed, "no list_services_response: %r" % listed
    return {dict(h.wire_fields(svc))[1].decode() for num, svc in h.wire_fields(listed[6]) if num == 1}


# --- the handshake ---------------------------------------------------------------------------

def test_mtls_refuses_a_client_without_a_certificate(secure, pki):
    with tls.channel(secure.address, pki.ca) as ch:
        _refused_transport(ch)
    # From below: a TLS client without a certificate never gets an HTTP/2 frame from the server.
    with pytest.raises((ConnectionError, OSError)):
        conn = raw.Connection(secure.address, tls=raw.tls_context(pki.ca), timeout=5.0)
        conn.close()
    # The same client with a certificate gets in.
    with pki.channel(secure.address, "game-service") as ch:
        assert h.health_check(ch) == h.health_pb.HealthCheckResponse.SERVING


def test_mtls_refuses_a_certificate_signed_by_another_ca(secure, pki):
    # Same identity (spiffe://casino/game-service), wrong issuer.
    with tls.client_channel(secure.address, pki.other, "game-service", ca_dir=pki.certs) as ch:
        _refused_transport(ch)


def test_mtls_refuses_an_expired_certificate(secure, pki):
    with pki.channel(secure.address, "expired") as ch:
        _refused_transport(ch)


# --- identity: URI, else DNS, else CN ---------------------------------------------------------

@pytest.mark.parametrize("name", ["game-service", "backoffice", "reports"])
def test_identity_in_permission_denied_metadata(name, clients, stub, asset, wallet):
    """game-service: URI over DNS and CN; backoffice: DNS over CN; reports: CN. None may Debit...
    except game-service, which may not Transfer."""
    w = _funded_wallet(stub, asset, wallet)
    tx_id = h.new_tx_id()
    if name == "game-service":
        method, call = "Transfer", lambda: h.transfer(clients[name], w, wallet(), asset, 10, tx_id=tx_id)
    else:
        method, call = "Debit", lambda: h.debit(clients[name], w, asset, 10, tx_id=tx_id)
    r = h.expect_error(call, C.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")
    assert r.metadata.get("caller") == IDENTITY_OF[name], r.metadata
    assert r.metadata.get("method") == WALLET + method, r.metadata
    assert_not_recorded(stub, tx_id)
    assert h.totals(h.get_balance(stub, w, asset)) == (10_000, 0, 10_000)


def _caller_field_present():
    return "caller" in h.pb.Transaction.DESCRIPTOR.fields_by_name


@pytest.mark.parametrize("name", ["game-service", "backoffice", "reports"])
def test_transaction_caller_is_the_certificate_identity(name, clients, stub, asset, wallet):
    """Transaction.caller carries the identity that wrote it, in the answer and in GetTransaction
    (read back through the session's server, which has no TLS: the stored value, not the caller's)."""
    assert _caller_field_present(), \
        "Transaction has no `caller` field in Protos/wallet/v1/wallet.proto (the contract's Responses list it)"
    w = wallet()
    tx_id = h.new_tx_id()
    resp = h.credit(clients[name], w, asset, 250, tx_id=tx_id)
    assert resp.transaction.caller == IDENTITY_OF[name], resp.transaction
    assert h.get_tx(stub, tx_id).caller == IDENTITY_OF[name]
    # A caller without TLS has no identity: its transactions carry none.
    plain = h.credit(stub, w, asset, 1).transaction
    assert plain.caller == "" and h.get_tx(stub, plain.transaction_id).caller == ""


def test_a_certificate_without_identity_is_unauthenticated(clients, stub, asset, wallet):
    w = _funded_wallet(stub, asset, wallet)
    anonymous = clients["anonymous"]
    h.expect_error(h.get_balance, C.UNAUTHENTICATED, "NO_CLIENT_IDENTITY", stub=anonymous, wallet_id=w, asset=asset)
    tx_id = h.new_tx_id()
    h.expect_error(h.credit, C.UNAUTHENTICATED, "NO_CLIENT_IDENTITY", stub=anonymous, wallet_id=w, asset=asset,
                   amount=5, tx_id=tx_id)
    assert_not_recorded(stub, tx_id)
    # Health answers every caller, this one included.
    assert h.health_check(clients.channel("anonymous")) == h.health_pb.HealthCheckResponse.SERVING


# --- permissions ----------------------------------------------------------------------------

def test_an_identity_allowed_some_methods_gets_those_and_nothing_else(clients, stub, asset, wallet):
    game = clients["game-service"]
    w, other = _funded_wallet(stub, asset, wallet), wallet()
    credit = h.credit(game, w, asset, 500).transaction
    bet = h.debit(game, w, asset, 200).transaction
    hold = h.authorize(game, w, asset, 100).transaction
    h.settle(game, hold.transaction_id, capture_amount=60)
    h.rollback(game, bet.transaction_id)
    assert h.totals(h.get_balance(game, w, asset)) == (10_000 + 500 - 60, 0, 10_000 + 500 - 60)

    refused = {
        "Transfer": lambda tx_id: h.transfer(game, w, other, asset, 100, tx_id=tx_id),
        "Reverse": lambda tx_id: h.reverse(game, credit.transaction_id, tx_id=tx_id),
        "GetTransaction": lambda tx_id: h.get_tx(game, credit.transaction_id),
        "ListTransactions": lambda tx_id: game.ListTransactions(h.pb.ListTransactionsRequest(wallet_id=w),
                                                                timeout=h.TIMEOUT),
        "CreateWallet": lambda tx_id: game.CreateWallet(h.pb.CreateWalletRequest(wallet_id=h.new_wallet_id()),
                                                        timeout=h.TIMEOUT),
        "DefineAsset": lambda tx_id: game.DefineAsset(h.pb.DefineAssetRequest(asset=h.new_asset(), decimal_places=2),
                                                      timeout=h.TIMEOUT),
    }
    for method, call in refused.items():
        tx_id = h.new_tx_id()
        r = h.expect_error(lambda: call(tx_id), C.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")
        assert r.metadata.get("caller") == GAME and r.metadata.get("method") == WALLET + method, (method, r.metadata)
        assert_not_recorded(stub, tx_id)
    assert h.totals(h.get_balance(stub, w, asset)) == (10_000 + 500 - 60, 0, 10_000 + 500 - 60)
    assert h.get_tx(stub, credit.transaction_id).status == h.S.POSTED  # the refused Reverse did nothing
    assert h.totals(h.get_balance(stub, other, asset)) == (0, 0, 0)


def test_an_identity_allowed_everything_calls_every_method(clients, stub):
    admin = clients["admin"]
    asset = h.new_asset()
    admin.DefineAsset(h.pb.DefineAssetRequest(asset=asset, decimal_places=2), timeout=h.TIMEOUT)
    a, b = h.new_wallet_id(), h.new_wallet_id()
    for w in (a, b):
        assert admin.CreateWallet(h.pb.CreateWalletRequest(wallet_id=w), timeout=h.TIMEOUT).created
    h.credit(admin, a, asset, 1_000)
    bet = h.debit(admin, a, asset, 100).transaction
    h.transfer(admin, a, b, asset, 300)
    h.reverse(admin, bet.transaction_id)
    assert h.get_tx(admin, bet.transaction_id).status == h.S.REVERSED
    assert {t.kind for t in h.list_all(admin, a)} >= {h.K.CREDIT, h.K.DEBIT, h.K.TRANSFER, h.K.REVERSE}
    assert h.totals(h.get_balance(admin, a, asset)) == (700, 0, 700)
    assert h.totals(h.get_balance(admin, b, asset)) == (300, 0, 300)
    assert h.health_check(clients.channel("admin")) == h.health_pb.HealthCheckResponse.SERVING
    assert "wallet.v1.Wallet" in _reflection_services(clients.channel("admin"))


def test_full_method_paths_grant_health_and_reflection_and_no_wallet_method(clients, asset, wallet):
    probe = clients.channel("probe")
    assert h.health_check(probe) == h.health_pb.HealthCheckResponse.SERVING
    assert h.health_check(probe, service="wallet.v1.Wallet") == h.health_pb.HealthCheckResponse.SERVING
    assert "grpc.health.v1.Health" in _reflection_services(probe)
    r = h.expect_error(h.get_balance, C.PERMISSION_DENIED, "METHOD_NOT_ALLOWED", stub=clients["probe"],
                       wallet_id=wallet(), asset=asset)
    assert (r.metadata.get("caller"), r.metadata.get("method")) == (PROBE, WALLET + "GetBalance"), r.metadata


def test_health_answers_a_caller_without_a_permissions_entry(clients, asset, wallet):
    stranger = clients.channel("stranger")
    assert h.health_check(stranger) == h.health_pb.HealthCheckResponse.SERVING
    assert h.health_check(stranger, service="wallet.v1.Wallet") == h.health_pb.HealthCheckResponse.SERVING
    r = h.expect_error(h.get_balance, C.PERMISSION_DENIED, "METHOD_NOT_ALLOWED", stub=clients["stranger"],
                       wallet_id=wallet(), asset=asset)
    assert (r.metadata.get("caller"), r.metadata.get("method")) == (STRANGER, WALLET + "GetBalance"), r.metadata


def test_reflection_answers_an_authenticated_caller(clients):
    assert {"wallet.v1.Wallet", "grpc.health.v1.Health"} <= _reflection_services(clients.channel("stranger"))


def test_rate_limit_refuses_calls_over_the_rate_and_records_nothing(clients, stub, asset, wallet):
    limited = clients["limited"]
    w = wallet()
    h.get_balance(limited, w, asset)  # connect first: the handshake is not part of the burst
    accepted, refused = [], []
    started = time.monotonic()
    for _ in range(40):
        tx_id = h.new_tx_id()
        try:
            h.credit(limited, w, asset, 7, tx_id=tx_id)
            accepted.append(tx_id)
        except grpc.RpcError as e:
            assert e.code() == C.RESOURCE_EXHAUSTED, (e.code(), e.details())
            reason, _ = h.error_info(e)
            assert reason == "RATE_LIMITED", reason
            refused.append(tx_id)
    elapsed = time.monotonic() - started
    print("rate limit %d/s: %d accepted, %d refused in %.2f s" % (RATE_PER_SECOND, len(accepted), len(refused), elapsed))
    assert refused, "40 calls in %.2fs at %d/s: none refused" % (elapsed, RATE_PER_SECOND)
    # A token bucket may start full (a second's worth): allow that burst plus the rate.
    assert len(accepted) <= RATE_PER_SECOND * (elapsed + 1) + 2, (len(accepted), elapsed)
    for tx_id in refused:
        assert_not_recorded(stub, tx_id)
    assert h.totals(h.get_balance(stub, w, asset)) == (7 * len(accepted), 0, 7 * len(accepted))
    # The limit is per identity: another caller is not slowed by it.
    for _ in range(3 * RATE_PER_SECOND):
        h.get_balance(clients["game-service"], w, asset)
    # And it recovers.
    time.sleep(1.5)
    h.credit(limited, w, asset, 7)


# --- plaintext only on loopback ------------------------------------------------------------------

def test_plaintext_on_a_non_loopback_address_needs_allow_insecure(server_binary, database_url, workdir):
    proc = subprocess.Popen([server_binary, "--listen", "0.0.0.0:0", "--database-url", database_url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail("the server kept running in plaintext on 0.0.0.0 without --allow-insecure:\n" + out)
    assert proc.returncode == 2, "exit %d:\n%s" % (proc.returncode, out)
    assert "--allow-insecure" in out, out

    srv = conftest.Server(server_binary, database_url, os.path.join(workdir, "insecure.log"))
    srv.extra_args = ["--listen", "0.0.0.0:%d" % srv.port, "--allow-insecure"]  # the last --listen wins
    srv.start()
    try:
        with open(srv.log_path, errors="replace") as f:
            log = f.read()
        assert re.search(r"listening on 0\.0\.0\.0:%d" % srv.port, log), log
        assert re.search(r"insecure|plaintext", log, re.IGNORECASE), "no warning at start:\n" + log
    finally:
        assert srv.terminate() == 0


# --- SIGHUP ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reloading(server_binary, database_url, workdir, pki):
    """A server whose certificate, key and permissions are copies the tests rewrite; configured
    through the environment variables rather than flags."""
    d = os.path.join(workdir, "reload")
    os.makedirs(d, exist_ok=True)
    for name in ("server.pem", "server.key", "ca.pem"):
        shutil.copy(os.path.join(pki.certs, name), os.path.join(d, name))
    permissions = os.path.join(d, "permissions.json")
    shutil.copy(pki.permissions, permissions)
    srv = conftest.Server(server_binary, database_url, os.path.join(workdir, "reload.log"),
                          env={"WALLET_TLS_CERT": os.path.join(d, "server.pem"),
                               "WALLET_TLS_KEY": os.path.join(d, "server.key"),
                               "WALLET_TLS_CLIENT_CA": os.path.join(d, "ca.pem"),
                               "WALLET_PERMISSIONS": permissions},
                          health_channel=lambda address: pki.channel(address, "admin"))
    srv.start()
    srv.dir, srv.permissions = d, permissions
    yield srv
    srv.terminate()


def _sighup(srv, expect, until=None):
    """SIGHUP, wait for one more log line containing `expect` ('reloaded' or 'reload failed'), then
    (one SIGHUP reloads several files, each logged on its own) until `until()` is true."""
    before = srv.log_count(expect)
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_log(expect, before + 1)
    if until is not None:
        h.wait_until(until, 10, interval=0.05, what="the reload to take effect")
    assert srv.alive(), srv.log()


def _write_permissions(srv, permissions):
    tls.write_atomically(srv.permissions, json.dumps(permissions).encode())


def _may_get_balance(stub, wallet_id, asset):
    try:
        h.get_balance(stub, wallet_id, asset)
        return True
    except grpc.RpcError as e:
        assert e.code() == C.PERMISSION_DENIED, (e.code(), e.details())
        return False


def test_sighup_reloads_permissions(reloading, pki, asset, wallet):
    w = wallet()
    with pki.channel(reloading.address, "stranger") as ch:
        stranger = h.wallet_grpc.WalletStub(ch)
        _write_permissions(reloading, PERMISSIONS)
        _sighup(reloading, "reloaded", until=lambda: not _may_get_balance(stranger, w, asset))
        h.expect_error(h.get_balance, C.PERMISSION_DENIED, "METHOD_NOT_ALLOWED", stub=stranger, wallet_id=w,
                       asset=asset)
        _write_permissions(reloading, dict(PERMISSIONS, **{STRANGER: ["GetBalance"]}))
        # Allowed on the connection opened before the reload.
        _sighup(reloading, "reloaded", until=lambda: _may_get_balance(stranger, w, asset))
        assert h.get_balance(stranger, w, asset).wallet_id == w


def test_a_failed_permissions_reload_keeps_the_previous_permissions(reloading, pki, stub, asset, wallet):
    w = _funded_wallet(stub, asset, wallet)
    with pki.channel(reloading.address, "stranger") as ch:
        stranger = h.wallet_grpc.WalletStub(ch)
        _write_permissions(reloading, dict(PERMISSIONS, **{STRANGER: ["GetBalance"]}))
        _sighup(reloading, "reloaded", until=lambda: _may_get_balance(stranger, w, asset))
        tls.write_atomically(reloading.permissions, b'{"spiffe://casino/stranger": ["GetBalance"')  # cut short
        _sighup(reloading, "reload failed")
        assert h.get_balance(stranger, w, asset).wallet_id == w
    with pki.channel(reloading.address, "game-service") as ch:
        game = h.wallet_grpc.WalletStub(ch)
        tx_id = h.new_tx_id()
        h.expect_error(h.transfer, C.PERMISSION_DENIED, "METHOD_NOT_ALLOWED", stub=game,
                       src=w, dst=wallet(), asset=asset, amount=1, tx_id=tx_id)
        assert_not_recorded(stub, tx_id)
        h.debit(game, w, asset, 1)
    with pki.channel(reloading.address, "stranger") as ch:
        stranger = h.wallet_grpc.WalletStub(ch)
        _write_permissions(reloading, PERMISSIONS)
        _sighup(reloading, "reloaded", until=lambda: not _may_get_balance(stranger, w, asset))


def test_sighup_reloads_the_server_certificate_without_dropping_open_connections(reloading, pki, stub, asset,
                                                                                  wallet):
    ca, cert, key = pki.ca, pki.path("backoffice"), pki.path("backoffice", "key")
    old_serial = tls.server_serial(reloading.address, ca, cert, key)
    assert old_serial == tls.serial_of(os.path.join(reloading.dir, "server.pem"))
    w = _funded_wallet(stub, asset, wallet)

    # A grpcio client calling all along on its connection, and a raw HTTP/2 connection opened before.
    errors, calls, stop = [], [0], threading.Event()
    ch = pki.channel(reloading.address, "backoffice")
    backoffice = h.wallet_grpc.WalletStub(ch)
    h.get_balance(backoffice, w, asset)

    def keep_calling():
        while not stop.is_set():
            try:
                h.get_balance(backoffice, w, asset)
                calls[0] += 1
            except grpc.RpcError as e:
                errors.append((e.code(), e.details()))
            time.sleep(0.02)

    conn = raw.Connection(reloading.address, tls=raw.tls_context(ca, cert, key))
    assert raw.unary_call(conn, HEALTH_CHECK)[0] == 0
    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        time.sleep(0.3)
        new_pem, new_key, new_serial = tls.make_certificate(pki.certs, reloading.dir, "server-next", server=True,
                                                            cn="localhost")
        os.replace(new_key, os.path.join(reloading.dir, "server.key"))
        os.replace(new_pem, os.path.join(reloading.dir, "server.pem"))
        _sighup(reloading, "reloaded", until=lambda: tls.server_serial(reloading.address, ca, cert, key) == new_serial)
        assert new_serial != old_serial
        calls_at_reload = calls[0]
        time.sleep(0.5)
        assert raw.unary_call(conn, HEALTH_CHECK)[0] == 0, "the connection opened before the reload"
    finally:
        stop.set()
        caller.join(30)
        conn.close()
        ch.close()
    assert errors == [], errors
    assert calls[0] > calls_at_reload > 0, calls

    # A certificate file that does not load keeps the one in use.
    tls.write_atomically(os.path.join(reloading.dir, "server.pem"), b"-----BEGIN CERTIFICATE-----\nnot one\n")
    _sighup(reloading, "reload failed")
    assert tls.server_serial(reloading.address, ca, cert, key) == new_serial
    with pki.channel(reloading.address, "backoffice") as fresh:
        assert h.get_balance(h.wallet_grpc.WalletStub(fresh), w, asset).wallet_id == w
