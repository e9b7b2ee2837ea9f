"""The Jobs service: any instance answers, forwarding to the job's owner."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import NoReturn

import grpc

from calcfleet import discovery
from calcfleet.calculator import abort_with
from calcfleet.errors import EvaluationError
from calcfleet.jobs import RUNNING, SUCCEEDED, Job, JobRefusedError, JobTable
from calcfleet.peers import PeerSet
from calcfleet.settings import Settings
from calcfleet.v1 import jobs_pb2, jobs_pb2_grpc, worker_pb2, worker_pb2_grpc
from calcfleet.worker import ChunkRunner, WorkerServicer

log = logging.getLogger(__name__)

# Metadata on a Submit that one instance forwards to another: the receiver
# accepts it itself instead of forwarding again.
FORWARDED = "calcfleet-forwarded-by"
# Trailing metadata on a Watch that ends with the job's own failure, so that a
# forwarding instance relays it instead of blaming the owner.
JOB_FINISHED = "calcfleet-job-finished"
# Watch sends the job at least this often, and at most this often.
HEARTBEAT_SECONDS = 1.0
COALESCE_SECONDS = 0.1
UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class JobsServicer(jobs_pb2_grpc.JobsServicer):
    def __init__(self, table: JobTable, peers: PeerSet, settings: Settings) -> None:
        self._table = table
        self._peers = peers
        self._forward_seconds = settings.jobs.forward_timeout_seconds

    async def Submit(  # noqa: N802 - RPC names are the proto's
        self, request: jobs_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        owner = self._owner_for_key(request, context)
        if owner is not None:
            forwarded = await self._forward_submit(owner, request, context)
            if forwarded is not None:
                return forwarded
        try:
            return self._table.submit(request).snapshot()
        except JobRefusedError as error:
            await context.abort(error.code, str(error))
        except EvaluationError as error:
            await abort_with(context, error, field="job")
        raise AssertionError("abort returned")

    async def Get(  # noqa: N802
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        owner = await self._owner(request.job_id, context)
        if owner == self._peers.address:
            return (await self._local(request.job_id, context)).snapshot()
        try:
            return await self._stub(owner).Get(request, timeout=self._timeout(context))
        except grpc.aio.AioRpcError as error:
            await self._forward_failed(context, request.job_id, owner, error)

    async def Cancel(  # noqa: N802
        self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        owner = await self._owner(request.job_id, context)
        if owner == self._peers.address:
            job = await self._local(request.job_id, context)
            await self._table.cancel(job)
            return job.snapshot()
        try:
            stub = self._stub(owner)
            return await stub.Cancel(request, timeout=self._timeout(context))
        except grpc.aio.AioRpcError as error:
            await self._forward_failed(context, request.job_id, owner, error)

    async def Watch(  # noqa: N802
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.Job]:
        owner = await self._owner(request.job_id, context)
        if owner == self._peers.address:
            job = await self._local(request.job_id, context)
            async for snapshot in watch_here(job, context):
                yield snapshot
            return
        call = self._stub(owner).Watch(request, timeout=context.time_remaining())
        try:
            while True:
                silence = self._forward_seconds + HEARTBEAT_SECONDS
                snapshot = await asyncio.wait_for(call.read(), silence)
                if snapshot is grpc.aio.EOF:
                    return
                yield snapshot
        except TimeoutError:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"job {request.job_id}: its owner {owner} stopped sending updates",
            )
        except grpc.aio.AioRpcError as error:
            await self._forward_failed(context, request.job_id, owner, error)
        finally:
            call.cancel()

    def _owner_for_key(
        self, request: jobs_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> str | None:
        """The instance that owns jobs with this key: the same from every instance.

        Rendezvous hashing over the answering members: every instance that
        sees the same fleet picks the same owner, so a retried Submit that a
        load balancer sends elsewhere still finds the first job.
        """
        key = request.idempotency_key
        metadata = dict(context.invocation_metadata() or ())
        if not key or FORWARDED in metadata:
            return None
        members = [self._peers.address, *self._peers.usable()]
        owner = max(
            members, key=lambda a: hashlib.sha256(f"{key}\0{a}".encode()).digest()
        )
        return None if owner == self._peers.address else owner

    async def _forward_submit(
        self,
        owner: str,
        request: jobs_pb2.SubmitJobRequest,
        context: grpc.aio.ServicerContext,
    ) -> jobs_pb2.Job | None:
        try:
            return await self._stub(owner).Submit(
                request,
                timeout=self._timeout(context),
                metadata=((FORWARDED, self._peers.address),),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() not in UNREACHABLE:
                await _relay(context, error)
            # The key's owner is gone: accepting here keeps the service up; a
            # retry with the same key could then start a second job only if
            # the owner answers again before the retry, which docs/jobs.md notes.
            self._peers.mark_down(owner, f"{error.code().name}: {error.details()}")
            log.warning("job - key owner %s unreachable, accepting here", owner)
            return None

    async def _owner(self, job_id: str, context: grpc.aio.ServicerContext) -> str:
        token, at, owner = job_id.partition("@")
        if not token or not at or ":" not in owner:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{job_id!r} is not a job id (they read TOKEN@HOST:PORT)",
            )
        if not self._peers.is_member(owner):
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"job {job_id}: its owner {owner} is not part of this fleet "
                "(it stopped and deregistered, or never was)",
            )
        return owner

    async def _local(self, job_id: str, context: grpc.aio.ServicerContext) -> Job:
        job = self._table.get(job_id)
        if job is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"job {job_id} is not known here (expired, or its owner restarted)",
            )
        assert job is not None
        return job

    def _stub(self, owner: str) -> jobs_pb2_grpc.JobsStub:
        return jobs_pb2_grpc.JobsStub(self._peers.channel(owner))

    def _timeout(self, context: grpc.aio.ServicerContext) -> float:
        remaining = context.time_remaining()
        if remaining is None:
            return self._forward_seconds
        return min(self._forward_seconds, remaining)

    async def _forward_failed(
        self,
        context: grpc.aio.ServicerContext,
        job_id: str,
        owner: str,
        error: grpc.aio.AioRpcError,
    ) -> NoReturn:
        finished = any(
            key == JOB_FINISHED for key, _ in error.trailing_metadata() or ()
        )
        if error.code() in UNREACHABLE and not finished:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"job {job_id}: its owner {owner} is not answering "
                f"({error.code().name}: {error.details()})",
            )
        await _relay(context, error)
        raise AssertionError("abort returned")


async def watch_here(
    job: Job, context: grpc.aio.ServicerContext
) -> AsyncIterator[jobs_pb2.Job]:
    while True:
        # Decide on the snapshot sent, not on the job now: the job may finish
        # while the snapshot is on its way, and the final state must still go.
        seen, snapshot = job.version, job.snapshot()
        yield snapshot
        if snapshot.state != RUNNING:
            break
        await job.wait_change(seen, HEARTBEAT_SECONDS)
        if not job.is_finished:
            await asyncio.sleep(COALESCE_SECONDS)
    if job.state != SUCCEEDED:
        context.set_trailing_metadata(((JOB_FINISHED, "1"),))
        await context.abort(job.error_code, job.outcome.error.message)


async def _relay(
    context: grpc.aio.ServicerContext, error: grpc.aio.AioRpcError
) -> NoReturn:
    """End this call with the status (and rich details) another instance gave."""
    await context.abort(
        error.code(),
        error.details() or "",
        trailing_metadata=tuple(error.trailing_metadata() or ()),
    )
    raise AssertionError("abort returned")


class JobsComponent:
    """Jobs and Worker services on the server's port; registration with discovery."""

    service_names: tuple[str, ...] = (
        jobs_pb2.DESCRIPTOR.services_by_name["Jobs"].full_name,
        worker_pb2.DESCRIPTOR.services_by_name["Worker"].full_name,
    )

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runner = ChunkRunner(settings.limits, settings.jobs.chunk_threads)
        self.peers = PeerSet(discovery.from_settings(settings.discovery), settings)
        self.table = JobTable(settings, self.runner, self.peers)
        self._stopping: asyncio.Task[None] | None = None

    def add_to(self, server: grpc.aio.Server) -> None:
        jobs = JobsServicer(self.table, self.peers, self.settings)
        jobs_pb2_grpc.add_JobsServicer_to_server(jobs, server)
        worker = WorkerServicer(
            self.runner, lambda: self.peers.address, self.peers.usable
        )
        worker_pb2_grpc.add_WorkerServicer_to_server(worker, server)

    async def start(self, address: str) -> None:
        await self.peers.start(address)

    async def stop(self) -> None:
        """Deregister first, so peers stop sending chunks; jobs get the grace."""
        await self.peers.stop()
        grace = self.settings.server.grace_seconds
        self._stopping = asyncio.create_task(self.table.stop_all(grace * 0.8))

    async def close(self) -> None:
        """Runs once the server has stopped: let the jobs' own drain finish."""
        if self._stopping is not None:
            await self._stopping
        await self.peers.close()
        self.runner.close()
