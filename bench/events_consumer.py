#!/usr/bin/env python3
"""A WatchEvents consumer for scripts/bench-events: reads events, and prints one JSON line with how
many it read, how fast, and (for live events) the delivery latency: the time it got each event
minus the transaction's created_at (the database clock a batch reads once it holds its locks), so
it spans the rest of the batch, its commit, the frontier and the stream. Same machine, same clock.

    events_consumer.py TARGET [--from-now] [--count N] [--seconds S] [--stubs DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import grpc

parser = argparse.ArgumentParser()
parser.add_argument("target")
parser.add_argument("--from-now", action="store_true")
parser.add_argument("--count", type=int, default=0, help="stop after this many events (0: --seconds)")
parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: --count)")
parser.add_argument("--ready-file", help="touched once the stream is open")
parser.add_argument("--stop-file", help="stop once this file exists and no event came for 1 s")
args = parser.parse_args()

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
stubs = tempfile.mkdtemp(prefix="wallet-bench-stubs-")
subprocess.check_call([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(root, "Protos"),
                       "--python_out=" + stubs, "--grpc_python_out=" + stubs, "wallet/v1/wallet.proto"])
sys.path.insert(0, stubs)
from wallet.v1 import wallet_pb2 as pb, wallet_pb2_grpc as rpc  # noqa: E402

channel = grpc.insecure_channel(args.target, options=[("grpc.max_receive_message_length", 64 << 20)])
call = rpc.WalletStub(channel).WatchEvents(pb.WatchEventsRequest(from_now=args.from_now))
if args.seconds:
    timer = threading.Timer(args.seconds, call.cancel)
    timer.daemon = True
    timer.start()
if args.ready_file:
    open(args.ready_file, "w").close()
latencies = []
count = 0
last_event_at = [time.time()]


def watch_stop_file():
    while not os.path.exists(args.stop_file) or time.time() - last_event_at[0] < 1.0:
        time.sleep(0.1)
    call.cancel()


if args.stop_file:
    threading.Thread(target=watch_stop_file, daemon=True).start()
started = time.time()
first_at = None
try:
    for event in call:
        now = time.time()
        last_event_at[0] = now
        if first_at is None:
            first_at = now
        count += 1
        if args.from_now:
            latencies.append(now * 1e6 - event.transaction.created_at)
        if args.count and count >= args.count:
            call.cancel()
            break
except grpc.RpcError as e:
    if e.code() != grpc.StatusCode.CANCELLED:
        raise
ended = time.time()
latencies.sort()


def percentile(p):
    return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000.0, 2) if latencies else None


span = ended - (first_at or started)
print(json.dumps({"events": count, "seconds": round(span, 3), "events_per_s": round(count / span, 1) if span else 0,
                  "latency_ms_p50": percentile(0.5), "latency_ms_p99": percentile(0.99),
                  "latency_ms_max": round(latencies[-1] / 1000.0, 2) if latencies else None}))
