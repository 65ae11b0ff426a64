"""The embedded Postgres (`wallet-server postgres`) lets in only a client with its password.

A fresh cluster, and one made the way older builds made it (trust for every
local connection, no password file), running or stopped: a client without the
password is refused over 127.0.0.1 and over the unix socket, as this user and
(when we are root) as an unprivileged one; the URL the command prints gets in
as a superuser that may create databases, also aimed at another database; the
password file is 0600 and the password never appears in the command's log.
Needs the binary, initdb and psql; no session server. Each test starts its own
cluster on a free port and stops it.
"""
import os
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

import conftest

IS_ROOT = os.geteuid() == 0
# Tools that a cluster owner runs: as postgres when we are root, as initdb and pg_ctl insist.
PG_RUNNER = ["runuser", "-u", "postgres", "--"] if IS_ROOT else []
UNPRIVILEGED = "nobody"


@pytest.fixture(autouse=True)
def _server_alive_and_ledger_verified():
    """Overrides conftest's check after every test: these tests start no server."""
    yield


def _pg_bindir():
    res = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else "/usr/lib/postgresql/15/bin"


def _no_password_env():
    """The environment without any way for libpq to find a password by itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = "/dev/null/none"  # cannot exist: /dev/null is not a directory
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


def _psql(args, user=None):
    command = ["psql", "-w", "-X", "-qAt"] + args
    if user is not None:
        command = ["runuser", "-u", user, "--"] + command
    return subprocess.run(command, env=_no_password_env(), capture_output=True, text=True, timeout=60)


class Cluster:
    """A data directory for `wallet-server postgres`, stopped and removed at the end."""

    def __init__(self):
        self.data_dir = tempfile.mkdtemp(prefix="wallet-access-")
        os.chmod(self.data_dir, 0o755)  # the cluster's own user must reach it when we are root
        self.root = os.path.join(self.data_dir, "postgres")
        self.cluster = os.path.join(self.root, "cluster")
        self.socket = os.path.join(self.root, "socket")
        self.password_file = os.path.join(self.root, "superuser.password")
        self.port = conftest._free_port()

    def start(self, binary):
        """Runs `wallet-server postgres`; returns the URL it printed."""
        res = subprocess.run([binary, "postgres", "--data-dir", self.data_dir, "--embedded-port", str(self.port)],
                             env=_no_password_env(), capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, "wallet-server postgres exited %d:\n%s" % (res.returncode, res.stderr)
        url = res.stdout.strip()
        password = _password_in(url)
        assert password and password not in res.stderr, "the log shows the password:\n" + res.stderr
        return url

    def make_like_an_older_build(self, running):
        """initdb with trust and the include line, as builds before the password did; started if `running`."""
        for path in (self.root, self.cluster, self.socket):
            os.makedirs(path, exist_ok=True)
            if IS_ROOT:
                shutil.chown(path, "postgres", "postgres")
        os.chmod(self.cluster, 0o700)
        bindir = _pg_bindir()
        subprocess.run(PG_RUNNER + [bindir + "/initdb", "--pgdata=" + self.cluster, "--username=postgres",
                                    "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        with open(os.path.join(self.cluster, "postgresql.conf"), "a") as conf:
            conf.write("\n# Added by LocalPostgres.\ninclude_if_exists = 'wallet_local.conf'\n")
        subprocess.run(PG_RUNNER + [bindir + "/pg_ctl", "start", "--pgdata=" + self.cluster, "--wait",
                                    "--log=" + os.path.join(self.root, "postgres.log"),
                                    "-o", "-p %d -k %s -c listen_addresses=127.0.0.1" % (self.port, self.socket)],
                       check=True, capture_output=True, timeout=120)
        # Rows made before the upgrade must still be there after it.
        res = _psql(["-h", self.socket, "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                     "-c", "CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)"])
        assert res.returncode == 0, res.stderr
        if not running:
            self.stop()

    def stop(self):
        if os.path.exists(os.path.join(self.cluster, "PG_VERSION")):
            subprocess.run(PG_RUNNER + [_pg_bindir() + "/pg_ctl", "stop", "--pgdata=" + self.cluster,
                                        "-m", "fast", "--wait"], capture_output=True, timeout=120)

    def remove(self):
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _password_in(url):
    netloc = url.split("://", 1)[1].split("@", 1)[0]
    return netloc.split(":", 1)[1] if ":" in netloc else ""


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.remove()


def _check_only_the_password_lets_in(c, url):
    # The password file: the owner's alone, the owner being the user the cluster runs as.
    info = os.stat(c.password_file)
    assert stat.S_IMODE(info.st_mode) == 0o600, oct(info.st_mode)
    expected_owner = pwd.getpwnam("postgres").pw_uid if IS_ROOT else os.geteuid()
    assert info.st_uid == expected_owner
    with open(c.password_file) as f:
        assert f.read().strip() == _password_in(url)

    # Without the password: refused over TCP and over the socket, as us and as an unprivileged user.
    users = [None, UNPRIVILEGED] if IS_ROOT else [None]
    for user in users:
        for host in ("127.0.0.1", c.socket):
            res = _psql(["-h", host, "-p", str(c.port), "-U", "postgres", "-d", "postgres", "-c", "SELECT 1"],
                        user=user)
            assert res.returncode != 0, "a client without the password got in (host %s, as %s)" % (host, user)
            assert "no password supplied" in res.stderr, res.stderr
    if IS_ROOT:
        res = subprocess.run(["runuser", "-u", UNPRIVILEGED, "--", "cat", c.password_file],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode != 0, "an unprivileged user can read the password file"

    # A wrong password is refused, and wallet-server does not repeat it.
    wrong = url.replace(_password_in(url), "wr0ngPassw0rd")
    res = _psql([wrong, "-c", "SELECT 1"])
    assert res.returncode != 0 and "password authentication failed" in res.stderr, res.stderr
    res = subprocess.run([c.binary, "migrate"], env=dict(_no_password_env(), DATABASE_URL=wrong),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "wr0ngPassw0rd" not in res.stdout + res.stderr, res.stdout + res.stderr

    # With the printed URL: a superuser that may create databases (scripts/test and the e2e
    # harness create theirs with it), also when aimed at another database the way they aim it.
    res = _psql([url, "-c", "SELECT current_user, rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "postgres|t|t"
    name = "wallet_access_check"
    assert _psql([url, "-c", 'CREATE DATABASE "%s"' % name]).returncode == 0
    res = _psql([conftest._with_dbname(url, name), "-c", "SELECT current_database()"])
    assert res.returncode == 0 and res.stdout.strip() == name, res.stderr
    assert _psql([url, "-c", 'DROP DATABASE "%s"' % name]).returncode == 0


def test_fresh_cluster_lets_in_only_the_password(server_binary, cluster):
    cluster.binary = server_binary
    url = cluster.start(server_binary)
    _check_only_the_password_lets_in(cluster, url)
    # Starting again (the cluster is running) gives the same URL.
    assert cluster.start(server_binary) == url


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_older_trusting_cluster_is_closed_on_start(server_binary, cluster, running):
    cluster.binary = server_binary
    cluster.make_like_an_older_build(running)
    assert not os.path.exists(cluster.password_file)
    url = cluster.start(server_binary)
    _check_only_the_password_lets_in(cluster, url)
    res = _psql([conftest._with_dbname(url, "postgres"), "-c", "SELECT id FROM kept"])
    assert res.returncode == 0 and res.stdout.strip() == "7", res.stderr
    # A second start finds nothing left to close and gives the same URL.
    assert cluster.start(server_binary) == url
