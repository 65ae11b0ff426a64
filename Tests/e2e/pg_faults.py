"""Throwaway Postgres clusters to break, load to run across the break, and health to watch.

A fault test never touches the session's database: it makes a cluster of its own with
`wallet-server postgres` (password, 127.0.0.1 and a unix socket only), and controls it with
pg_ctl and signals, as the cluster's OS user (`postgres` when we are root: initdb and pg_ctl
refuse root). Load comes from wallet-bench (`--retry-transient`: every call is resent until it
gets a final answer, as the game service does; `--database-url`: at the end it audits every
acknowledged answer against the ledger and runs verify).
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import grpc

import conftest
import e2e_helpers as h

IS_ROOT = os.geteuid() == 0
PG_RUNNER = ["runuser", "-u", "postgres", "--"] if IS_ROOT else []
# Short by default (scripts/test); scripts/faults sets long ones.
LOAD_SECONDS = float(os.environ.get("E2E_FAULT_LOAD_SECONDS", "4"))
OUTAGE_SECONDS = float(os.environ.get("E2E_FAULT_OUTAGE_SECONDS", "5"))
BENCH_GRACE_SECONDS = 180  # the bench resends for 60 s past its end, then audits


def pg_bindir():
    res = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else "/usr/lib/postgresql/15/bin"


def bench_binary():
    return os.environ.get("WALLET_BENCH", os.path.join(conftest.REPO, ".build", "debug", "wallet-bench"))


def make_tempdir(prefix):
    """A directory the cluster's OS user can reach when we are root."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    return path


