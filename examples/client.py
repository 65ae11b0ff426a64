#!/usr/bin/env python3
"""A tiny wallet.v1 client: stubs are generated from Protos/ on the fly."""
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

target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
wallet = rpc.WalletStub(grpc.insecure_channel(target))
player = f"player-{uuid.uuid4().hex[:8]}"

wallet.DefineAsset(pb.DefineAssetRequest(asset="USD", decimal_places=2))
wallet.CreateWallet(pb.CreateWalletRequest(wallet_id=player))
wallet.Credit(pb.CreditRequest(transaction_id=str(uuid.uuid4()), wallet_id=player, asset="USD", amount=10_000))
bet = wallet.Debit(pb.DebitRequest(transaction_id=str(uuid.uuid4()), wallet_id=player, asset="USD", amount=2_500))
print("bet", bet.transaction.transaction_id, pb.TransactionStatus.Name(bet.transaction.status))
print(wallet.GetBalance(pb.GetBalanceRequest(wallet_id=player)))
