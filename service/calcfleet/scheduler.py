"""One job's chunks run to completion here and on peers, whoever fails on the way."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from calcfleet.chunks import error_code
from calcfleet.errors import CalcfleetError, DeadlinePassedError
from calcfleet.peers import PeerSet
from calcfleet.settings import JobSettings
from calcfleet.v1 import worker_pb2, worker_pb2_grpc
from calcfleet.worker import ChunkRunner

log = logging.getLogger(__name__)

# (chunk index, its result, the address of the instance that computed it)
OnChunk = Callable[[int, worker_pb2.ChunkResult, str], None]
# A chunk's result and who computed it, or None when that slot gave up on it.
Outcome = tuple[worker_pb2.ChunkResult, str] | None
Slot = Callable[[worker_pb2.Chunk], Awaitable[Outcome]]


class JobFailedError(CalcfleetError):
    """A term failed, the deadline passed or chunks kept failing: the job ends."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class ChunkScheduler:
    """Hands a job's chunks to slots (here and on each usable peer) until all are done.

    Each slot takes the next chunk from one queue, so faster instances take
    more. A peer that fails a call is dropped from the peer set and its chunk
    goes back into the queue; the local slot never gives up, so the job needs
    no peer to finish. Chunks are combined in index order by the caller, so
    the result does not depend on who computed what.
    """

    def __init__(  # noqa: PLR0917 - one job's parts, each distinct
        self,
        job_id: str,
        chunks: list[worker_pb2.Chunk],
        deadline: float | None,
        runner: ChunkRunner,
        peers: PeerSet,
        settings: JobSettings,
    ) -> None:
        self.job_id = job_id
        self.deadline = deadline
        self._chunks = chunks
        self._runner = runner
        self._peers = peers
        self._settings = settings
        self._queue: asyncio.Queue[worker_pb2.Chunk | None] = asyncio.Queue()
        self._results: dict[int, worker_pb2.ChunkResult] = {}
        self._attempts: dict[int, int] = {}
        self._slots = 0

    async def run(self, on_chunk: OnChunk) -> list[worker_pb2.ChunkResult]:
        """Every chunk's result, in chunk order; cancelling this stops every chunk."""
        for chunk in self._chunks:
            chunk.job_id = self.job_id
            self._queue.put_nowait(chunk)
        slots = [self._local() for _ in range(self._settings.chunk_threads)]
        for address in self._peers.usable():
            slots += [self._remote(address) for _ in range(self._settings.peer_slots)]
        self._slots = len(slots)
        tasks = [asyncio.create_task(self._take_chunks(s, on_chunk)) for s in slots]
        try:
            await asyncio.gather(*tasks)
        finally:
            # A failed slot, a cancelled job or a passed deadline: stop every
            # other slot, which cancels its RunChunk call or its local thread.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return [self._results[index] for index in range(len(self._chunks))]

    async def _take_chunks(self, slot: Slot, on_chunk: OnChunk) -> None:
        while (chunk := await self._queue.get()) is not None:
            outcome = await slot(chunk)
            if outcome is None:
                self._retry(chunk)
                return
            result, worker = outcome
            if result.HasField("error"):
                raise JobFailedError(error_code(result), result.error.message)
            self._results[chunk.index] = result
            on_chunk(chunk.index, result, worker)
            if len(self._results) == len(self._chunks):
                for _ in range(self._slots):
                    self._queue.put_nowait(None)

    def _local(self) -> Slot:
        async def run_here(chunk: worker_pb2.Chunk) -> Outcome:
            attempt_deadline = time.monotonic() + self._settings.chunk_timeout_seconds
            if self.deadline is not None:
                attempt_deadline = min(attempt_deadline, self.deadline)
            while True:
                try:
                    result = await self._runner.run(chunk, attempt_deadline)
                    return result, self._peers.address
                except DeadlinePassedError:
                    self._check_deadline()
                    self._count_attempt(chunk, "here: took longer than chunk timeout")
                    attempt_deadline = time.monotonic() + self._timeout()

        return run_here

    def _remote(self, address: str) -> Slot:
        stub = worker_pb2_grpc.WorkerStub(self._peers.channel(address))

        async def run_there(chunk: worker_pb2.Chunk) -> Outcome:
            try:
                result = await stub.RunChunk(chunk, timeout=self._timeout())
                return result, address
            except (grpc.aio.AioRpcError, asyncio.CancelledError) as error:
                if _is_cancelling(error):
                    raise
                self._check_deadline()
                reason = _reason(error)
                log.warning(
                    "job - %s chunk %d failed on %s, running it elsewhere: %s",
                    self.job_id,
                    chunk.index,
                    address,
                    reason,
                )
                self._peers.mark_down(address, reason)
                self._count_attempt(chunk, f"{address}: {reason}")
                return None

        return run_there

    def _timeout(self) -> float:
        """The chunk timeout, or what remains of the job's deadline if that is less."""
        timeout = self._settings.chunk_timeout_seconds
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
        self._check_deadline()
        return timeout

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise JobFailedError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "the job's deadline passed"
            )

    def _count_attempt(self, chunk: worker_pb2.Chunk, reason: str) -> None:
        attempts = self._attempts.get(chunk.index, 0) + 1
        self._attempts[chunk.index] = attempts
        if attempts >= self._settings.max_chunk_attempts:
            raise JobFailedError(
                grpc.StatusCode.UNAVAILABLE,
                f"chunk {chunk.index} failed {attempts} times, last on {reason}",
            )

    def _retry(self, chunk: worker_pb2.Chunk) -> None:
        self._slots -= 1
        self._queue.put_nowait(chunk)


def _is_cancelling(error: BaseException) -> bool:
    """True when this task itself is being cancelled, not just the call it made.

    grpc.aio raises CancelledError also when the call's channel is closed
    under it; that is a failure of the peer, to be retried elsewhere.
    """
    task = asyncio.current_task()
    return isinstance(error, asyncio.CancelledError) and (
        task is None or task.cancelling() > 0
    )


def _reason(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return "the call was cancelled under it"
