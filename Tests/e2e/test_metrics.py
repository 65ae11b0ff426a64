"""Metrics (contract: "Operations"): --metrics-listen serves Prometheus text on
GET /metrics, scraped here by a real Prometheus (Debian's `prometheus`, which
scripts/setup installs) every second; its query API must return the call
counters after traffic, and `promtool check metrics` must pass on the text.

One server of its own (metrics on a loopback port, a fast hold sweeper) and
one Prometheus on loopback with a throwaway data directory.
"""
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest

import conftest
import e2e_helpers as h

C = grpc.StatusCode
WALLET = "/wallet.v1.Wallet/"
WATCH = "/grpc.health.v1.Health/Watch"
SCRAPE_INTERVAL = "1s"
PROMETHEUS_READY_S = 30
SCRAPED_WITHIN_S = 15


def http_get(url, timeout=5.0, method="GET"):
    """(status, body) of one request."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture(scope="module")
def metered(server_binary, database_url, workdir):
    port = conftest._free_port()
    srv = conftest.Server(server_binary, database_url, os.path.join(workdir, "metrics.log"),
                          extra_args=["--metrics-listen", "127.0.0.1:%d" % port, "--sweep-interval-ms", "100"])
    srv.metrics_url = "http://127.0.0.1:%d/metrics" % port
    srv.start()
    yield srv
    srv.terminate()


@pytest.fixture(scope="module")
def prometheus(metered, workdir):
    """A Prometheus scraping the server every second; yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed (scripts/setup installs Debian's `prometheus`)")
    root = os.path.join(workdir, "prometheus")
    os.makedirs(root, exist_ok=True)
    target = urllib.parse.urlsplit(metered.metrics_url).netloc
    config = os.path.join(root, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n  scrape_interval: %s\n  scrape_timeout: 900ms\n"
                "scrape_configs:\n  - job_name: wallet\n    static_configs:\n      - targets: ['%s']\n"
                % (SCRAPE_INTERVAL, target))
    port = conftest._free_port()
    log = open(os.path.join(root, "prometheus.log"), "wb")
    proc = subprocess.Popen([binary, "--config.file=" + config, "--storage.tsdb.path=" + os.path.join(root, "data"),
                             "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    base = "http://127.0.0.1:%d" % port
    try:
        h.wait_until(lambda: proc.poll() is None and _ready(base), PROMETHEUS_READY_S, interval=0.2,
                     what="prometheus ready (log: %s)" % os.path.join(root, "prometheus.log"))
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(base):
    try:
        return http_get(base + "/-/ready", timeout=1.0)[0] == 200
    except OSError:
        return False


def query(base, expression):
    """The instant vector of `expression`: [(labels, float value)]."""
    status, body = http_get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
    assert status == 200, body
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return [(sample["metric"], float(sample["value"][1])) for sample in answer["data"]["result"]]


def scalar(base, expression):
    """The one sample's value, or None while there is none."""
    samples = query(base, expression)
    assert len(samples) <= 1, samples
    return samples[0][1] if samples else None


def calls(base, method, code):
    return scalar(base, 'wallet_grpc_calls_total{job="wallet",method="%s",code="%s"}' % (method, code))


def test_prometheus_scrapes_the_call_counters_after_traffic(metered, prometheus):
    ch = grpc.insecure_channel(metered.address)
    stub = h.wallet_grpc.WalletStub(ch)
    asset = h.new_asset()
    stub.DefineAsset(h.pb.DefineAssetRequest(asset=asset, decimal_places=2), timeout=h.TIMEOUT)
    wallet = h.new_wallet_id("metered")
    stub.CreateWallet(h.pb.CreateWalletRequest(wallet_id=wallet), timeout=h.TIMEOUT)
    ids = [wallet, asset]
    for _ in range(5):
        ids.append(h.credit(stub, wallet, asset, 100).transaction.transaction_id)
    for _ in range(2):
        tx = h.new_tx_id()
        ids.append(tx)
        h.expect_error(h.debit, C.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS", stub=stub, wallet_id=wallet,
                       asset=asset, amount=1_000_000, tx_id=tx)
    # A hold that expires at once: the sweeper (every 100 ms here) releases it.
    hold = h.authorize(stub, wallet, asset, 10, expires_in_ms=1).transaction.transaction_id
    ids.append(hold)
    # A Watch stream the client cancels: counted when it ends.
    watch = ch.unary_stream(WATCH, request_serializer=h.health_pb.HealthCheckRequest.SerializeToString,
                            response_deserializer=h.health_pb.HealthCheckResponse.FromString)
    stream = watch(h.health_pb.HealthCheckRequest(service=""), timeout=h.TIMEOUT)
    assert next(stream).status == h.health_pb.HealthCheckResponse.SERVING
    stream.cancel()
    ch.close()

    h.wait_until(lambda: calls(prometheus, WALLET + "Credit", "OK") == 5, SCRAPED_WITHIN_S, interval=0.5,
                 what="Prometheus to report 5 OK Credit calls")
    assert calls(prometheus, WALLET + "Debit", "FAILED_PRECONDITION") == 2
    assert calls(prometheus, WALLET + "Authorize", "OK") == 1
    assert calls(prometheus, WALLET + "DefineAsset", "OK") == 1
    h.wait_until(lambda: calls(prometheus, WATCH, "CANCELLED") == 1, SCRAPED_WITHIN_S, interval=0.5,
                 what="the cancelled Watch stream counted")
    h.wait_until(lambda: (scalar(prometheus, 'wallet_holds_expired_total{job="wallet"}') or 0) >= 1,
                 SCRAPED_WITHIN_S, interval=0.5, what="the expired hold counted")
    assert scalar(prometheus, 'up{job="wallet"}') == 1
    # Every Credit was timed: the histogram's count is the counter's.
    assert scalar(prometheus, 'wallet_grpc_call_duration_seconds_count{method="%sCredit"}' % WALLET) == 5
    assert scalar(prometheus, 'wallet_db_connections_up{job="wallet"}') >= 2
    assert scalar(prometheus, 'wallet_db_connections_down{job="wallet"}') == 0
    # 5 credits, 2 rejections pinned, 1 authorization, its expiry: at least 9 commands committed.
    assert scalar(prometheus, 'wallet_batch_size_sum{job="wallet"}') >= 9
    assert scalar(prometheus, 'wallet_db_commit_duration_seconds_count{job="wallet"}') >= 1
    assert query(prometheus, 'wallet_lane_queue_depth{job="wallet"}')
    assert scalar(prometheus, 'process_start_time_seconds{job="wallet"}') > time.time() - 3600
    assert scalar(prometheus, 'process_open_fds{job="wallet"}') > 0

    # No label carries an id from a request.
    status, text = http_get(metered.metrics_url)
    assert status == 200
    for identifier in ids:
        assert identifier not in text


def test_promtool_accepts_the_metrics_text(metered, prometheus):
    status, text = http_get(metered.metrics_url)
    assert status == 200
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (it comes with Debian's `prometheus`)")
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), \
        "promtool check metrics:\n%s%s" % (res.stdout, res.stderr)
    # Every family has its HELP and TYPE; the standard process series are there.
    for name in ("wallet_grpc_calls_total", "wallet_grpc_call_duration_seconds", "wallet_lane_queue_depth",
                 "wallet_batch_size", "wallet_db_commit_duration_seconds", "wallet_holds_expired_total",
                 "wallet_db_connections_up", "wallet_db_connections_down", "process_cpu_seconds_total",
                 "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
                 "process_start_time_seconds"):
        assert "# HELP %s " % name in text and "# TYPE %s " % name in text, name


def test_only_get_metrics_is_served(metered):
    base = metered.metrics_url.rsplit("/", 1)[0]
    assert http_get(base + "/")[0] == 404
    assert http_get(base + "/metrics/extra")[0] == 404
    assert http_get(metered.metrics_url, method="POST")[0] == 405
    assert http_get(metered.metrics_url, method="HEAD")[0] == 200
