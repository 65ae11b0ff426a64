"""Logs (contract: "Operations"): JSON lines on standard error with time,
level, message and, where they apply, transaction_id, method, caller, code,
trace_id (from the W3C traceparent header) and request_id; never a password.

Servers of its own (their logs are read whole): one over mutual TLS at the
default level (info: a line per failed call, repeats of a kind summarized per
10 s), one plaintext at debug (a line per call), and starts that fail on a
DATABASE_URL holding a password.
"""
import json
import os
import re
import subprocess
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest

import conftest
import e2e_helpers as h
import e2e_tls as tls

C = grpc.StatusCode
GAME = "spiffe://casino/game-service"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = "00-%s-00f067aa0ba902b7-01" % TRACE_ID
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
LEVELS = {"trace", "debug", "info", "notice", "warning", "error", "critical"}
SUMMARY_INTERVAL_S = 10


def json_lines(path):
    """Every line of a log as a JSON object; fails on a line that is not one."""
    with open(path, "r", errors="replace") as f:
        text = f.read()
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError("line %d of %s is not JSON: %r" % (number, path, line)) from None
        assert isinstance(obj, dict), "line %d is JSON but not an object: %r" % (number, line)
        lines.append(obj)
    return lines


def check_line_shape(obj):
    assert TIME.match(obj.get("time", "")), obj
    assert obj.get("level") in LEVELS, obj
    assert isinstance(obj.get("message"), str) and obj["message"], obj


def wait_for_line(path, pred, what, timeout=15.0):
    return h.wait_until(lambda: next((o for o in json_lines(path) if pred(o)), None), timeout, interval=0.1,
                        what=what)


def password_of(url):
    password = urlsplit(url).password
    assert password, "the test database URL carries no password to look for: %s" % url.split("@")[-1]
    return password


@pytest.fixture(scope="module")
def certs(workdir):
    return tls.dev_certs(os.path.join(workdir, "logs-certs"))


@pytest.fixture(scope="module")
def logged(server_binary, database_url, workdir, certs):
    """Mutual TLS, no permissions file (every certificate may call everything), default log level."""
    srv = conftest.Server(
        server_binary, database_url, os.path.join(workdir, "logs.log"),
        extra_args=["--tls-cert", os.path.join(certs, "server.pem"), "--tls-key", os.path.join(certs, "server.key"),
                    "--tls-client-ca", os.path.join(certs, "ca.pem")],
        health_channel=lambda address: tls.client_channel(address, certs, "game-service"))
    srv.start()
    yield srv
    srv.terminate()


@pytest.fixture(scope="module")
def game(logged, certs):
    ch = tls.client_channel(logged.address, certs, "game-service")
    yield h.wallet_grpc.WalletStub(ch)
    ch.close()


@pytest.fixture(scope="module")
def game_asset(game):
    code = h.new_asset()
    game.DefineAsset(h.pb.DefineAssetRequest(asset=code, decimal_places=2), timeout=h.TIMEOUT)
    return code


def test_a_failed_call_is_one_line_with_trace_caller_request_and_transaction(logged, game, game_asset):
    tx = h.new_tx_id()
    request_id = "req-" + uuid.uuid4().hex
    with pytest.raises(grpc.RpcError) as err:
        game.Debit(h.pb.DebitRequest(transaction_id=tx, wallet_id=h.new_wallet_id("nobody"), asset=game_asset,
                                     amount=5),
                   metadata=[("traceparent", TRACEPARENT), ("x-request-id", request_id)], timeout=h.TIMEOUT)
    assert err.value.code() == C.NOT_FOUND
    line = wait_for_line(logged.log_path, lambda o: o.get("transaction_id") == tx, "the failed Debit's line")
    assert line["level"] == "info"
    assert line["message"] == "call failed"
    assert line["method"] == "/wallet.v1.Wallet/Debit"
    assert line["code"] == "NOT_FOUND"
    assert line["reason"] == "WALLET_NOT_FOUND"
    assert line["caller"] == GAME
    assert line["trace_id"] == TRACE_ID
    assert line["request_id"] == request_id
    check_line_shape(line)
    assert sum(1 for o in json_lines(logged.log_path) if o.get("transaction_id") == tx) == 1


def test_an_invalid_traceparent_gives_no_trace_id(logged, game, game_asset):
    tx = h.new_tx_id()
    with pytest.raises(grpc.RpcError):
        game.Credit(h.pb.CreditRequest(transaction_id=tx, wallet_id=h.new_wallet_id("nobody"), asset=game_asset,
                                       amount=5),
                    metadata=[("traceparent", "00-%s-00f067aa0ba902b7" % TRACE_ID)], timeout=h.TIMEOUT)
    line = wait_for_line(logged.log_path, lambda o: o.get("transaction_id") == tx, "the failed Credit's line")
    assert line["code"] == "NOT_FOUND" and line["caller"] == GAME
    assert "trace_id" not in line


def test_a_successful_call_writes_no_line_at_info(logged, game, game_asset):
    wallet = h.new_wallet_id("quiet")
    game.CreateWallet(h.pb.CreateWalletRequest(wallet_id=wallet), timeout=h.TIMEOUT)
    tx = h.new_tx_id()
    h.credit(game, wallet, game_asset, 100, tx_id=tx)
    # A failure after it, to know the log has caught up.
    marker = h.new_tx_id()
    with pytest.raises(grpc.RpcError):
        game.Reverse(h.pb.ReverseRequest(transaction_id=marker, original_transaction_id=h.new_tx_id(), reason="x"),
                     timeout=h.TIMEOUT)
    wait_for_line(logged.log_path, lambda o: o.get("transaction_id") == marker, "the marker's line")
    assert not [o for o in json_lines(logged.log_path) if o.get("transaction_id") == tx]
    assert not [o for o in json_lines(logged.log_path) if o.get("code") == "OK"]


