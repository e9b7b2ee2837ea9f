"""Chunks computed on this instance's threads, and the Worker service peers call."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable

import grpc

from calcfleet import chunks
from calcfleet.calculator import abort_with, deadline_of
from calcfleet.errors import DeadlinePassedError
from calcfleet.settings import LimitSettings
from calcfleet.v1 import worker_pb2, worker_pb2_grpc

# How many finished chunks Status reports; enough for a test or an operator
# to see what one job did here, small enough to copy on every call.
HISTORY = 200


class ChunkRunner:
    """Computes chunks on worker threads, so the event loop keeps answering.

    `running` counts chunks whose thread is computing right now: the number a
    test reads to see that a cancelled job left no work behind.
    """

    def __init__(self, limits: LimitSettings, threads: int) -> None:
        self.limits = limits
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="chunk"
        )
        self._lock = threading.Lock()
        self._running = 0
        self._recent: collections.deque[worker_pb2.ChunkRecord] = collections.deque(
            maxlen=HISTORY
        )

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def recent(self) -> list[worker_pb2.ChunkRecord]:
        with self._lock:
            return [_copy(record) for record in self._recent]

    async def run(
        self, chunk: worker_pb2.Chunk, deadline: float | None
    ) -> worker_pb2.ChunkResult:
        """Compute one chunk; cancelling the caller stops the thread soon."""
        remaining = 0.0 if deadline is None else max(0.0, deadline - time.monotonic())
        record = worker_pb2.ChunkRecord(
            job_id=chunk.job_id,
            index=chunk.index,
            deadline_seconds=remaining,
            outcome="queued",
        )
        with self._lock:
            self._recent.append(record)
        cancelled = threading.Event()
        check = chunks.stop_check(cancelled, deadline)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._pool, self._compute, chunk, check, record
            )
        except asyncio.CancelledError:
            cancelled.set()
            with self._lock:
                if record.outcome == "queued":  # its thread never started
                    record.outcome = "cancelled"
            raise

    def _compute(
        self,
        chunk: worker_pb2.Chunk,
        check: chunks.StopCheck,
        record: worker_pb2.ChunkRecord,
    ) -> worker_pb2.ChunkResult:
        with self._lock:
            self._running += 1
            record.outcome = "running"
        started, outcome = time.monotonic(), "error"
        try:
            check()
            result = chunks.compute(chunk, self.limits, check)
            outcome = "error" if result.HasField("error") else "ok"
            return result
        except chunks.ChunkCancelledError:
            outcome = "cancelled"
            raise
        except DeadlinePassedError:
            outcome = "deadline"
            raise
        finally:
            with self._lock:
                self._running -= 1
                record.outcome = outcome
                record.seconds = time.monotonic() - started

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _copy(record: worker_pb2.ChunkRecord) -> worker_pb2.ChunkRecord:
    copy = worker_pb2.ChunkRecord()
    copy.CopyFrom(record)
    return copy


class WorkerServicer(worker_pb2_grpc.WorkerServicer):
    def __init__(
        self,
        runner: ChunkRunner,
        address: Callable[[], str],
        peers: Callable[[], list[str]],
    ) -> None:
        self._runner = runner
        self._address = address
        self._peers = peers

    async def RunChunk(  # noqa: N802 - RPC names are the proto's
        self, request: worker_pb2.Chunk, context: grpc.aio.ServicerContext
    ) -> worker_pb2.ChunkResult:
        try:
            return await self._runner.run(request, deadline_of(context))
        except DeadlinePassedError as error:
            await abort_with(context, error, field="chunk")
        except chunks.ChunkCancelledError as error:
            await context.abort(grpc.StatusCode.CANCELLED, str(error))
        raise AssertionError("abort returned")

    async def Status(  # noqa: N802
        self, request: worker_pb2.WorkerStatusRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.WorkerStatus:
        return worker_pb2.WorkerStatus(
            address=self._address(),
            running_chunks=self._runner.running,
            peers=self._peers(),
            recent=self._runner.recent(),
        )
