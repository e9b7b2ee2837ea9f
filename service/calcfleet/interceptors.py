"""Turns an unexpected exception in a handler into INTERNAL, never UNKNOWN."""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

log = logging.getLogger(__name__)


class InternalErrorInterceptor(grpc.aio.ServerInterceptor):
    """Logs a bug with its traceback and answers the caller with INTERNAL.

    Without it grpc.aio answers UNKNOWN with the exception's text, which
    tells a client nothing it can act on and may show it internals. Errors
    that a handler meant to send (context.abort) pass through unchanged.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary:
            return handler._replace(
                unary_unary=_guard_unary(handler.unary_unary, method)
            )
        if handler.stream_unary:
            return handler._replace(
                stream_unary=_guard_unary(handler.stream_unary, method)
            )
        if handler.unary_stream:
            return handler._replace(
                unary_stream=_guard_stream(handler.unary_stream, method)
            )
        return handler._replace(
            stream_stream=_guard_stream(handler.stream_stream, method)
        )


def _guard_unary(behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(request, context)
        except Exception as error:  # everything but an abort is a bug
            await _abort_internal(context, method, error)

    return guarded


def _guard_stream(behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
    async def guarded(
        request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            responses = behaviour(request, context)
            if inspect.isasyncgen(responses):
                async for response in responses:
                    yield response
            else:
                # A handler that writes with context.write() returns a
                # coroutine instead of yielding (grpc_health's Watch does).
                await responses
        except Exception as error:
            await _abort_internal(context, method, error)

    return guarded


async def _abort_internal(
    context: grpc.aio.ServicerContext, method: str, error: Exception
) -> None:
    # context.abort raises an exception of grpc's own to end the call; a
    # handler that aborted already raised it, and it must pass through.
    if isinstance(error, grpc.aio.AbortError) or context.code() not in (
        None,
        grpc.StatusCode.OK,
    ):
        raise error
    incident = uuid.uuid4().hex[:12]
    log.error(
        "server - %s failed (incident %s)",
        method,
        incident,
        exc_info=error,
        extra={"CALCFLEET_INCIDENT": incident},
    )
    await context.abort(
        grpc.StatusCode.INTERNAL,
        f"internal error in {method}; the server logged it as incident {incident}",
    )
