#!/usr/bin/env python3
"""Follow the ledger: print every event of wallet.v1.Wallet/WatchEvents, one line each, and keep
the cursor of the last one handled in a file, so that a restart resumes exactly after it
(nothing skipped, nothing handled twice). Stubs are generated from Protos/ on the fly.

    examples/consumer.py [HOST:PORT] --cursor-file F [--wallet W] [--from-now] [--max-events N]
                         [--ca ca.pem --cert c.pem --key c.key]

The cursor is written after an event is handled (printed), through a temporary file and a rename,
so the file always holds a whole cursor. Handle events idempotently all the same: a crash between
handling an event and writing its cursor hands the event over again after the restart.
On UNAVAILABLE (a server stopping, a failover) it waits and resumes from the file's cursor,
on any instance behind the address.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import grpc

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
stubs = tempfile.mkdtemp(prefix="wallet-stubs-")
subprocess.check_call([
    sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(root, "Protos"),
    f"--python_out={stubs}", f"--grpc_python_out={stubs}", "wallet/v1/wallet.proto",
])
sys.path.insert(0, stubs)
from wallet.v1 import wallet_pb2 as pb, wallet_pb2_grpc as rpc  # noqa: E402

parser = argparse.ArgumentParser(description="Follow the ledger's events, resuming after a restart.")
parser.add_argument("target", nargs="?", default="127.0.0.1:50051", help="HOST:PORT of wallet-server")
parser.add_argument("--cursor-file", required=True, help="where the last handled event's cursor is kept")
parser.add_argument("--wallet", default="", help="only events touching this wallet")
parser.add_argument("--from-now", action="store_true", help="with no saved cursor: start at now, not the beginning")
parser.add_argument("--max-events", type=int, default=0, help="stop after handling this many (0: never)")
parser.add_argument("--ca", help="PEM of the CA that signed the server's certificate: use TLS")
parser.add_argument("--cert", help="PEM client certificate (mutual TLS)")
parser.add_argument("--key", help="PEM private key of --cert")
args = parser.parse_args()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def load_cursor():
    try:
        with open(args.cursor_file) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def save_cursor(cursor):
    directory = os.path.dirname(os.path.abspath(args.cursor_file))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".cursor-")
    with os.fdopen(fd, "w") as f:
        f.write(cursor)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, args.cursor_file)


def channel():
    if args.ca:
        credentials = grpc.ssl_channel_credentials(
            read(args.ca), read(args.key) if args.key else None, read(args.cert) if args.cert else None)
        return grpc.secure_channel(args.target, credentials)
    return grpc.insecure_channel(args.target)


handled = 0
while True:
    cursor = load_cursor()
    request = pb.WatchEventsRequest(after_cursor=cursor, wallet_id=args.wallet,
                                    from_now=args.from_now and not cursor)
    with channel() as ch:
        try:
            for event in rpc.WalletStub(ch).WatchEvents(request):
                t = event.transaction
                print("%s %s %s %s %s %d" % (event.cursor, t.transaction_id, pb.TransactionKind.Name(t.kind),
                                             pb.TransactionStatus.Name(t.status), t.wallet_id, t.amount), flush=True)
                save_cursor(event.cursor)
                handled += 1
                if args.max_events and handled >= args.max_events:
                    sys.exit(0)
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                print("WatchEvents: %s %s" % (e.code().name, e.details()), file=sys.stderr)
                sys.exit(1)
            print("WatchEvents: %s; resuming after %r" % (e.code().name, load_cursor() or "the beginning"),
                  file=sys.stderr)
            time.sleep(1)
