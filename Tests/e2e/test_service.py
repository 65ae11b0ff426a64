"""Health, unknown methods, garbage on the wire, migrate, SIGTERM."""
import os
import signal
import subprocess
import threading
import time

import grpc
import pytest

import conftest
import e2e_helpers as h
from e2e_helpers import pb

C = grpc.StatusCode


def test_health_check_is_serving(channel):
    assert h.health_check(channel, "") == h.health_pb.HealthCheckResponse.SERVING


@pytest.mark.parametrize("path", ["/wallet.v1.Wallet/NoSuchMethod", "/wallet.v1.Nope/Credit",
                                  "/no.such.Service/Call"])
def test_unknown_method_is_unimplemented(channel, path):
    call = channel.unary_unary(path)  # raw bytes in, raw bytes out
    with pytest.raises(grpc.RpcError) as ei:
        call(b"", timeout=h.TIMEOUT)
    assert ei.value.code() == C.UNIMPLEMENTED


GARBAGE = [b"\xff\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x08" + b"\xff" * 11, b"\x12\x05ab"]


@pytest.mark.parametrize("method", ["Credit", "Debit", "Settle", "GetBalance", "CreateWallet"])
@pytest.mark.parametrize("body", GARBAGE, ids=["bad tag", "bad length", "bad varint", "truncated"])
def test_garbage_request_body_is_invalid_argument_and_server_lives(channel, stub, method, body):
    call = channel.unary_unary("/wallet.v1.Wallet/" + method)
    with pytest.raises(grpc.RpcError) as ei:
        call(body, timeout=h.TIMEOUT)
    assert ei.value.code() == C.INVALID_ARGUMENT, (ei.value.code(), ei.value.details())
    assert h.health_check(channel) == h.health_pb.HealthCheckResponse.SERVING
    stub.DefineAsset(pb.DefineAssetRequest(asset=h.new_asset(), decimal_places=2), timeout=h.TIMEOUT)


def test_migrate_again_is_a_no_op(server_binary, database_url):
    res = subprocess.run([server_binary, "migrate", "--database-url", database_url],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_second_instance_serves_same_ledger_and_exits_0_on_sigterm(server_binary, database_url, workdir,
                                                                    stub, asset, wallet):
    other = conftest.Server(server_binary, database_url, os.path.join(workdir, "second.log"))
    other.start()
    try:
        w = wallet()
        with grpc.insecure_channel(other.address) as ch:
            stub2 = h.wallet_grpc.WalletStub(ch)
            r = h.credit(stub2, w, asset, 42)
            assert r.replayed is False
            # the same transaction, replayed on the first instance, is not applied again
            again = stub.Credit(pb.CreditRequest(transaction_id=r.transaction.transaction_id, wallet_id=w,
                                                 asset=asset, amount=42), timeout=h.TIMEOUT)
            assert again.replayed is True
        code = other.terminate(timeout=60)
        assert code == 0, "exit %s on SIGTERM; log:\n%s" % (code, other.log())
    finally:
        other.kill()
    assert h.totals(h.get_balance(stub, w, asset)) == (42, 0, 42)


def test_health_watch_streams_serving(channel):
    watch = channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=h.health_pb.HealthCheckRequest.SerializeToString,
        response_deserializer=h.health_pb.HealthCheckResponse.FromString)
    stream = watch(h.health_pb.HealthCheckRequest(service=""), timeout=h.TIMEOUT)
    try:
        first = next(iter(stream))
        assert first.status == h.health_pb.HealthCheckResponse.SERVING
    finally:
        stream.cancel()


