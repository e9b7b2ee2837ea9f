"""Clients that are not grpcio: another gRPC implementation, and TLS."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from calcfleet.client import CallFailedError, Client
from calcfleet.v1 import calculator_pb2 as pb

from servers import RunningServer, StartServer


async def grpclib_calls(port: int) -> tuple[str, int, GRPCError]:
    channel = Channel("127.0.0.1", port)
    try:
        evaluate = UnaryUnaryMethod(
            channel,
            "/calcfleet.v1.Calculator/Evaluate",
            pb.EvaluateRequest,
            pb.EvaluateResponse,
        )
        check = UnaryUnaryMethod(
            channel,
            "/grpc.health.v1.Health/Check",
            health_pb2.HealthCheckRequest,
            health_pb2.HealthCheckResponse,
        )
        value = (
            await evaluate(pb.EvaluateRequest(expression="2**64"), timeout=5)
        ).value
        status = (await check(health_pb2.HealthCheckRequest(), timeout=5)).status
        with pytest.raises(GRPCError) as failed:
            await evaluate(pb.EvaluateRequest(expression="1/0"), timeout=5)
        return value, status, failed.value
    finally:
        channel.close()


def test_grpclib_client_evaluates_and_checks_health(
    shared_server: RunningServer,
) -> None:
    value, status, error = asyncio.run(grpclib_calls(shared_server.port))
    assert value == "18446744073709551616"
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert error.status == Status.INVALID_ARGUMENT
    assert error.message == "division by zero in '/' at column 2"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes"]
    command += ["-days", "1", "-subj", "/CN=calcfleet.test"]
    command += ["-keyout", str(key), "-out", str(cert)]
    command += ["-addext", "subjectAltName=DNS:calcfleet.test,IP:127.0.0.1"]
    subprocess.run(command, check=True, capture_output=True)
    return key, cert


def test_client_speaks_tls_to_a_tls_server(
    start_server: StartServer, certificate: tuple[Path, Path]
) -> None:
    key, cert = certificate
    running = start_server(
        env={
            "CALCFLEET_SERVER_TLS_PRIVATE_KEY": str(key),
            "CALCFLEET_SERVER_TLS_CERTIFICATE": str(cert),
        }
    )
    with Client(running.address, root_certificates=cert.read_bytes()) as client:
        assert client.evaluate("6*7") == "42"
        assert client.is_serving()
    with (
        Client(running.address, timeout=2) as plain,
        pytest.raises(CallFailedError) as refused,
    ):
        plain.evaluate("6*7")
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE


def test_client_reuses_its_channel_and_maps_errors(
    shared_server: RunningServer,
) -> None:
    with Client(shared_server.address) as client:
        assert [client.evaluate(f"{n}*{n}") for n in range(3)] == ["0", "1", "4"]
        assert client.calculate("power", "2", "10") == "1024"
        batched = list(client.evaluate_many([f"{n}+1" for n in range(10)], batch=3))
        assert [(r.index, r.value) for r in batched] == [
            (n, str(n + 1)) for n in range(10)
        ]
        results = list(client.evaluate_many(["1+1", "x"]))
        assert results[0].value == "2"
        assert (
            results[1].error.message
            == "unknown name 'x' (known names: e, pi, tau) at column 1"
        )
        with pytest.raises(CallFailedError) as failed:
            client.evaluate("sqrt(-1)")
    assert failed.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(failed.value) == (
        "INVALID_ARGUMENT: sqrt(-1) is outside the domain of sqrt at column 1"
    )
