"""Distributed jobs on three real servers that meet through a local registry."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from calcfleet.client import CallFailedError, Client
from calcfleet.v1 import jobs_pb2

from jobfleet import (
    last_of,
    squares,
    start_fleet,
    status,
    submit_here,
    sum_request,
    wait_for,
)
from servers import RunningServer, StartServer

BILLION = 10**9


@pytest.fixture
def fleet(start_server: StartServer, tmp_path: Path) -> list[RunningServer]:
    return start_fleet(start_server, tmp_path / "registry")


def test_sum_submitted_through_one_and_watched_through_another_is_exact(
    fleet: list[RunningServer],
) -> None:
    n = 400_000
    with Client(fleet[0].address) as first:
        job = first.submit(sum_request("k**2", 1, n))
    # The client's idempotency key picks the owner, which may be any instance.
    owner = job.id.split("@")[1]
    assert owner in {s.address for s in fleet}
    watched_through = next(s for s in fleet if s.address != owner)
    with Client(watched_through.address) as second:
        final = last_of(second, job.id)
        assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED
        assert final.value == squares(n)
        assert sorted(final.workers) == sorted(s.address for s in fleet)
        assert second.get_job(job.id).value == squares(n)


def test_sum_stays_exact_when_a_peer_is_killed_mid_job(
    fleet: list[RunningServer],
) -> None:
    n = 6_000_000
    victim = fleet[2]
    with Client(fleet[0].address) as owner, Client(fleet[1].address) as watcher:
        job = submit_here(owner, sum_request("k**2", 1, n))
        wait_for(lambda: status(victim).running_chunks > 0, 10, "chunk on the victim")
        victim.kill()
        progress = owner.get_job(job.id)
        assert progress.state == jobs_pb2.JOB_STATE_RUNNING
        final = last_of(watcher, job.id)
    assert final.value == squares(n)
    assert victim.process.returncode == -9
    assert f"failed on {victim.address}, running it elsewhere" in fleet[0].log_text()


def test_peer_drained_mid_job_exits_zero_and_the_job_stays_exact(
    fleet: list[RunningServer],
) -> None:
    """Scenario S1 on a peer: its chunks finish or go elsewhere; it exits 0."""
    n, owner, drained = 3_000_000, fleet[0], fleet[1]
    with Client(owner.address) as client:
        job = submit_here(client, sum_request("k**2", 1, n))
        wait_for(lambda: status(drained).running_chunks > 0, 10, "a chunk there")
        drained.process.terminate()
        assert drained.process.wait(timeout=15) == 0
        assert last_of(client, job.id).value == squares(n)
    assert "discovery - removed" in drained.log_text()


def test_chunks_of_a_frozen_peer_run_elsewhere_and_it_is_used_again_later(
    start_server: StartServer, tmp_path: Path
) -> None:
    """SIGSTOP keeps the peer's connections open: only the chunk timeout saves us."""
    fleet = start_fleet(start_server, tmp_path / "registry", chunk_timeout_seconds="1")
    n, owner, frozen = 3_000_000, fleet[0], fleet[2]
    with Client(owner.address) as client:
        job = submit_here(client, sum_request("k**2", 1, n))
        wait_for(lambda: status(frozen).running_chunks > 0, 10, "a chunk there")
        frozen.process.send_signal(signal.SIGSTOP)
        try:
            assert last_of(client, job.id).value == squares(n)
            assert frozen.address not in status(owner).peers
        finally:
            frozen.process.send_signal(signal.SIGCONT)
    wait_for(lambda: frozen.address in status(owner).peers, 5, "the peer back")
    assert f"failed on {frozen.address}, running it elsewhere: DEADLINE_EXCEEDED" in (
        owner.log_text()
    )


def test_cancel_stops_the_chunks_on_every_instance(
    fleet: list[RunningServer],
) -> None:
    with Client(fleet[0].address) as owner, Client(fleet[2].address) as other:
        job = submit_here(owner, sum_request("k**3", 1, BILLION))
        for server in fleet:
            wait_for(lambda s=server: status(s).running_chunks > 0, 10, "busy peers")
        cancelled = other.cancel_job(job.id)
        assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED
        for server in fleet:
            wait_for(lambda s=server: status(s).running_chunks == 0, 2, "idle peer")
            outcomes = {r.outcome for r in status(server).recent if r.job_id == job.id}
            assert outcomes <= {"ok", "cancelled"}, outcomes
        with pytest.raises(CallFailedError) as failure:
            last_of(other, job.id)
        assert failure.value.code == grpc.StatusCode.CANCELLED
        assert owner.get_job(job.id).error.message == f"job {job.id} was cancelled"


def test_same_idempotency_key_through_two_instances_is_one_job(
    fleet: list[RunningServer],
) -> None:
    request = sum_request("k", 1, 1000)
    with Client(fleet[0].address) as first, Client(fleet[1].address) as second:
        one = first.submit(request, key="order-42")
        two = second.submit(request, key="order-42")
        three = first.submit(request, key="order-42")
        assert one.id == two.id == three.id
        assert last_of(second, one.id).value == "500500"
        with pytest.raises(CallFailedError) as reuse:
            second.submit(sum_request("k", 1, 999), key="order-42")
    assert reuse.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert "order-42" in reuse.value.message


