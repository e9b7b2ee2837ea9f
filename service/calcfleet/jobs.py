"""Jobs owned by this instance: their state, their progress and their life."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time

import grpc

from calcfleet import chunks
from calcfleet.errors import CalcfleetError, EvaluationError
from calcfleet.peers import PeerSet
from calcfleet.scheduler import ChunkScheduler, JobFailedError
from calcfleet.settings import LimitSettings, Settings
from calcfleet.v1 import calculator_pb2, jobs_pb2, worker_pb2
from calcfleet.worker import ChunkRunner

log = logging.getLogger(__name__)

RUNNING = jobs_pb2.JOB_STATE_RUNNING
SUCCEEDED = jobs_pb2.JOB_STATE_SUCCEEDED
FAILED = jobs_pb2.JOB_STATE_FAILED
CANCELLED = jobs_pb2.JOB_STATE_CANCELLED
MAX_KEY_LENGTH = 128


class JobRefusedError(CalcfleetError):
    """A job this instance will not start; `code` is the status it earns."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class Job:
    """One job's request, chunks and outcome; watchers wait on `changed`."""

    def __init__(
        self,
        job_id: str,
        request: jobs_pb2.SubmitJobRequest,
        chunk_list: list[worker_pb2.Chunk],
        limits: LimitSettings,
    ) -> None:
        self.id = job_id
        self.limits = limits
        self.request = request
        self.kind = chunks.kind_of(request)
        self.chunks = chunk_list
        self.chunks_total = len(chunk_list)
        self.chunks_done = 0
        self.state = RUNNING
        self.results: dict[int, worker_pb2.ChunkResult] = {}
        self.workers: set[str] = set()
        self.outcome = jobs_pb2.Job()
        self.error_code = grpc.StatusCode.OK
        self.finished_at: float | None = None
        self.task: asyncio.Task[None] | None = None
        # Counts changes, so that a watcher misses none between two waits.
        self.version = 0
        self._changed = asyncio.Event()

    @property
    def is_finished(self) -> bool:
        return self.state != RUNNING

    def on_chunk(self, index: int, result: worker_pb2.ChunkResult, worker: str) -> None:
        self.results[index] = result
        self.chunks_done += 1
        self.workers.add(worker)
        self._notify()

    def finish(
        self,
        state: jobs_pb2.JobState,
        outcome: jobs_pb2.Job,
        code: grpc.StatusCode,
    ) -> None:
        if self.is_finished:
            return
        self.state, self.outcome, self.error_code = state, outcome, code
        self.finished_at = time.monotonic()
        # A finished job is kept for an hour; its chunks and their results
        # (up to max_chunks of each) are not needed for that.
        self.chunks = []
        self.results = {}
        self._notify()

    def fail(self, code: grpc.StatusCode, message: str) -> None:
        error = calculator_pb2.Error(code=code.value[0], message=message)
        state = CANCELLED if code == grpc.StatusCode.CANCELLED else FAILED
        self.finish(state, jobs_pb2.Job(error=error), code)
        log.info("job - %s %s: %s", self.id, code.name.lower(), message)

    async def wait_change(self, seen: int, timeout: float) -> None:
        """Return once the job's version is past `seen`, or after `timeout`."""
        if self.version != seen:
            return
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)

    def snapshot(self) -> jobs_pb2.Job:
        done, total = self.chunks_done, self.chunks_total
        job = jobs_pb2.Job(
            id=self.id,
            state=self.state,
            kind=self.kind,
            chunks_total=total,
            chunks_done=done,
            fraction_done=done / total if total else 1.0,
            workers=sorted(self.workers),
        )
        job.MergeFrom(self.outcome)
        if self.state == RUNNING and self.kind in ("sum", "prime_count"):
            values = [result.value for result in self.results.values()]
            with contextlib.suppress(EvaluationError, ValueError):
                job.partial_value = chunks.combine_values(
                    self.request, values, self.limits
                )
        return job

    def _notify(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()


class JobTable:
    """The jobs this instance owns, by id and by idempotency key."""

    def __init__(self, settings: Settings, runner: ChunkRunner, peers: PeerSet) -> None:
        self.settings = settings
        self._runner = runner
        self._peers = peers
        self._jobs: dict[str, Job] = {}
        self._keys: dict[str, tuple[str, str]] = {}

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def submit(self, request: jobs_pb2.SubmitJobRequest) -> Job:
        """Check, split and start a job, or return the one its key already started."""
        self._forget_old()
        existing = self._by_key(request)
        if existing is not None:
            return existing
        running = sum(not job.is_finished for job in self._jobs.values())
        if running >= self.settings.jobs.max_running_jobs:
            raise JobRefusedError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{running} jobs are running here; the limit is "
                f"{self.settings.jobs.max_running_jobs}",
            )
        chunk_list = chunks.split(request, self.settings.jobs, self.settings.limits)
        job_id = f"{secrets.token_hex(8)}@{self._peers.address}"
        job = Job(job_id, request, chunk_list, self.settings.limits)
        self._jobs[job.id] = job
        if request.idempotency_key:
            self._keys[request.idempotency_key] = (job.id, _fingerprint(request))
        deadline = None
        if request.HasField("timeout"):
            deadline = time.monotonic() + request.timeout.ToTimedelta().total_seconds()
        job.task = asyncio.create_task(self._run(job, deadline))
        log.info(
            "job - %s accepted: %s in %d chunks", job.id, job.kind, len(chunk_list)
        )
        return job

    async def cancel(self, job: Job) -> None:
        """Cancel a running job and wait until its chunks were told to stop."""
        job.fail(grpc.StatusCode.CANCELLED, f"job {job.id} was cancelled")
        if job.task is not None:
            job.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job.task

    async def stop_all(self, grace: float) -> None:
        """At drain: let running jobs finish within the grace, then fail them."""
        tasks = [
            job.task for job in self._jobs.values() if job.task and not job.is_finished
        ]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for job in list(self._jobs.values()):
            if not job.is_finished:
                job.fail(
                    grpc.StatusCode.UNAVAILABLE,
                    f"instance {self._peers.address} stopped before job {job.id} "
                    "finished; submit it again",
                )
                if job.task is not None:
                    job.task.cancel()

    async def _run(self, job: Job, deadline: float | None) -> None:
        scheduler = ChunkScheduler(
            job.id, job.chunks, deadline, self._runner, self._peers, self.settings.jobs
        )
        try:
            async with asyncio.timeout_at(deadline):
                results = await scheduler.run(job.on_chunk)
            job.finish(SUCCEEDED, self._outcome(job, results), grpc.StatusCode.OK)
            log.info("job - %s succeeded on %s", job.id, ", ".join(sorted(job.workers)))
        except TimeoutError:
            job.fail(grpc.StatusCode.DEADLINE_EXCEEDED, "the job's deadline passed")
        except (JobFailedError, EvaluationError) as error:
            job.fail(error.code, str(error))
        finally:
            # Whatever ended the task (a bug included), watchers get an end.
            if not job.is_finished:
                log.error("job - %s ended without an outcome", job.id)
                job.fail(grpc.StatusCode.INTERNAL, "the job ended without a result")

    def _outcome(self, job: Job, results: list[worker_pb2.ChunkResult]) -> jobs_pb2.Job:
        if job.kind == "batch":
            size = self.settings.jobs.batch_chunk_size
            return jobs_pb2.Job(results=chunks.renumber(results, size))
        values = [result.value for result in results]
        return jobs_pb2.Job(
            value=chunks.combine_values(job.request, values, self.settings.limits)
        )

    def _by_key(self, request: jobs_pb2.SubmitJobRequest) -> Job | None:
        key = request.idempotency_key
        if len(key) > MAX_KEY_LENGTH:
            raise JobRefusedError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"idempotency key is {len(key)} characters; the limit is "
                f"{MAX_KEY_LENGTH}",
            )
        if not key or key not in self._keys:
            return None
        job_id, fingerprint = self._keys[key]
        if fingerprint != _fingerprint(request):
            raise JobRefusedError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"idempotency key {key!r} was used for another job ({job_id})",
            )
        return self._jobs[job_id]

    def _forget_old(self) -> None:
        horizon = time.monotonic() - self.settings.jobs.retention_seconds
        old = [
            job.id
            for job in self._jobs.values()
            if job.finished_at is not None and job.finished_at < horizon
        ]
        for job_id in old:
            del self._jobs[job_id]
        self._keys = {k: v for k, v in self._keys.items() if v[0] in self._jobs}


def _fingerprint(request: jobs_pb2.SubmitJobRequest) -> str:
    """What the job asks for, without its key: the same key must mean the same job."""
    copy = jobs_pb2.SubmitJobRequest()
    copy.CopyFrom(request)
    copy.ClearField("idempotency_key")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()
