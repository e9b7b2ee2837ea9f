"""The Calculator service: single operations, expressions and streams of them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import AsyncIterator

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from calcfleet.errors import EvaluationError, ExpressionSyntaxError
from calcfleet.evaluator import Expression, SliceSpent, apply_operator, parse
from calcfleet.functions import FUNCTIONS
from calcfleet.numbers import Number, parse_operand, to_text
from calcfleet.settings import LimitSettings
from calcfleet.v1 import calculator_pb2 as pb
from calcfleet.v1 import calculator_pb2_grpc

log = logging.getLogger(__name__)

# An expression is first evaluated on the event loop; one that needs longer
# than this is moved to a worker thread, so that a few expensive requests
# cannot hold up the cheap ones (or the systemd watchdog ping).
INLINE_SLICE_SECONDS = 0.002

_BINARY = {
    pb.OPERATION_ADD: "+",
    pb.OPERATION_SUBTRACT: "-",
    pb.OPERATION_MULTIPLY: "*",
    pb.OPERATION_DIVIDE: "/",
    pb.OPERATION_FLOOR_DIVIDE: "//",
    pb.OPERATION_MODULO: "%",
    pb.OPERATION_POWER: "**",
}
_UNARY = {
    pb.OPERATION_SQRT: "sqrt",
    pb.OPERATION_ABSOLUTE: "abs",
    pb.OPERATION_FACTORIAL: "factorial",
}


class ExpressionRunner:
    """Evaluates expressions on the event loop, or on a worker thread when slow."""

    def __init__(self, limits: LimitSettings, workers: int = 4) -> None:
        self.limits = limits
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="evaluate"
        )

    async def run(self, text: str, deadline: float | None) -> Number:
        expression = parse(text, self.limits)
        try:
            return expression.evaluate(
                limits=self.limits,
                deadline=deadline,
                slice_seconds=INLINE_SLICE_SECONDS,
            )
        except SliceSpent:
            return await self._offload(expression, deadline)

    async def _offload(self, expression: Expression, deadline: float | None) -> Number:
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()
        try:
            return await loop.run_in_executor(
                self._pool,
                lambda: expression.evaluate(
                    limits=self.limits, deadline=deadline, cancelled=cancelled
                ),
            )
        except asyncio.CancelledError:
            # The caller went away (cancelled, deadline, drain): free the
            # thread at the evaluation's next operation, not at its budget.
            cancelled.set()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class CalculatorServicer(calculator_pb2_grpc.CalculatorServicer):
    def __init__(self, runner: ExpressionRunner) -> None:
        self._runner = runner

    async def Calculate(  # noqa: N802 - RPC names are the proto's
        self, request: pb.CalculateRequest, context: grpc.aio.ServicerContext
    ) -> pb.CalculateResponse:
        try:
            value = _calculate(request, self._runner.limits)
        except EvaluationError as error:
            await abort_with(context, error, field="operation")
        return pb.CalculateResponse(value=to_text(value))

    async def Evaluate(  # noqa: N802
        self, request: pb.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> pb.EvaluateResponse:
        try:
            value = await self._runner.run(request.expression, deadline_of(context))
        except EvaluationError as error:
            await abort_with(context, error, field="expression")
        return pb.EvaluateResponse(value=to_text(value))

    async def EvaluateStream(  # noqa: N802
        self,
        request_iterator: AsyncIterator[pb.StreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamResponse]:
        deadline = deadline_of(context)
        index = 0
        async for request in request_iterator:
            response = pb.StreamResponse()
            for text in request.expressions:
                response.results.append(await self._result(index, text, deadline))
                index += 1
            yield response

    async def _result(
        self, index: int, text: str, deadline: float | None
    ) -> pb.StreamResult:
        try:
            value = await self._runner.run(text, deadline)
        except EvaluationError as error:
            return pb.StreamResult(index=index, error=error_of(error))
        return pb.StreamResult(index=index, value=to_text(value))


def _calculate(request: pb.CalculateRequest, limits: LimitSettings) -> Number:
    operation = request.operation
    if operation in _BINARY:
        a, b = parse_operand(request.a), parse_operand(request.b)
        return apply_operator(_BINARY[operation], a, b, limits)
    if operation == pb.OPERATION_NEGATE:
        return -parse_operand(request.a)
    if operation in _UNARY:
        function = FUNCTIONS[_UNARY[operation]]
        return function.apply([parse_operand(request.a)], limits, None)
    raise ExpressionSyntaxError(f"operation {operation} is not one this server knows")


def error_of(error: EvaluationError) -> pb.Error:
    """An error as it travels inside a response: a stream's result, a chunk's."""
    return pb.Error(code=error.code.value[0], message=str(error))


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The caller's deadline as a time.monotonic() instant, or None without one."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


async def abort_with(
    context: grpc.aio.ServicerContext, error: EvaluationError, field: str
) -> None:
    """End the call with the error's status, a one-line message and rich details."""
    details = []
    if error.code == grpc.StatusCode.INVALID_ARGUMENT:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=field, description=str(error)
        )
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    metadata = {} if error.column is None else {"column": str(error.column)}
    details.append(
        error_details_pb2.ErrorInfo(
            reason=type(error).__name__, domain="calcfleet.v1", metadata=metadata
        )
    )
    status = status_pb2.Status(code=error.code.value[0], message=str(error))
    for detail in details:
        status.details.add().Pack(detail)
    await context.abort_with_status(rpc_status.to_status(status))
