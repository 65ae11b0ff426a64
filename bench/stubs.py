"""Python stubs for Protos/wallet/v1/wallet.proto, generated on first use.

Shared by the recorded-body writer and the grpcio load client, so both speak
exactly the proto in this repository. (grpc.health.v1 is not generated: its
package name would shadow grpcio's own `grpc` module, and the health check
the benchmarks send is the empty message anyway.)
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def load():
    """Generates the stubs into a temporary directory and imports them."""
    out = tempfile.mkdtemp(prefix="wallet-bench-stubs-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    subprocess.check_call([
        sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(ROOT, "Protos"),
        f"--python_out={out}", f"--grpc_python_out={out}", "wallet/v1/wallet.proto",
    ])
    sys.path.insert(0, out)
    from wallet.v1 import wallet_pb2, wallet_pb2_grpc  # noqa: E402
    return wallet_pb2, wallet_pb2_grpc
