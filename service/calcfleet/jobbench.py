"""`invoke bench --jobs`: a CPU-heavy job on one instance, then on two delegating."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

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
            addresses.append(_wait_for_port(processes[-1], port_file))
        for address in addresses:
            _wait_for_peers(address, count - 1)
        yield addresses
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def _wait_for_port(process: subprocess.Popen[bytes], port_file: Path) -> str:
    give_up = time.monotonic() + START_SECONDS
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > give_up:
            raise RuntimeError("a calcfleet server did not start")
        time.sleep(0.05)
    return f"127.0.0.1:{port_file.read_text().strip()}"


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


def run_job(address: str, terms: int) -> tuple[float, str, int]:
    """Seconds from submit to result, the value and how many instances worked."""
    request = jobs_pb2.SubmitJobRequest(
        sum=jobs_pb2.SumJob(expression=EXPRESSION, start=1, stop=terms)
    )
    with Client(address, timeout=30) as client:
        started = time.perf_counter()
        job = client.jobs.Submit(request, timeout=30)
        final = list(client.watch_job(job.id, timeout=600))[-1]
        return time.perf_counter() - started, final.value, len(final.workers)


def measure(terms: int, rounds: int) -> tuple[list[float], list[float], int]:
    """Alternate the job on one instance and on two, `rounds` times each.

    Alternating, and keeping the best of each, lets a burst of load from
    elsewhere on the machine spoil one round, not one side of the comparison.
    """
    alone: list[float] = []
    pair: list[float] = []
    with contextlib.ExitStack() as stack:
        one = stack.enter_context(tempfile.TemporaryDirectory())
        two = stack.enter_context(tempfile.TemporaryDirectory())
        single = stack.enter_context(instances(1, Path(one)))[0]
        double = stack.enter_context(instances(2, Path(two)))[0]
        for target in (single, double):
            run_job(target, terms // 20)  # warm both ends up
        for _ in range(rounds):
            seconds, value, _ = run_job(single, terms)
            alone.append(seconds)
            seconds, paired_value, workers = run_job(double, terms)
            pair.append(seconds)
            if value != paired_value:
                raise SystemExit(
                    f"results differ: {value} alone, {paired_value} on two"
                )
    return alone, pair, workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--terms", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    alone, pair, workers = measure(arguments.terms, arguments.rounds)
    print(
        f"job: sum of {EXPRESSION} for k = 1..{arguments.terms}, best of "
        f"{arguments.rounds} alternating rounds"
    )
    print(
        f"{'one instance':28}{min(alone):10.2f} s   rounds: "
        + " ".join(f"{s:.2f}" for s in alone)
    )
    print(
        f"{'two instances, delegating':28}{min(pair):10.2f} s   rounds: "
        + " ".join(f"{s:.2f}" for s in pair)
        + f"  ({workers} worked)"
    )
    print(f"{'speedup':28}{min(alone) / min(pair):10.2f} x")


if __name__ == "__main__":
    main()