def test_repeated_failures_of_a_kind_log_once_then_a_summary(logged, game, game_asset):
    """60 Authorize calls on missing wallets in a burst: one line, and after the 10 s
    interval one summary line counting the other 59."""
    txs = [h.new_tx_id() for _ in range(60)]
    started = time.monotonic()
    for tx in txs:
        with pytest.raises(grpc.RpcError):
            game.Authorize(h.pb.AuthorizeRequest(transaction_id=tx, wallet_id=h.new_wallet_id("gone"),
                                                 asset=game_asset, amount=1), timeout=h.TIMEOUT)
    burst = time.monotonic() - started
    assert burst < SUMMARY_INTERVAL_S / 2, "the burst took %.1f s: too slow to fall in one interval" % burst

    def is_summary(o):
        return o.get("method") == "/wallet.v1.Wallet/Authorize" and "count" in o

    summary = wait_for_line(logged.log_path, is_summary, "the summary of the Authorize failures",
                            timeout=SUMMARY_INTERVAL_S + 5)
    assert summary["code"] == "NOT_FOUND" and summary["reason"] == "WALLET_NOT_FOUND"
    assert summary["count"] == len(txs) - 1
    assert summary["interval_s"] == SUMMARY_INTERVAL_S
    assert summary["level"] == "info"
    logged_txs = {o.get("transaction_id") for o in json_lines(logged.log_path)
                  if o.get("method") == "/wallet.v1.Wallet/Authorize" and o["message"] == "call failed"}
    assert logged_txs == {txs[0]}


def test_every_line_is_json_with_time_level_and_message(logged, certs, workdir):
    # A client from another CA: gRPC core refuses the handshake and logs it; that line goes
    # through the same JSON handler (logger grpc-core), not to stderr as plain text.
    other = tls.dev_certs(os.path.join(workdir, "logs-other-ca"))
    with tls.client_channel(logged.address, other, "game-service", ca_dir=certs) as ch:
        with pytest.raises(grpc.RpcError) as err:
            h.health_check(ch, timeout=5.0)
        assert err.value.code() == C.UNAVAILABLE
    wait_for_line(logged.log_path, lambda o: o.get("logger") == "grpc-core", "gRPC core's line on the refusal")
    lines = json_lines(logged.log_path)
    assert len(lines) >= 5
    for obj in lines:
        check_line_shape(obj)
    messages = [o["message"] for o in lines]
    assert any(m.startswith("listening on ") for m in messages)
    assert any(m.startswith("database ready at ") for m in messages)
    assert {o["logger"] for o in lines} >= {"wallet-server", "wallet-calls"}


def test_the_database_password_is_in_no_line(logged, database_url):
    password = password_of(database_url)
    with open(logged.log_path, errors="replace") as f:
        text = f.read()
    assert password not in text
    assert database_url not in text


def test_at_debug_every_call_has_a_line(server_binary, database_url, workdir):
    srv = conftest.Server(server_binary, database_url, os.path.join(workdir, "logs-debug.log"),
                          env={"WALLET_LOG_LEVEL": "debug"})
    srv.start()
    try:
        ch = grpc.insecure_channel(srv.address)
        h.health_check(ch)
        ch.close()
        line = wait_for_line(srv.log_path, lambda o: o.get("method") == "/grpc.health.v1.Health/Check",
                             "a debug line for Health/Check")
        assert line["level"] == "debug" and line["code"] == "OK" and line["message"] == "call"
        for obj in json_lines(srv.log_path):
            check_line_shape(obj)
    finally:
        assert srv.terminate() == 0


def _failed_start(server_binary, url, workdir, name):
    """Runs serve against `url`, which cannot work; returns its combined output."""
    res = subprocess.run([server_binary, "serve", "--listen", "127.0.0.1:%d" % conftest._free_port(),
                          "--database-url", url, "--data-dir", os.path.join(workdir, name)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0, "the server started on %s" % name
    return res.stdout + res.stderr


@pytest.mark.parametrize("case", ["refused", "wrong-password"])
def test_a_failing_database_url_never_logs_its_password(case, server_binary, database_url, workdir):
    secret = "Pw-" + uuid.uuid4().hex
    if case == "refused":
        # Nothing listens on port 1.
        url = "postgresql://wallet:%s@127.0.0.1:1/wallet?connect_timeout=5" % secret
    else:
        parts = urlsplit(database_url)
        netloc = "%s:%s@%s" % (parts.username, secret, parts.netloc.rsplit("@", 1)[1])
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    output = _failed_start(server_binary, url, workdir, "logs-" + case)
    assert secret not in output
    assert url not in output
    lines = [json.loads(line) for line in output.splitlines()]
    for obj in lines:
        check_line_shape(obj)
    # It says why it stopped, and where it tried (redacted), at the highest level.
    last = lines[-1]
    assert last["level"] == "critical" and "cannot connect to the database" in last["message"], last
    assert ("port=1" if case == "refused" else "user=%s" % urlsplit(database_url).username) in last["message"]


def test_a_usage_error_is_a_json_line_too(server_binary):
    res = subprocess.run([server_binary, "serve", "--log-level", "loud"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    lines = [json.loads(line) for line in res.stderr.splitlines()]
    assert len(lines) == 1, res.stderr
    check_line_shape(lines[0])
    assert lines[0]["level"] == "error" and "--log-level must be one of" in lines[0]["message"]
    assert "usage: wallet-server" in res.stdout
