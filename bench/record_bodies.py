#!/usr/bin/env python3
"""Writes the recorded gRPC request bodies that h2load sends.

A unary gRPC request body is one length-prefixed message: a 1-byte
compressed flag (0), a 4-byte big-endian length, then the protobuf bytes.

    bench/record_bodies.py OUT_DIR

writes OUT_DIR/health_check.bin (an empty grpc.health.v1.HealthCheckRequest:
the service name "" means the whole server) and OUT_DIR/get_balance.bin
(GetBalance of the wallet that bench/grpcio_client.py creates) and
OUT_DIR/list_transactions.bin (the newest 10 transactions of that wallet).
"""
import os
import struct
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stubs  # noqa: E402

# Must match bench/grpcio_client.py, which creates this wallet.
H2LOAD_WALLET_ID = "bench.h2load"
ASSET = "PYCHIPS"


def frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: record_bodies.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    pb, _ = stubs.load()
    bodies = {
        # HealthCheckRequest{service: ""} encodes to zero bytes.
        "health_check.bin": frame(b""),
        "get_balance.bin": frame(pb.GetBalanceRequest(wallet_id=H2LOAD_WALLET_ID, asset=ASSET).SerializeToString()),
        "list_transactions.bin": frame(
            pb.ListTransactionsRequest(wallet_id=H2LOAD_WALLET_ID, page_size=10).SerializeToString()),
    }
    for name, body in bodies.items():
        with open(os.path.join(out, name), "wb") as file:
            file.write(body)
        print(f"{name}: {len(body)} bytes")


if __name__ == "__main__":
    main()