# ServerReflectionRequest: list_services = 7, file_containing_symbol = 4.
# ServerReflectionResponse: file_descriptor_response = 4 (FileDescriptorResponse: repeated bytes 1),
# list_services_response = 6 (ListServiceResponse: repeated ServiceResponse 1 {name 1}), error_response = 7.
@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_server_reflection_lists_and_describes_the_wallet_service(channel, version):
    from google.protobuf import descriptor_pb2
    call = channel.stream_stream("/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version)
    answers = list(call(iter([h.wire_string(7, ""), h.wire_string(4, "wallet.v1.Wallet")]), timeout=h.TIMEOUT))
    assert len(answers) == 2
    listed = dict(h.wire_fields(answers[0]))
    assert 6 in listed, "no list_services_response: %r" % listed
    names = {dict(h.wire_fields(svc))[1].decode() for num, svc in h.wire_fields(listed[6]) if num == 1}
    assert {"wallet.v1.Wallet", "grpc.health.v1.Health"} <= names, names
    described = dict(h.wire_fields(answers[1]))
    assert 4 in described, "no file_descriptor_response: %r" % described
    files = [descriptor_pb2.FileDescriptorProto.FromString(v) for num, v in h.wire_fields(described[4]) if num == 1]
    services = {f.package + "." + s.name: {m.name for m in s.method} for f in files for s in f.service}
    assert services.get("wallet.v1.Wallet") == set(h.pb.DESCRIPTOR.services_by_name["Wallet"].methods_by_name)


def test_an_open_reflection_stream_does_not_hold_shutdown(server_binary, database_url, workdir):
    """A client may hold a reflection stream open as long as it likes (grpcurl
    in a shell): SIGTERM ends it with UNAVAILABLE at once, and the server exits
    well within its 30-second drain instead of waiting the drain out."""
    server = conftest.Server(server_binary, database_url, os.path.join(workdir, "reflection-open.log"),
                             extra_args=["--drain-timeout-ms", "30000"])
    server.start()
    hold = threading.Event()
    try:

        def requests():
            yield h.wire_string(7, "")  # list_services, then stay open
            hold.wait(60)

        with grpc.insecure_channel(server.address) as ch:
            call = ch.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
            answers = call(requests(), timeout=120)
            first = next(answers)
            assert 6 in dict(h.wire_fields(first)), "no list_services_response"
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(grpc.RpcError) as ei:
                next(answers)
            assert ei.value.code() == C.UNAVAILABLE, (ei.value.code(), ei.value.details())
            code = server.proc.wait(timeout=60)
            elapsed = time.monotonic() - started
        assert code == 0, "exit %s; log:\n%s" % (code, server.log())
        assert elapsed < 15, "exit took %.1f s: the open stream held the drain" % elapsed
    finally:
        hold.set()
        server.kill()


def test_a_flooded_wallet_gets_queue_full_and_nothing_is_recorded(server_binary, database_url, workdir,
                                                                  stub, asset, wallet):
    """--wallet-queue-depth-max over gRPC: a wallet flooded past its queue
    limit answers RESOURCE_EXHAUSTED / QUEUE_FULL (retryable, in ErrorInfo);
    the refused transactions do not exist; the accepted ones all applied."""
    flooded = conftest.Server(server_binary, database_url, os.path.join(workdir, "flooded.log"),
                              extra_args=["--pool-size", "1", "--wallet-queue-depth-max", "2",
                                          "--batch-size-max", "2"])
    flooded.start()
    try:
        w = wallet()
        h.credit(stub, w, asset, 1_000_000)
        with grpc.insecure_channel(flooded.address) as ch:
            stub2 = h.wallet_grpc.WalletStub(ch)
            ids = [h.new_tx_id() for _ in range(300)]
            futures = [stub2.Debit.future(pb.DebitRequest(transaction_id=tx, wallet_id=w, asset=asset, amount=1),
                                          timeout=h.TIMEOUT) for tx in ids]
            refused, accepted = [], []
            for tx, future in zip(ids, futures):
                try:
                    future.result()
                    accepted.append(tx)
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())
                    reason, _ = h.error_info(err)
                    assert reason == "QUEUE_FULL"
                    refused.append(tx)
        assert refused, "no call was refused with a queue limit of 2"
        for tx in refused:
            h.expect_error(lambda tx=tx: stub.GetTransaction(pb.GetTransactionRequest(transaction_id=tx),
                                                             timeout=h.TIMEOUT), grpc.StatusCode.NOT_FOUND)
        assert h.totals(h.get_balance(stub, w, asset))[0] == 1_000_000 - len(accepted)
        assert flooded.terminate(timeout=60) == 0
    finally:
        flooded.kill()
