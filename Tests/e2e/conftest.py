"""End-to-end harness for wallet-server.

At import time the Python stubs are generated from Protos/ into a temp dir
(grpc_tools.protoc), so tests always speak the committed API. A session
fixture starts the server on a free port against a fresh database and waits
for grpc.health.v1.Health/Check to answer SERVING. After every test the
server must still be alive and `wallet-server verify` must exit 0.
"""
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTOS = os.path.join(REPO, "Protos")
PROTO_FILES = [
    "wallet/v1/wallet.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
    "grpc/health/v1/health.proto",
]


def _generate_stubs():
    out = tempfile.mkdtemp(prefix="wallet-e2e-stubs-")
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", PROTOS,
           "--python_out=" + out, "--grpc_python_out=" + out] + PROTO_FILES
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError("protoc failed:\n%s\n%s" % (res.stdout, res.stderr))
    sys.path.insert(0, out)
    # grpc/health/v1 would shadow-collide with the installed `grpc` package:
    # load the health messages by file path under a private name instead.
    path = os.path.join(out, "grpc", "health", "v1", "health_pb2.py")
    spec = importlib.util.spec_from_file_location("wallet_e2e_health_pb2", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules["wallet_e2e_health_pb2"] = mod
    return out


STUB_DIR = _generate_stubs()

import e2e_helpers as h  # noqa: E402  (needs the stubs on sys.path)


def _server_binary():
    return os.environ.get("WALLET_SERVER",
                          os.path.join(REPO, ".build", "debug", "wallet-server"))


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _with_dbname(url, dbname):
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _psql(url, sql):
    res = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError("psql failed (%s): %s" % (sql, res.stderr))
    return res.stdout


def _tail(path, n=200):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return "<no log: %s>" % e


class Server:
    """A running wallet-server process."""

    def __init__(self, binary, db_url, log_path, extra_args=(), command_prefix=(), health_channel=None,
                 env=None):
        """command_prefix: run the server under another command (e.g. prlimit ... --);
        health_channel: address -> grpc channel used to wait for SERVING (a TLS server needs one);
        env: variables added to the server's environment."""
        self.binary = binary
        self.db_url = db_url
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.command_prefix = list(command_prefix)
        self.health_channel = health_channel or grpc.insecure_channel
        self.env = dict(os.environ, **(env or {}))
        self.port = _free_port()
        self.address = "127.0.0.1:%d" % self.port
        self.proc = None

    def start(self, timeout=60.0):
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command_prefix
            + [self.binary, "--listen", self.address, "--database-url", self.db_url] + self.extra_args,
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env)
        logf.close()
        deadline = time.monotonic() + timeout
        last = None
        with self.health_channel(self.address) as ch:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("wallet-server exited with %s before serving; log:\n%s"
                                       % (self.proc.returncode, _tail(self.log_path)))
                try:
                    if h.health_check(ch, timeout=2.0) == h.health_pb.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError as e:
                    last = e
                time.sleep(0.2)
        self.kill()
        raise RuntimeError("wallet-server not SERVING within %.0fs (last: %r); log:\n%s"
                           % (timeout, last, _tail(self.log_path)))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout=60.0):
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self):
        return _tail(self.log_path)

    def log_count(self, text):
        """How many lines of the server's log contain `text`."""
        with open(self.log_path, "r", errors="replace") as f:
            return sum(1 for line in f if text in line)

    def wait_log(self, text, count=1, timeout=10.0):
        """Wait until at least `count` log lines contain `text`."""
        try:
            h.wait_until(lambda: self.log_count(text) >= count, timeout, interval=0.05,
                         what="%d log line(s) with %r" % (count, text))
        except AssertionError as e:
            raise AssertionError("%s; log:\n%s" % (e, self.log())) from None


@pytest.fixture(scope="session")
def server_binary():
    binary = _server_binary()
    if not os.access(binary, os.X_OK):
        pytest.fail("wallet-server binary not found or not executable: %s "
                    "(set WALLET_SERVER or run `swift build`)" % binary)
    return binary


@pytest.fixture(scope="session")
def database_url():
    """A fresh database for this test session; dropped at the end unless E2E_KEEP_DB=1."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        pytest.fail("DATABASE_URL is not set (a libpq URL of a Postgres the tests may CREATE DATABASE on)")
    name = "wallet_e2e_" + uuid.uuid4().hex[:16]
    _psql(base, 'CREATE DATABASE "%s"' % name)
    yield _with_dbname(base, name)
    if os.environ.get("E2E_KEEP_DB") != "1":
        try:
            _psql(base, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        except Exception as e:  # pragma: no cover - cleanup only
            print("could not drop %s: %s" % (name, e))


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="wallet-e2e-")
    yield d
    if os.environ.get("E2E_KEEP_LOGS") != "1":
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def server(server_binary, database_url, workdir):
    srv = Server(server_binary, database_url, os.path.join(workdir, "server.log"))
    try:
        srv.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield srv
    if srv.alive():
        code = srv.terminate()
        if code != 0:
            print("wallet-server exited %s on SIGTERM; log:\n%s" % (code, srv.log()))


@pytest.fixture(scope="session")
def channel(server):
    ch = grpc.insecure_channel(server.address, options=[
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ])
    yield ch
    ch.close()


@pytest.fixture(scope="session")
def stub(channel):
    return h.wallet_grpc.WalletStub(channel)


@pytest.fixture(scope="session")
def verifier(server, server_binary, database_url):
    def verify():
        h.run_verify(server_binary, database_url)
    return verify


@pytest.fixture(autouse=True)
def _server_alive_and_ledger_verified(request, server, verifier):
    """After every scenario: the server did not crash and `wallet-server verify` passes."""
    yield
    assert server.alive(), "wallet-server died during %s; log:\n%s" % (request.node.name, server.log())
    verifier()


# --- small building blocks shared by the tests -------------------------------------------

@pytest.fixture
def asset(stub):
    """A fresh asset (2 decimal places) so that tests never share house balances."""
    code = h.new_asset()
    stub.DefineAsset(h.pb.DefineAssetRequest(asset=code, decimal_places=2), timeout=h.TIMEOUT)
    return code


@pytest.fixture
def wallet(stub):
    """Factory: wallet(overdraft_limit=0, **labels) -> a new wallet id."""
    def make(overdraft_limit=0, prefix="w"):
        wid = h.new_wallet_id(prefix)
        resp = stub.CreateWallet(h.pb.CreateWalletRequest(wallet_id=wid, overdraft_limit=overdraft_limit),
                                 timeout=h.TIMEOUT)
        assert resp.created
        return wid
    return make


def pytest_collection_modifyitems(session, config, items):
    """Run the soak tests last: they grow the ledger, and verify after every later test would pay for it."""
    items.sort(key=lambda item: item.nodeid.split("::")[0].endswith("test_concurrency.py"))
