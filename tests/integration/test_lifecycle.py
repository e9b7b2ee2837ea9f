"""Start-up, readiness, watchdog and drain, as systemd and a load balancer see them."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from calcfleet.v1 import calculator_pb2 as pb
from calcfleet.v1 import calculator_pb2_grpc

from servers import EXPENSIVE_EXPRESSION, StartServer


def evaluate_future(address: str, expression: str) -> tuple[grpc.Channel, grpc.Future]:
    channel = grpc.insecure_channel(address)
    stub = calculator_pb2_grpc.CalculatorStub(channel)
    request = pb.EvaluateRequest(expression=expression)
    return channel, stub.Evaluate.future(request, timeout=30)


def test_call_in_flight_at_sigterm_completes_and_new_calls_are_refused(
    start_server: StartServer,
) -> None:
    running = start_server()
    channel, in_flight = evaluate_future(running.address, EXPENSIVE_EXPRESSION)
    time.sleep(0.1)  # the expensive call is now running on the server
    running.process.send_signal(15)
    time.sleep(0.1)

    with grpc.insecure_channel(running.address) as late:
        stub = calculator_pb2_grpc.CalculatorStub(late)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Evaluate(pb.EvaluateRequest(expression="1+1"), timeout=5)
        health = health_pb2_grpc.HealthStub(late)
        with pytest.raises(grpc.RpcError) as unhealthy:
            health.Check(health_pb2.HealthCheckRequest(), timeout=5)

    assert in_flight.result().value.isdigit()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert unhealthy.value.code() == grpc.StatusCode.UNAVAILABLE
    assert running.process.wait(30) == 0
    assert "server - draining" in running.log_text()
    channel.close()


def test_call_longer_than_the_grace_period_is_cut_short_and_exit_is_clean(
    start_server: StartServer,
) -> None:
    running = start_server(env={"CALCFLEET_SERVER_GRACE_SECONDS": "0.2"})
    channel = grpc.insecure_channel(running.address)
    stub = calculator_pb2_grpc.CalculatorStub(channel)
    requests = iter([pb.StreamRequest(expressions=[EXPENSIVE_EXPRESSION])] * 20)
    stream = stub.EvaluateStream(requests, timeout=60)
    next(stream)
    started = time.monotonic()
    running.process.send_signal(15)

    with pytest.raises(grpc.RpcError) as ended:
        list(stream)
    assert ended.value.code() in {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNAVAILABLE,
    }
    assert running.process.wait(30) == 0
    assert time.monotonic() - started < 5
    channel.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A real sd_notify socket, as systemd gives a Type=notify service."""
    path = str(tmp_path / "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(10)
    yield receiver, path
    receiver.close()


def received(receiver: socket.socket, until: str) -> list[str]:
    messages = []
    while not any(until in m for m in messages):
        messages.append(receiver.recv(4096).decode())
    return messages


def test_notifies_ready_feeds_the_watchdog_and_announces_stopping(
    start_server: StartServer, notify_socket: tuple[socket.socket, str]
) -> None:
    # Scenario S10: READY only once serving; the watchdog is fed while the
    # costliest admitted input runs; STOPPING when the drain begins.
    receiver, path = notify_socket
    running = start_server(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    startup = received(receiver, "READY=1")
    assert startup[-1].startswith("READY=1\nSTATUS=serving on 127.0.0.1:")

    channel, slow = evaluate_future(running.address, EXPENSIVE_EXPRESSION)
    time.sleep(0.05)
    pings_during = 0
    while not slow.done():
        if "WATCHDOG=1" in receiver.recv(4096).decode():
            pings_during += 1
    assert slow.result().value.isdigit()
    assert pings_during >= 2  # pinged every 0.2 s while the call ran

    running.process.send_signal(15)
    assert received(receiver, "STOPPING=1")[-1] == "STOPPING=1\nSTATUS=draining"
    assert running.process.wait(30) == 0
    channel.close()
