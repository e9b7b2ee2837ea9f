"""A bug in a handler reaches the client as INTERNAL with an incident id."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from calcfleet.interceptors import InternalErrorInterceptor
from calcfleet.v1 import calculator_pb2 as pb
from calcfleet.v1 import calculator_pb2_grpc


class BrokenCalculator(calculator_pb2_grpc.CalculatorServicer):
    """A servicer with a bug in each kind of method: the fault under test."""

    async def Evaluate(  # noqa: N802
        self, request: pb.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> pb.EvaluateResponse:
        if request.expression == "abort":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "meant to fail")
        raise KeyError("a bug")

    async def EvaluateStream(  # noqa: N802
        self,
        request_iterator: AsyncIterator[pb.StreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamResponse]:
        async for _ in request_iterator:
            yield pb.StreamResponse()
            raise ZeroDivisionError("another bug")


async def calls() -> tuple[grpc.aio.AioRpcError, ...]:
    server = grpc.aio.server(interceptors=[InternalErrorInterceptor()])
    calculator_pb2_grpc.add_CalculatorServicer_to_server(BrokenCalculator(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    errors = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        for expression in ("bug", "abort"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Evaluate(pb.EvaluateRequest(expression=expression))
            errors.append(caught.value)
        call = stub.EvaluateStream(iter([pb.StreamRequest(expressions=["1"])]))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
        errors.append(caught.value)
    await server.stop(0)
    return tuple(errors)


def test_bugs_are_internal_and_aborts_pass_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="calcfleet.interceptors"):
        bug, abort, stream_bug = asyncio.run(calls())

    assert bug.code() == grpc.StatusCode.INTERNAL
    assert bug.details().startswith(
        "internal error in /calcfleet.v1.Calculator/Evaluate; "
        "the server logged it as incident "
    )
    assert (abort.code(), abort.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "meant to fail",
    )
    assert stream_bug.code() == grpc.StatusCode.INTERNAL
    incident = bug.details().rsplit(" ", 1)[1]
    logged = [r for r in caplog.records if incident in r.getMessage()]
    assert logged[0].exc_info is not None
    assert logged[0].exc_info[0] is KeyError