def test_billion_term_sum_with_a_50_ms_deadline_stops_everywhere_in_time(
    fleet: list[RunningServer],
) -> None:
    """Scenario S4: DEADLINE_EXCEEDED, no work left, peers got the remaining time."""
    with Client(fleet[1].address) as client:
        job = submit_here(client, sum_request("k**2", 1, BILLION), 0.05)
        with pytest.raises(CallFailedError) as failure:
            last_of(client, job.id, timeout=10)
        assert failure.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        for server in fleet:
            wait_for(lambda s=server: status(s).running_chunks == 0, 1, "idle")
    owner = fleet[1]
    here = [r for r in status(owner).recent if r.job_id == job.id]
    there = [
        r
        for s in fleet
        if s is not owner
        for r in status(s).recent
        if r.job_id == job.id
    ]
    assert here, "the owner did not even start a chunk"
    # Local chunks record what was left of the job (0 once it has passed);
    # peers record the deadline their call arrived with, never a fresh one.
    assert all(0 <= r.deadline_seconds <= 0.05 for r in here), here
    assert all(0 < r.deadline_seconds <= 0.05 for r in there), there
    outcomes = {r.outcome for r in here + there}
    assert outcomes <= {"ok", "deadline", "cancelled"}, outcomes


def test_one_failing_term_fails_the_whole_job_naming_it(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Scenario S5: Σ 1/(k-5), k = 0..10, chunks of 2 terms spread on three servers."""
    fleet = start_fleet(start_server, tmp_path / "registry", chunk_terms="2")
    with Client(fleet[0].address) as client:
        job = submit_here(client, sum_request("1/(k-5)", 0, 10))
        assert job.chunks_total == 6
        with pytest.raises(CallFailedError) as failure:
            last_of(client, job.id)
        final = client.get_job(job.id)
    assert failure.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.message == "term k=5: division by zero in '/' at column 2"
    assert final.state == jobs_pb2.JOB_STATE_FAILED
    assert final.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert final.value == ""
    for server in fleet:
        wait_for(lambda s=server: status(s).running_chunks == 0, 1, "idle")


def test_job_of_a_killed_owner_is_unavailable_and_of_a_drained_one_not_found(
    fleet: list[RunningServer],
) -> None:
    with Client(fleet[0].address) as first, Client(fleet[1].address) as second:
        killed = submit_here(first, sum_request("k", 1, BILLION)).id
        drained = submit_here(second, sum_request("k", 1, 10)).id
    fleet[0].kill()
    assert fleet[1].terminate() == 0
    with Client(fleet[2].address, timeout=15) as client:
        with pytest.raises(CallFailedError) as unavailable:
            client.get_job(killed)
        with pytest.raises(CallFailedError) as gone:
            client.get_job(drained)
    assert unavailable.value.code == grpc.StatusCode.UNAVAILABLE
    assert f"its owner {fleet[0].address} is not answering" in unavailable.value.message
    assert gone.value.code == grpc.StatusCode.NOT_FOUND
    assert f"its owner {fleet[1].address} is not part of this fleet" in (
        gone.value.message
    )


def test_limits_are_refused_at_submit_with_a_clear_status(
    fleet: list[RunningServer],
) -> None:
    cases = [
        (sum_request("k", 10, 1), "INVALID_ARGUMENT", "the range of k is empty"),
        (sum_request("k", 0, 10**11), "RESOURCE_EXHAUSTED", "the limit is"),
        (sum_request("k +", 0, 10), "INVALID_ARGUMENT", "column"),
        (
            jobs_pb2.SubmitJobRequest(
                integral=jobs_pb2.IntegralJob(
                    expression="x", lower="0", upper="1", intervals=3
                )
            ),
            "INVALID_ARGUMENT",
            "even number of intervals",
        ),
    ]
    with Client(fleet[0].address) as client:
        for request, code, words in cases:
            with pytest.raises(CallFailedError) as refused:
                client.submit(request)
            assert refused.value.code.name == code
            assert words in refused.value.message


def test_sigterm_while_a_job_runs_ends_the_watch_and_exits_zero(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Scenario S1 for jobs: health fails at once, the watch ends, exit 0 in time."""
    env = {"CALCFLEET_SERVER_GRACE_SECONDS": "2"}
    server = start_server(env=env)
    outcome: list[BaseException | jobs_pb2.Job] = []
    with Client(server.address) as client:
        job = client.submit(sum_request("k**2", 1, BILLION))

        def watch() -> None:
            try:
                outcome.append(last_of(client, job.id, timeout=30))
            except CallFailedError as error:
                outcome.append(error)

        watcher = threading.Thread(target=watch)
        watcher.start()
        wait_for(lambda: status(server).running_chunks == 1, 5, "a running chunk")
        server.process.terminate()
        wait_for(lambda: not client.is_serving(timeout=1), 1, "health failing")
        assert server.process.wait(timeout=6) == 0
        watcher.join(10)
    error = outcome[0]
    assert isinstance(error, CallFailedError)
    assert error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


def test_watch_through_another_instance_ends_unavailable_when_the_owner_dies(
    fleet: list[RunningServer],
) -> None:
    owner, relay = fleet[0], fleet[1]
    outcome: list[CallFailedError] = []
    with Client(owner.address) as first, Client(relay.address) as second:
        job = submit_here(first, sum_request("k", 1, BILLION))

        def watch() -> None:
            try:
                last_of(second, job.id, timeout=30)
            except CallFailedError as error:
                outcome.append(error)

        watcher = threading.Thread(target=watch)
        watcher.start()
        wait_for(lambda: status(owner).running_chunks > 0, 5, "work on the owner")
        owner.kill()
        started = time.monotonic()
        watcher.join(15)
        assert time.monotonic() - started < 5
    assert outcome[0].code == grpc.StatusCode.UNAVAILABLE
    assert f"its owner {owner.address} is not answering" in outcome[0].message
    for peer in fleet[1:]:
        wait_for(lambda p=peer: status(p).running_chunks == 0, 5, "orphans stopped")