def children_of(pid):
    """Every descendant of `pid`, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Cluster:
    """A cluster made by `wallet-server postgres` in a temp dir; stopped and removed by destroy()."""

    def __init__(self, server_binary):
        self.server_binary = server_binary
        self.data_dir = make_tempdir("wallet-fault-pg-")
        self.cluster = os.path.join(self.data_dir, "postgres", "cluster")
        self.log_file = os.path.join(self.data_dir, "postgres", "postgres.log")
        self.port = conftest._free_port()
        self.url = None

    def create(self):
        res = subprocess.run([self.server_binary, "postgres", "--data-dir", self.data_dir,
                              "--embedded-port", str(self.port)], capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, "wallet-server postgres failed:\n" + res.stderr
        self.url = res.stdout.strip()
        return self.url

    def pg_ctl(self, *args, timeout=120):
        res = subprocess.run(PG_RUNNER + [os.path.join(pg_bindir(), "pg_ctl"), "-D", self.cluster] + list(args),
                             capture_output=True, text=True, timeout=timeout)
        assert res.returncode == 0, "pg_ctl %s failed:\n%s%s" % (args, res.stdout, res.stderr)

    def stop(self, mode="fast"):
        self.pg_ctl("stop", "-m", mode, "-w")

    def start(self):
        self.pg_ctl("start", "-w", "-t", "60", "-l", self.log_file)

    def restart(self, mode="immediate"):
        self.pg_ctl("restart", "-m", mode, "-w", "-t", "60", "-l", self.log_file)

    def postmaster_pid(self):
        with open(os.path.join(self.cluster, "postmaster.pid")) as f:
            return int(f.readline())

    def freeze(self):
        """SIGSTOP the postmaster and every backend: the server stops answering, sessions stay open."""
        self.frozen = [self.postmaster_pid()]
        self.frozen += children_of(self.frozen[0])
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self):
        for pid in getattr(self, "frozen", []):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen = []

    def psql(self, *commands):
        """Each command in its own transaction, in one session (ALTER SYSTEM refuses a transaction block)."""
        args = ["psql", self.url, "-X", "-v", "ON_ERROR_STOP=1", "-qAt"]
        for command in commands:
            args += ["-c", command]
        res = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, "psql %s failed: %s" % (commands, res.stderr)
        return res.stdout

    def destroy(self):
        self.thaw()
        if os.path.exists(os.path.join(self.cluster, "postmaster.pid")):
            subprocess.run(PG_RUNNER + [os.path.join(pg_bindir(), "pg_ctl"), "-D", self.cluster, "stop", "-m",
                                        "immediate"], capture_output=True, timeout=60)
        if os.environ.get("E2E_KEEP_LOGS") != "1":
            shutil.rmtree(self.data_dir, ignore_errors=True)


class Bench:
    """wallet-bench in the background: mixed load with --retry-transient, audited at the end."""

    def __init__(self, address, db_url, workdir, name, seconds=None, wallets=200, concurrency=16):
        self.stdout_path = os.path.join(workdir, name + ".bench.out")
        self.stderr_path = os.path.join(workdir, name + ".bench.err")
        self.seconds = seconds if seconds is not None else LOAD_SECONDS + OUTAGE_SECONDS + 3
        cmd = [bench_binary(), "--target", address, "--scenario", "mixed", "--wallets", str(wallets),
               "--concurrency", str(concurrency), "--duration", "%.1f" % self.seconds, "--retry-transient",
               "--timeout-ms", "5000", "--database-url", db_url, "--json"]
        self.proc = subprocess.Popen(cmd, stdout=open(self.stdout_path, "wb"), stderr=open(self.stderr_path, "wb"),
                                     stdin=subprocess.DEVNULL)

    def _err(self):
        return conftest._tail(self.stderr_path, 80)

    def wait_loading(self, timeout=120):
        """Until the setup is done and the timed phase runs."""
        h.wait_until(lambda: self.proc.poll() is not None or "setup: done" in open(self.stderr_path).read(),
                     timeout, interval=0.1, what="wallet-bench setup")
        assert self.proc.poll() is None, "wallet-bench exited during setup:\n" + self._err()

    def finish(self):
        """Waits for the bench; asserts every answer was final and audited clean; returns its report."""
        try:
            self.proc.wait(timeout=self.seconds + BENCH_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("wallet-bench did not finish:\n" + self._err())
        out = open(self.stdout_path).read()
        lines = out.strip().splitlines()
        assert lines, "wallet-bench printed nothing:\n" + self._err()
        report = json.loads(lines[-1])
        summary = "%s\n%s" % (out[-4000:], self._err())
        assert report["calls"] > 0, summary
        # Every call got a final answer (transient ones resent until then), none unexpected
        # (an INTERNAL would be), none in doubt, and the audit found every acknowledged
        # transaction in the ledger, once, with its effect, and verify clean.
        assert report["errors"] == 0 and report["unexpected"] == 0, summary
        assert report["in_doubt"] == 0, summary
        assert report["verify_ok"] is True and report["ok"] is True, summary
        assert self.proc.returncode == 0, summary
        return report


class HealthWatch:
    """A grpc.health.v1.Health/Watch stream in a thread, recording every status it is sent."""

    def __init__(self, address):
        self.channel = grpc.insecure_channel(address)
        self.seen = []  # (monotonic time, status)
        self.lock = threading.Lock()
        watch = self.channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=h.health_pb.HealthCheckRequest.SerializeToString,
            response_deserializer=h.health_pb.HealthCheckResponse.FromString)
        self.call = watch(h.health_pb.HealthCheckRequest(service=""))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for response in self.call:
                with self.lock:
                    self.seen.append((time.monotonic(), response.status))
        except grpc.RpcError:
            pass

    def statuses(self):
        with self.lock:
            return [status for _, status in self.seen]

    def wait_for(self, status, timeout, after=0):
        """Until `status` is seen at index >= after; returns its index."""
        found = []

        def seen():
            statuses = self.statuses()
            for index in range(after, len(statuses)):
                if statuses[index] == status:
                    found.append(index)
                    return True
            return False
        h.wait_until(seen, timeout, interval=0.05,
                     what="health %s on Watch (seen %s)" % (status, self.statuses()))
        return found[0]

    def close(self):
        self.call.cancel()
        self.channel.close()
        self.thread.join(timeout=5)


SERVING = h.health_pb.HealthCheckResponse.SERVING
NOT_SERVING = h.health_pb.HealthCheckResponse.NOT_SERVING


class AutoFailover:
    """A pg_auto_failover formation on loopback, in a temp dir, run as the cluster's OS user: a
    monitor and two Postgres nodes (node1 primary, node2 its synchronous secondary). Each
    pg_autoctl runs in a session of its own, so a node (its keeper and its Postgres) can be
    killed whole. Health checks are tightened (1 s, unhealthy after 2 s) and the demote timeout
    shortened (3 s): on loopback a dead primary is dead; a real deployment keeps the default
    (30 s), which guards against two primaries when the old one is only unreachable."""

    MONITOR_SETTINGS = {
        "pgautofailover.health_check_period": 1000,
        "pgautofailover.health_check_timeout": 1000,
        "pgautofailover.health_check_max_retries": 1,
        "pgautofailover.health_check_retry_delay": 500,
        "pgautofailover.node_considered_unhealthy_timeout": 2000,
        "pgautofailover.primary_demote_timeout": 3000,
    }

    def __init__(self):
        self.dir = make_tempdir("wallet-failover-")
        if IS_ROOT:
            shutil.chown(self.dir, "postgres")
        self.monitor_port = conftest._free_port()
        self.node_ports = {"node1": conftest._free_port(), "node2": conftest._free_port()}
        self.env = dict(os.environ, PATH="%s:%s" % (pg_bindir(), os.environ["PATH"]),
                        XDG_CONFIG_HOME=os.path.join(self.dir, "config"),
                        XDG_DATA_HOME=os.path.join(self.dir, "data"),
                        XDG_RUNTIME_DIR=os.path.join(self.dir, "run"))
        self.procs = {}
        self.monitor_uri = "postgres://autoctl_node@127.0.0.1:%d/pg_auto_failover?sslmode=disable" % self.monitor_port
        self.monitor_admin = "postgresql://postgres@127.0.0.1:%d/pg_auto_failover?sslmode=disable" % self.monitor_port

    def autoctl(self, *args, timeout=120, check=True):
        res = subprocess.run(PG_RUNNER + ["env"] + ["%s=%s" % (k, self.env[k]) for k in
                                                    ("PATH", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR")]
                             + ["pg_autoctl"] + list(args), capture_output=True, text=True, timeout=timeout,
                             cwd=self.dir)
        if check:
            assert res.returncode == 0, "pg_autoctl %s failed:\n%s%s" % (args, res.stdout, res.stderr)
        return res

    def run(self, name, *args):
        """Starts `pg_autoctl <args>` in a new session, logging to <dir>/<name>.log."""
        log = open(os.path.join(self.dir, name + ".log"), "ab")
        self.procs[name] = subprocess.Popen(
            PG_RUNNER + ["env"] + ["%s=%s" % (k, self.env[k]) for k in
                                   ("PATH", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR")]
            + ["pg_autoctl"] + list(args), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.dir, start_new_session=True)
        log.close()

    def states(self):
        """{node name: (reported state, goal state)}, from the monitor's own table."""
        res = subprocess.run(["psql", self.monitor_admin, "-XAtF", " ", "-c",
                              "SELECT nodename, reportedstate, goalstate FROM pgautofailover.node"],
                             capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            return {}
        return {name: (reported, goal) for name, reported, goal in
                (line.split() for line in res.stdout.splitlines() if len(line.split()) == 3)}

    def wait_states(self, wanted, timeout=120):
        h.wait_until(lambda: all(self.states().get(name, (None, None)) == (state, state)
                                 for name, state in wanted.items()),
                     timeout, interval=0.5, what="formation states %s (now %s)" % (wanted, self.states()))

    def start(self):
        monitor = os.path.join(self.dir, "monitor")
        self.autoctl("create", "monitor", "--pgdata", monitor, "--pgport", str(self.monitor_port),
                     "--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl")
        # `create monitor` has no --listen: its Postgres would listen on every address.
        self.autoctl("config", "set", "--pgdata", monitor, "postgresql.listen_addresses", "127.0.0.1")
        self.run("monitor", "run", "--pgdata", monitor)
        admin = self.monitor_admin

        def monitor_ready():
            return subprocess.run(["psql", admin, "-XAtc", "SELECT 1"], capture_output=True).returncode == 0
        h.wait_until(monitor_ready, 60, interval=0.2, what="the pg_auto_failover monitor")
        commands = ["ALTER SYSTEM SET %s = %d" % item for item in self.MONITOR_SETTINGS.items()]
        commands.append("SELECT pg_reload_conf()")
        args = ["psql", admin, "-X", "-v", "ON_ERROR_STOP=1", "-qAt"]
        for command in commands:
            args += ["-c", command]
        res = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        for name in ("node1", "node2"):
            self.run(name, "create", "postgres", "--pgdata", os.path.join(self.dir, name),
                     "--pgport", str(self.node_ports[name]), "--hostname", "127.0.0.1", "--listen", "127.0.0.1",
                     "--name", name, "--auth", "trust", "--no-ssl", "--monitor", self.monitor_uri,
                     "--dbname", "wallet", "--run")
            if name == "node1":
                self.wait_states({"node1": "single"})
        # node2's pg_basebackup asks node1 for a spread checkpoint (minutes on an idle
        # cluster); a CHECKPOINT makes the one in progress finish at once.
        node1 = "postgresql://postgres@127.0.0.1:%d/wallet?sslmode=disable" % self.node_ports["node1"]

        def secondary_ready():
            subprocess.run(["psql", node1, "-XAtc", "CHECKPOINT"], capture_output=True, timeout=30)
            states = self.states()
            return states.get("node1") == ("primary", "primary") and states.get("node2") == ("secondary", "secondary")
        h.wait_until(secondary_ready, 120, interval=1.0, what="node1 primary, node2 secondary (%s)" % self.states())

    def url(self):
        """The formation's multi-host URL (target_session_attrs=read-write), as the postgres user."""
        res = self.autoctl("show", "uri", "--pgdata", os.path.join(self.dir, "monitor"), "--formation", "default")
        uri = res.stdout.strip()
        assert "target_session_attrs=read-write" in uri and "," in uri, uri
        return uri + "&user=postgres"

    def synchronous_standbys(self, node):
        url = "postgresql://postgres@127.0.0.1:%d/wallet?sslmode=disable" % self.node_ports[node]
        res = subprocess.run(["psql", url, "-XAtc", "SHOW synchronous_standby_names"], capture_output=True,
                             text=True, timeout=30)
        return res.stdout.strip()

    def kill(self, name):
        """SIGKILL the node's keeper and its Postgres (one session) at once."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def destroy(self):
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        # A Postgres whose keeper died first may still run: stop it by its data dir.
        for name in ("monitor", "node1", "node2"):
            pgdata = os.path.join(self.dir, name)
            if os.path.exists(os.path.join(pgdata, "postmaster.pid")):
                subprocess.run(PG_RUNNER + [os.path.join(pg_bindir(), "pg_ctl"), "-D", pgdata, "stop", "-m",
                                            "immediate"], capture_output=True, timeout=60)
        if os.environ.get("E2E_KEEP_LOGS") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
