"""`invoke bench --jobs`: a CPU-heavy job on one instance, then on two delegating."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from calcfleet import portfile
from calcfleet.client import Client
from calcfleet.v1 import jobs_pb2, worker_pb2, worker_pb2_grpc

EXPRESSION = "k**2"
START_SECONDS = 30.0


@contextlib.contextmanager
def instances(count: int, directory: Path) -> Iterator[list[str]]:
    """`count` servers sharing a local registry; yields their addresses."""
    config = directory / "calcfleet.toml"
    config.write_text(
        f'[discovery]\nbackend = "local"\nregistry_dir = "{directory / "registry"}"\n'
        "refresh_seconds = 0.3\n"
    )
    processes, addresses = [], []
    try:
        for index in range(count):
            port_file = directory / f"{index}.port"
            command = [sys.executable, "-m", "calcfleet.cli", "serve", "--config"]
            command += [str(config), "--listen", "127.0.0.1:0"]
            command += ["--port-file", str(port_file)]
            processes.append(subprocess.Popen(command, stderr=subprocess.DEVNULL))
            port = portfile.wait(processes[-1], port_file, START_SECONDS)
            addresses.append(f"127.0.0.1:{port}")
        for address in addresses:
            _wait_for_peers(address, count - 1)
        yield addresses
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def _wait_for_peers(address: str, count: int) -> None:
    give_up = time.monotonic() + START_SECONDS
    with Client(address) as client:
        stub = worker_pb2_grpc.WorkerStub(client.channel)
        while (
            len(stub.Status(worker_pb2.WorkerStatusRequest(), timeout=5).peers) < count
        ):
            if time.monotonic() > give_up:
                raise RuntimeError(f"{address} did not find its {count} peers")
            time.sleep(0.1)


@dataclasses.dataclass(frozen=True)
class Run:
    seconds: float
    value: str
    job_id: str


@dataclasses.dataclass
class Results:
    alone: list[float] = dataclasses.field(default_factory=list)
    pair: list[float] = dataclasses.field(default_factory=list)
    # Per paired round: the share of its wall time each instance computed.
    busy: list[list[float]] = dataclasses.field(default_factory=list)


def run_job(address: str, terms: int) -> Run:
    """Seconds from submit to result, and the value."""
    request = jobs_pb2.SubmitJobRequest(
        sum=jobs_pb2.SumJob(expression=EXPRESSION, start=1, stop=terms)
    )
    with Client(address, timeout=30) as client:
        started = time.perf_counter()
        job = client.jobs.Submit(request, timeout=30)
        updates = list(client.watch_job(job.id, timeout=600))
        seconds = time.perf_counter() - started
    final = updates[-1]
    if final.state != jobs_pb2.JOB_STATE_SUCCEEDED or not final.value:
        raise SystemExit(
            f"job {job.id} ended without a value after {len(updates)} updates: {final}"
        )
    return Run(seconds, final.value, job.id)


def busy_shares(addresses: list[str], run: Run) -> list[float]:
    """How much of the job's wall time each instance spent computing its chunks."""
    shares = []
    for address in addresses:
        with Client(address) as client:
            stub = worker_pb2_grpc.WorkerStub(client.channel)
            recent = stub.Status(worker_pb2.WorkerStatusRequest(), timeout=5).recent
        computing = sum(r.seconds for r in recent if r.job_id == run.job_id)
        shares.append(computing / run.seconds)
    return shares


def measure(terms: int, rounds: int) -> Results:
    """Alternate the job on one instance and on two, `rounds` times each.

    Alternating, and keeping the best of each, lets a burst of load from
    elsewhere on the machine spoil one round, not one side of the comparison.
    """
    results = Results()
    with contextlib.ExitStack() as stack:
        one = stack.enter_context(tempfile.TemporaryDirectory())
        two = stack.enter_context(tempfile.TemporaryDirectory())
        single = stack.enter_context(instances(1, Path(one)))[0]
        pair = stack.enter_context(instances(2, Path(two)))
        for target in (single, pair[0]):
            run_job(target, terms // 20)  # warm both ends up
        for _ in range(rounds):
            alone = run_job(single, terms)
            paired = run_job(pair[0], terms)
            if alone.value != paired.value:
                raise SystemExit(f"results differ: {alone.value} and {paired.value}")
            results.alone.append(alone.seconds)
            results.pair.append(paired.seconds)
            results.busy.append(busy_shares(pair, paired))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--terms", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    results = measure(arguments.terms, arguments.rounds)
    best = results.pair.index(min(results.pair))
    print(
        f"job: sum of {EXPRESSION} for k = 1..{arguments.terms}, best of "
        f"{arguments.rounds} alternating rounds"
    )
    print(
        f"{'one instance':28}{min(results.alone):8.2f} s   rounds: "
        + _seconds(results.alone)
    )
    print(
        f"{'two instances, delegating':28}{min(results.pair):8.2f} s   rounds: "
        + _seconds(results.pair)
    )
    print(f"{'speedup':28}{min(results.alone) / min(results.pair):8.2f} x")
    shares = ", ".join(f"{share:.0%}" for share in results.busy[best])
    print(f"{'computing, share of wall':28}{shares:>10}   (each instance, best round)")


def _seconds(values: list[float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


if __name__ == "__main__":
    main()
