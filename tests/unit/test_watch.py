"""Watching a job: the final state is always sent, however the timing falls."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from calcfleet import chunks
from calcfleet.jobs import Job
from calcfleet.jobservice import watch_here
from calcfleet.settings import JobSettings, LimitSettings
from calcfleet.v1 import jobs_pb2


class _Context:
    """The one part of a servicer context a successful watch touches: nothing."""

    def set_trailing_metadata(self, metadata: Any) -> None:
        raise AssertionError("a succeeded job sets no trailing metadata")


def _job() -> Job:
    request = jobs_pb2.SubmitJobRequest(
        sum=jobs_pb2.SumJob(expression="k", start=1, stop=10)
    )
    pieces = chunks.split(request, JobSettings(), LimitSettings())
    return Job("token@127.0.0.1:1", request, pieces, LimitSettings())


def test_job_finishing_while_an_update_is_in_flight_still_sends_its_end() -> None:
    async def scenario() -> list[jobs_pb2.Job]:
        job = _job()
        updates = watch_here(job, _Context())  # type: ignore[arg-type]
        first = await anext(updates)
        # The job finishes while `first` is on its way to the client.
        job.finish(
            jobs_pb2.JOB_STATE_SUCCEEDED,
            jobs_pb2.Job(value="55"),
            grpc.StatusCode.OK,
        )
        last = await asyncio.wait_for(anext(updates), 0.5)
        return [first, last, *[update async for update in updates]]

    first, last = asyncio.run(scenario())
    assert first.state == jobs_pb2.JOB_STATE_RUNNING
    assert (last.state, last.value) == (jobs_pb2.JOB_STATE_SUCCEEDED, "55")
