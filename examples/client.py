#!/usr/bin/env python3
"""A tiny wallet.v1 client: stubs are generated from Protos/ on the fly.

    examples/client.py [HOST:PORT]                                  plaintext (default 127.0.0.1:50051)
    examples/client.py HOST:PORT --ca ca.pem                        TLS
    examples/client.py HOST:PORT --ca ca.pem --cert c.pem --key c.key   mutual TLS
(scripts/dev-certs DIR makes a CA, a server certificate and client certificates to try it with.)
"""
import argparse
import os
import subprocess
import sys
import tempfile
import uuid

import grpc

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
stubs = tempfile.mkdtemp(prefix="wallet-stubs-")
subprocess.check_call([
    sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(root, "Protos"),
    f"--python_out={stubs}", f"--grpc_python_out={stubs}", "wallet/v1/wallet.proto",
])
sys.path.insert(0, stubs)
from wallet.v1 import wallet_pb2 as pb, wallet_pb2_grpc as rpc  # noqa: E402

parser = argparse.ArgumentParser(description="Credit and bet on a new wallet, then print its balance.")
parser.add_argument("target", nargs="?", default="127.0.0.1:50051", help="HOST:PORT of wallet-server")
parser.add_argument("--ca", help="PEM of the CA that signed the server's certificate: use TLS")
parser.add_argument("--cert", help="PEM client certificate (mutual TLS; needs --key and --ca)")
parser.add_argument("--key", help="PEM private key of --cert")
parser.add_argument("--server-name", help="name to check the server's certificate against (default: the target's host)")
args = parser.parse_args()
if (args.cert is None) != (args.key is None):
    parser.error("--cert and --key go together")
if args.cert and not args.ca:
    parser.error("--cert needs --ca")


def read(path):
    with open(path, "rb") as f:
        return f.read()


if args.ca:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key) if args.key else None,
        certificate_chain=read(args.cert) if args.cert else None)
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    channel = grpc.secure_channel(args.target, credentials, options=options)
else:
    channel = grpc.insecure_channel(args.target)
wallet = rpc.WalletStub(channel)
player = f"player-{uuid.uuid4().hex[:8]}"

wallet.DefineAsset(pb.DefineAssetRequest(asset="USD", decimal_places=2))
wallet.CreateWallet(pb.CreateWalletRequest(wallet_id=player))
wallet.Credit(pb.CreditRequest(transaction_id=str(uuid.uuid4()), wallet_id=player, asset="USD", amount=10_000))
bet = wallet.Debit(pb.DebitRequest(transaction_id=str(uuid.uuid4()), wallet_id=player, asset="USD", amount=2_500))
print("bet", bet.transaction.transaction_id, pb.TransactionStatus.Name(bet.transaction.status))
print(wallet.GetBalance(pb.GetBalanceRequest(wallet_id=player)))
