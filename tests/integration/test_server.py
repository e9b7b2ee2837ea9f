"""A real server on a real port: every RPC, every status path, health and reflection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from calcfleet.v1 import calculator_pb2 as pb
from calcfleet.v1 import calculator_pb2_grpc

from servers import EXPENSIVE_EXPRESSION, RunningServer


@pytest.fixture(scope="module")
def channel(shared_server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(shared_server.address) as opened:
        yield opened


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> calculator_pb2_grpc.CalculatorStub:
    return calculator_pb2_grpc.CalculatorStub(channel)


def failure(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


@pytest.mark.parametrize(
    ("operation", "a", "b", "value"),
    [
        ("ADD", "2", "3", "5"),
        ("SUBTRACT", "2", "3.5", "-1.5"),
        ("MULTIPLY", "12345678901234567890", "10", "123456789012345678900"),
        ("DIVIDE", "7", "2", "3.5"),
        ("FLOOR_DIVIDE", "-7", "2", "-4"),
        ("MODULO", "-7", "2", "1"),
        ("POWER", "2", "100", "1267650600228229401496703205376"),
        ("SQRT", "2", "", "1.4142135623730951"),
        ("NEGATE", "5", "", "-5"),
        ("ABSOLUTE", "-2.5", "", "2.5"),
        ("FACTORIAL", "10", "", "3628800"),
    ],
)
def test_calculate_applies_each_operation(
    stub: calculator_pb2_grpc.CalculatorStub, operation: str, a: str, b: str, value: str
) -> None:
    request = pb.CalculateRequest(operation=f"OPERATION_{operation}", a=a, b=b)
    assert stub.Calculate(request, timeout=5).value == value


@pytest.mark.parametrize(
    ("operation", "a", "b", "code", "message"),
    [
        ("ADD", "1", "x", "INVALID_ARGUMENT", "'x' is not a number"),
        ("ADD", "1_", "2", "INVALID_ARGUMENT", "'1_' is not a number"),
        ("NEGATE", "1e400", "", "OUT_OF_RANGE", "'1e400' is too large for a float"),
        ("ADD", "9" * 5000, "1", "OUT_OF_RANGE", "operand has 5000 digits"),
        ("DIVIDE", "1", "0", "INVALID_ARGUMENT", "division by zero in '/'"),
        ("SQRT", "-4", "", "INVALID_ARGUMENT", "sqrt(-4) is outside"),
        ("POWER", "9", "99999999", "OUT_OF_RANGE", "the limit is 65536"),
        ("UNSPECIFIED", "1", "2", "INVALID_ARGUMENT", "operation 0 is not one"),
    ],
)
def test_calculate_refuses_bad_operands(
    stub: calculator_pb2_grpc.CalculatorStub,
    operation: str,
    a: str,
    b: str,
    code: str,
    message: str,
) -> None:
    request = pb.CalculateRequest(operation=f"OPERATION_{operation}", a=a, b=b)
    error = failure(lambda: stub.Calculate(request, timeout=5))
    assert error.code() == getattr(grpc.StatusCode, code)
    assert message in error.details()


def test_evaluate_returns_exact_integer(
    stub: calculator_pb2_grpc.CalculatorStub,
) -> None:
    response = stub.Evaluate(pb.EvaluateRequest(expression="2**100 + 1"), timeout=5)
    assert response.value == "1267650600228229401496703205377"


def test_error_carries_bad_request_and_column_details(
    stub: calculator_pb2_grpc.CalculatorStub,
) -> None:
    error = failure(lambda: stub.Evaluate(pb.EvaluateRequest(expression="1 + 1/0")))
    status = rpc_status.from_call(error)
    assert status is not None
    assert status.message == "division by zero in '/' at column 6"
    bad_request = error_details_pb2.BadRequest()
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(bad_request)
    assert status.details[1].Unpack(info)
    assert bad_request.field_violations[0].field == "expression"
    assert (info.reason, info.metadata["column"]) == ("ArithmeticDomainError", "6")


def test_stream_answers_in_order_with_errors_in_place(
    stub: calculator_pb2_grpc.CalculatorStub,
) -> None:
    texts = ["1+1", "1/0", "2**10", "nope", "9**9**9**9", "6*7"]
    # One message of one expression, one of three, one of two.
    messages = [texts[:1], texts[1:4], texts[4:]]
    requests = iter([pb.StreamRequest(expressions=m) for m in messages])
    responses = list(stub.EvaluateStream(requests, timeout=10))
    assert [len(r.results) for r in responses] == [1, 3, 2]
    results = [result for response in responses for result in response.results]
    assert [r.index for r in results] == list(range(len(texts)))
    outcomes = [r.value if r.HasField("value") else r.error.code for r in results]
    assert outcomes == [
        "2",
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        "1024",
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        grpc.StatusCode.OUT_OF_RANGE.value[0],
        "42",
    ]
    assert results[1].error.message == "division by zero in '/' at column 2"


def test_stream_limits_each_message_not_the_stream(
    stub: calculator_pb2_grpc.CalculatorStub,
) -> None:
    # Scenario S2: 10,000 expressions of 441 bytes, 4.4 MB over one stream,
    # one expression to a message as the simplest client sends them.
    text = "1+" * 220 + "1"
    requests = (pb.StreamRequest(expressions=[text]) for _ in range(10_000))
    responses = stub.EvaluateStream(requests, timeout=120)
    results = [result for response in responses for result in response.results]
    assert len(results) == 10_000
    assert {r.value for r in results} == {"221"}
    assert [r.index for r in results] == list(range(10_000))


def test_cancelled_streams_leave_no_worker_behind(
    stub: calculator_pb2_grpc.CalculatorStub,
) -> None:
    # Scenario S3: twice as many abandoned streams as the evaluation pool has
    # threads, each cancelled while its costliest expression runs on a worker
    # thread; then a call that also needs a worker thread must still answer
    # inside a 1 s deadline. Without cancellation the abandoned work would
    # hold all four threads for a second or more.
    for _ in range(8):
        call = stub.EvaluateStream(iter([pb.StreamRequest(expressions=["1+1"])]))
        assert next(call).results[0].value == "2"
        call.cancel()
    for _ in range(8):
        gate = threading.Event()

        def requests(gate: threading.Event = gate) -> Iterator[pb.StreamRequest]:
            yield pb.StreamRequest(expressions=[EXPENSIVE_EXPRESSION])
            gate.wait(5)

        call = stub.EvaluateStream(requests())
        time.sleep(0.05)
        call.cancel()
        gate.set()
    offloaded = "+".join(["isqrt(2**65000)%7"] * 40)
    response = stub.Evaluate(pb.EvaluateRequest(expression=offloaded), timeout=1)
    assert int(response.value) >= 0


def test_client_deadline_is_honoured(stub: calculator_pb2_grpc.CalculatorStub) -> None:
    request = pb.EvaluateRequest(expression=EXPENSIVE_EXPRESSION)
    started = time.monotonic()
    error = failure(lambda: stub.Evaluate(request, timeout=0.1))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2


def test_expensive_expression_does_not_stall_cheap_ones(
    stub: calculator_pb2_grpc.CalculatorStub,
) -> None:
    slow = stub.Evaluate.future(pb.EvaluateRequest(expression=EXPENSIVE_EXPRESSION))
    latencies = []
    for _ in range(20):
        started = time.monotonic()
        stub.Evaluate(pb.EvaluateRequest(expression="1+1"), timeout=5)
        latencies.append(time.monotonic() - started)
    assert slow.result(timeout=30).value.isdigit()
    assert sorted(latencies)[len(latencies) // 2] < 0.1


def test_unknown_method_is_unimplemented(channel: grpc.Channel) -> None:
    # Scenario S6: an ALB's default health check path, which we do not serve.
    call = channel.unary_unary("/AWS.ALB/healthcheck")
    error = failure(lambda: call(b"", timeout=5))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


def test_plain_http1_request_is_refused_and_server_keeps_serving(
    shared_server: RunningServer, stub: calculator_pb2_grpc.CalculatorStub
) -> None:
    # Scenario S6: the server answers only in HTTP/2 (its SETTINGS frame, type
    # 4 in the frame header's fourth byte) and then closes the connection.
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: calcfleet\r\n\r\n")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert not reply.startswith(b"HTTP/")
    assert reply[3] == 0x04
    assert stub.Evaluate(pb.EvaluateRequest(expression="2+2"), timeout=5).value == "4"


def test_health_is_serving_for_the_server_and_its_services(
    channel: grpc.Channel,
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "calcfleet.v1.Calculator"]:
        request = health_pb2.HealthCheckRequest(service=service)
        response = health.Check(request, timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    unknown = health_pb2.HealthCheckRequest(service="no.such.Service")
    error = failure(lambda: health.Check(unknown, timeout=5))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_every_service(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    response = next(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in response.list_services_response.service}
    assert {"calcfleet.v1.Calculator", "grpc.health.v1.Health"} <= names


def test_health_fails_while_warming_up(tmp_path: Path) -> None:
    # Health is read by status code alone (as an ALB does), so a server that
    # is not yet SERVING must fail the call, not answer OK with NOT_SERVING.
    port = free_port()
    command = [sys.executable, "-m", "calcfleet.cli", "serve"]
    command += ["--listen", f"127.0.0.1:{port}"]
    env = {**os.environ, "CALCFLEET_SERVER_WARMUP_SECONDS": "3"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as opened:
            health = health_pb2_grpc.HealthStub(opened)
            check = health_pb2.HealthCheckRequest()
            while True:
                try:
                    health.Check(check, timeout=2, wait_for_ready=True)
                    pytest.fail("health answered SERVING before the warm-up ended")
                except grpc.RpcError as error:
                    if error.code() == grpc.StatusCode.UNAVAILABLE and (
                        error.details() == "server is NOT_SERVING"
                    ):
                        break
            # Watch keeps the standard meaning: it reports NOT_SERVING, then SERVING.
            statuses = []
            for answer in health.Watch(check, timeout=10):
                statuses.append(answer.status)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
            serving = health_pb2.HealthCheckResponse.SERVING
            assert statuses == [not_serving, serving]
            assert health.Check(check, timeout=5).status == serving
    finally:
        process.terminate()
        assert process.wait(30) == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
