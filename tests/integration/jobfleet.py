"""Helpers for job tests: a fleet of real servers sharing a local registry."""

from __future__ import annotations

import time
from pathlib import Path

import grpc

from calcfleet.client import Client
from calcfleet.v1 import jobs_pb2, worker_pb2, worker_pb2_grpc

from servers import RunningServer, StartServer


def fleet_env(registry: Path, **jobs: str) -> dict[str, str]:
    env = {
        "CALCFLEET_DISCOVERY_BACKEND": "local",
        "CALCFLEET_DISCOVERY_REGISTRY_DIR": str(registry),
        "CALCFLEET_DISCOVERY_REFRESH_SECONDS": "0.3",
    }
    env.update({f"CALCFLEET_JOBS_{k.upper()}": v for k, v in jobs.items()})
    return env


def start_fleet(
    start_server: StartServer, registry: Path, size: int = 3, **jobs: str
) -> list[RunningServer]:
    """`size` servers that all see each other as usable peers."""
    servers = [start_server(env=fleet_env(registry, **jobs)) for _ in range(size)]
    for server in servers:
        wait_for(lambda s=server: len(status(s).peers) == size - 1, 10, "peers")
    return servers


def status(server: RunningServer) -> worker_pb2.WorkerStatus:
    with grpc.insecure_channel(server.address) as channel:
        stub = worker_pb2_grpc.WorkerStub(channel)
        return stub.Status(worker_pb2.WorkerStatusRequest(), timeout=5)


def wait_for(condition: object, seconds: float, what: str) -> float:
    """Poll until condition() is true; returns the seconds it took."""
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - started > seconds:
            raise AssertionError(f"no {what} within {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - started


def sum_request(expression: str, start: int, stop: int) -> jobs_pb2.SubmitJobRequest:
    job = jobs_pb2.SumJob(expression=expression, start=start, stop=stop)
    return jobs_pb2.SubmitJobRequest(sum=job)


def last_of(client: Client, job_id: str, timeout: float = 60) -> jobs_pb2.Job:
    snapshots = list(client.watch_job(job_id, timeout=timeout))
    assert snapshots, "the watch ended without a single update"
    return snapshots[-1]


def squares(n: int) -> str:
    return str(n * (n + 1) * (2 * n + 1) // 6)


def submit_here(
    client: Client, request: jobs_pb2.SubmitJobRequest, timeout_seconds: float = 0
) -> jobs_pb2.Job:
    """Submit without an idempotency key: the instance called owns the job."""
    if timeout_seconds:
        request.timeout.FromNanoseconds(int(timeout_seconds * 1e9))
    job: jobs_pb2.Job = client.jobs.Submit(request, timeout=10)
    assert job.id.endswith("@" + client.target)
    return job
