"""Every expression users reported against comparable evaluators, sent to a real server.

tests/data/expressions.tsv is the reported list, kept verbatim; its header
explains the format. After each case the server must still answer a cheap
call quickly, so an expensive case cannot hide behind a passing status.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from calcfleet.v1 import calculator_pb2 as pb
from calcfleet.v1 import calculator_pb2_grpc

from servers import RunningServer

CASES = Path(__file__).parent.parent / "data" / "expressions.tsv"
# What "still answers at normal speed" means for the follow-up call.
FOLLOW_UP_SECONDS = 0.5


@dataclasses.dataclass(frozen=True)
class Case:
    expression: str
    outcomes: tuple[str, ...]
    max_seconds: float
    line: int


def _expand(text: str) -> str:
    return re.sub(r"\{(\d+)\*(.*?)\}", lambda m: m.group(2) * int(m.group(1)), text)


def _cases() -> list[Case]:
    cases = []
    for number, line in enumerate(CASES.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        expression, expected, seconds = line.split("\t")
        outcomes = tuple(_expand(part) for part in expected.split(" or "))
        cases.append(Case(_expand(expression), outcomes, float(seconds), number))
    return cases


def _matches(outcome: str, value: str | None, code: grpc.StatusCode | None) -> bool:
    if outcome.startswith("="):
        return value == outcome[1:]
    if outcome.startswith("~"):
        expected = float(outcome[1:])
        return value is not None and math.isclose(float(value), expected, rel_tol=1e-9)
    if outcome.startswith("!"):
        return code is not None and code.name in outcome[1:].split("|")
    raise ValueError(f"unknown outcome {outcome!r}")


@pytest.fixture(scope="module")
def stub(shared_server: RunningServer) -> Iterator[calculator_pb2_grpc.CalculatorStub]:
    # A client that may send more than the server accepts, to test its limit.
    options = [("grpc.max_send_message_length", 16 << 20)]
    with grpc.insecure_channel(shared_server.address, options=options) as channel:
        yield calculator_pb2_grpc.CalculatorStub(channel)


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"line{c.line}")
def test_reported_expression(
    case: Case, stub: calculator_pb2_grpc.CalculatorStub
) -> None:
    started = time.monotonic()
    value: str | None = None
    code: grpc.StatusCode | None = None
    try:
        request = pb.EvaluateRequest(expression=case.expression)
        value = stub.Evaluate(request, timeout=case.max_seconds + 5).value
    except grpc.RpcError as error:
        code = error.code()
    elapsed = time.monotonic() - started

    shown = value if value is None or len(value) < 60 else value[:57] + "..."
    assert any(_matches(o, value, code) for o in case.outcomes), (shown, code)
    assert code != grpc.StatusCode.UNKNOWN
    assert elapsed <= case.max_seconds, f"took {elapsed:.2f} s"

    follow_up = time.monotonic()
    assert stub.Evaluate(pb.EvaluateRequest(expression="6*7"), timeout=5).value == "42"
    assert time.monotonic() - follow_up < FOLLOW_UP_SECONDS
