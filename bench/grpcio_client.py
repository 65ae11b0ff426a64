#!/usr/bin/env python3
"""A load client built only from standard tools: Python grpcio and stubs
generated from Protos/wallet/v1/wallet.proto.

    bench/grpcio_client.py --target 127.0.0.1:50051 [--threads 4] [--calls 2000]

Each thread owns one wallet and makes a fixed number of calls, alternating
Credit (a fresh transaction id each) and GetBalance. At the end every wallet's
posted balance must equal the sum of the credits acknowledged on it. Prints a
human line, then one JSON line (ops_per_s, p50_ms, p99_ms, errors, ok).
Exit status 0 when every call succeeded and every balance matched.
"""
import argparse
import json
import os
import sys
import threading
import time
import uuid

import grpc

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stubs  # noqa: E402

ASSET = "PYCHIPS"
# bench/record_bodies.py's GetBalance and ListTransactions bodies name this
# wallet; it gets a history of H2LOAD_HISTORY credits.
H2LOAD_WALLET_ID = "bench.h2load"
H2LOAD_HISTORY = 20
THREADS_MAX = 64
CALLS_MAX = 1_000_000
CALL_TIMEOUT_SECONDS = 10.0


def quantile(sorted_values, q):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--calls", type=int, default=2000, help="calls per thread")
    args = parser.parse_args()
    if not 1 <= args.threads <= THREADS_MAX or not 1 <= args.calls <= CALLS_MAX:
        parser.error(f"--threads must be 1..{THREADS_MAX}, --calls 1..{CALLS_MAX}")

    pb, rpc = stubs.load()
    channel = grpc.insecure_channel(args.target)
    grpc.channel_ready_future(channel).result(timeout=CALL_TIMEOUT_SECONDS)
    wallet = rpc.WalletStub(channel)

    run = uuid.uuid4().hex[:8]
    wallet.DefineAsset(pb.DefineAssetRequest(asset=ASSET, decimal_places=2), timeout=CALL_TIMEOUT_SECONDS)
    wallet.CreateWallet(pb.CreateWalletRequest(wallet_id=H2LOAD_WALLET_ID), timeout=CALL_TIMEOUT_SECONDS)
    for index in range(H2LOAD_HISTORY):
        wallet.Credit(
            pb.CreditRequest(
                transaction_id=f"{H2LOAD_WALLET_ID}.{run}.{index}", wallet_id=H2LOAD_WALLET_ID, asset=ASSET, amount=1),
            timeout=CALL_TIMEOUT_SECONDS)
    wallet_ids = [f"bench.py.{run}.{index}" for index in range(args.threads)]
    for wallet_id in wallet_ids:
        wallet.CreateWallet(pb.CreateWalletRequest(wallet_id=wallet_id), timeout=CALL_TIMEOUT_SECONDS)

    latencies = [[] for _ in wallet_ids]
    credited = [0] * len(wallet_ids)
    errors = [{} for _ in wallet_ids]

    def work(index: int) -> None:
        wallet_id = wallet_ids[index]
        for call in range(args.calls):
            start = time.perf_counter()
            try:
                if call % 2 == 0:
                    amount = 1 + call % 100
                    wallet.Credit(
                        pb.CreditRequest(
                            transaction_id=f"{wallet_id}.{call}", wallet_id=wallet_id, asset=ASSET, amount=amount),
                        timeout=CALL_TIMEOUT_SECONDS)
                    credited[index] += amount
                else:
                    wallet.GetBalance(pb.GetBalanceRequest(wallet_id=wallet_id, asset=ASSET), timeout=CALL_TIMEOUT_SECONDS)
            except grpc.RpcError as error:
                code = error.code().name
                errors[index][code] = errors[index].get(code, 0) + 1
                continue
            latencies[index].append(time.perf_counter() - start)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(args.threads)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start

    mismatched = []
    for index, wallet_id in enumerate(wallet_ids):
        answer = wallet.GetBalance(pb.GetBalanceRequest(wallet_id=wallet_id, asset=ASSET), timeout=CALL_TIMEOUT_SECONDS)
        posted = sum(balance.posted for balance in answer.balances if balance.asset == ASSET)
        if posted != credited[index]:
            mismatched.append(f"{wallet_id}: expected {credited[index]}, found {posted}")
    channel.close()

    all_latencies = sorted(value for values in latencies for value in values)
    error_counts = {}
    for per_thread in errors:
        for code, count in per_thread.items():
            error_counts[code] = error_counts.get(code, 0) + count
    succeeded = len(all_latencies)
    report = {
        "threads": args.threads,
        "calls": args.threads * args.calls,
        "succeeded": succeeded,
        "elapsed_s": round(elapsed, 3),
        "ops_per_s": round(succeeded / elapsed, 1),
        "p50_ms": round(quantile(all_latencies, 0.5) * 1e3, 3),
        "p99_ms": round(quantile(all_latencies, 0.99) * 1e3, 3),
        "errors": sum(error_counts.values()),
        "errors_by_code": error_counts,
        "balances_ok": not mismatched,
    }
    report["ok"] = report["errors"] == 0 and not mismatched
    print(
        f"grpcio: {succeeded} calls ok in {elapsed:.2f} s with {args.threads} threads: {report['ops_per_s']} ops/s, "
        f"p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms, errors {error_counts or 'none'}, "
        f"balances {'match' if not mismatched else 'MISMATCH: ' + '; '.join(mismatched[:5])}")
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
