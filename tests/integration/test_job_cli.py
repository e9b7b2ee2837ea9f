"""`calcfleet job ...` against a real server: output and exit codes exactly."""

from __future__ import annotations

import subprocess
import sys

from calcfleet.client import Client
from calcfleet.v1 import jobs_pb2

from jobfleet import squares, status, submit_here, sum_request, wait_for
from servers import RunningServer, StartServer


def _calcfleet(*arguments: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calcfleet.cli", *arguments],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_submit_prints_the_id_and_watch_prints_only_the_value(
    server: RunningServer,
) -> None:
    target = ("--target", server.address)
    submitted = _calcfleet(
        "job", "submit", "sum", "k**2", "--from", "1", "--to", "100000", *target
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.endswith("@" + server.address)
    watched = _calcfleet("job", "watch", job_id, *target)
    assert (watched.returncode, watched.stdout, watched.stderr) == (
        0,
        squares(100_000) + "\n",
        "",
    )
    got = _calcfleet("job", "get", job_id, *target)
    assert "state: succeeded\n" in got.stdout
    assert f"value: {squares(100_000)}\n" in got.stdout


def test_failing_job_is_one_line_on_stderr_and_exit_1(server: RunningServer) -> None:
    result = _calcfleet(
        "job",
        "submit",
        "sum",
        "1/(k-5)",
        "--from",
        "0",
        "--to",
        "10",
        "--watch",
        "--target",
        server.address,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "calcfleet: INVALID_ARGUMENT: term k=5: division by zero in '/' at column 2\n"
    )


def test_batch_prints_results_in_order_and_errors_on_stderr(
    server: RunningServer,
) -> None:
    result = _calcfleet(
        "job",
        "submit",
        "batch",
        "--watch",
        "--target",
        server.address,
        stdin="2**10\n1/0\n7*6\n",
    )
    assert result.returncode == 1
    assert result.stdout == "1024\n42\n"
    assert result.stderr == "expression 2: division by zero in '/' at column 2\n"


def test_cancel_prints_the_cancelled_job(server: RunningServer) -> None:
    with Client(server.address) as client:
        job = submit_here(client, sum_request("k", 1, 10**9))
    wait_for(lambda: status(server).running_chunks == 1, 5, "a running chunk")
    result = _calcfleet("job", "cancel", job.id, "--target", server.address)
    assert (result.returncode, result.stdout) == (0, f"{job.id}: cancelled\n")
    wait_for(lambda: status(server).running_chunks == 0, 2, "no running chunk")


def test_unknown_job_is_not_found_in_one_line(server: RunningServer) -> None:
    job_id = f"0123456789abcdef@{server.address}"
    result = _calcfleet("job", "get", job_id, "--target", server.address)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"calcfleet: NOT_FOUND: job {job_id} is not known here "
        "(expired, or its owner restarted)\n"
    )


def test_every_watch_ends_with_the_final_state_and_value(
    start_server: StartServer,
) -> None:
    """A job finishing while an update is on its way must still send its end."""
    server = start_server(env={"CALCFLEET_JOBS_CHUNK_TERMS": "20000"})
    endings = []
    with Client(server.address) as client:
        for _ in range(30):
            job = submit_here(client, sum_request("k", 1, 60_000))
            endings.append(list(client.watch_job(job.id, timeout=30))[-1])
    assert {(e.state, e.value) for e in endings} == {
        (jobs_pb2.JOB_STATE_SUCCEEDED, "1800030000")
    }
