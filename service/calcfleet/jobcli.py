"""The `calcfleet job` commands: submit, watch, get and cancel distributed jobs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TextIO

from calcfleet.client import Client
from calcfleet.errors import CalcfleetError
from calcfleet.v1 import jobs_pb2

EXIT_FAILED = 1
STATES = {
    jobs_pb2.JOB_STATE_RUNNING: "running",
    jobs_pb2.JOB_STATE_SUCCEEDED: "succeeded",
    jobs_pb2.JOB_STATE_FAILED: "failed",
    jobs_pb2.JOB_STATE_CANCELLED: "cancelled",
}

AddTarget = Callable[[argparse.ArgumentParser], None]
MakeClient = Callable[[argparse.Namespace], Client]


def add_commands(commands: Any, add_target: AddTarget, make_client: MakeClient) -> None:
    """`calcfleet job ...` under the main parser's subcommands."""
    job = commands.add_parser(
        "job",
        help="submit, watch, get or cancel a job split across the fleet",
        description="Long calculations that the accepting instance splits into "
        "chunks and spreads over its peers. Any instance answers for any job.",
    )
    verbs = job.add_subparsers(required=True, metavar="VERB")
    _add_submit(verbs, add_target, make_client)
    for name, handler, text in (
        ("watch", _watch, "follow a job until it ends; print its result"),
        ("get", _get, "print a job's state, progress and result"),
        ("cancel", _cancel, "cancel a job; its chunks stop on every instance"),
    ):
        verb = verbs.add_parser(
            name, help=text, description=text[0].upper() + text[1:] + "."
        )
        verb.add_argument("job_id", metavar="ID")
        add_target(verb)
        verb.set_defaults(command=_with_client(handler, make_client))


def _add_submit(verbs: Any, add_target: AddTarget, make_client: MakeClient) -> None:
    submit = verbs.add_parser(
        "submit",
        help="start a job and print its id",
        description="Start a job and print its id at once (with --watch, follow "
        "it and print the result instead).",
    )
    kinds = submit.add_subparsers(required=True, metavar="KIND")
    for name, text in (
        ("sum", "sum EXPR over integer k from --from to --to, both included"),
        ("integral", "integrate EXPR in x over [--from, --to] by Simpson's rule"),
        ("batch", "evaluate EXPRs (or one per line of stdin), results in order"),
        ("primes", "count the primes p with --from <= p <= --to"),
    ):
        kind = kinds.add_parser(
            name, help=text, description=text[0].upper() + text[1:] + "."
        )
        _add_job_arguments(kind, name)
        add_target(kind)
        kind.set_defaults(command=_with_client(_submit, make_client), kind=name)


def _add_job_arguments(kind: argparse.ArgumentParser, name: str) -> None:
    if name in ("sum", "integral"):
        kind.add_argument("expression", metavar="EXPR")
    if name == "batch":
        kind.add_argument("expressions", nargs="*", metavar="EXPR")
    else:
        kind.add_argument("--from", dest="start", required=True, metavar="A")
        kind.add_argument("--to", dest="stop", required=True, metavar="B")
    if name == "integral":
        kind.add_argument(
            "--intervals",
            type=int,
            default=1000,
            metavar="N",
            help="even number of intervals (default 1000)",
        )
    kind.add_argument("--key", default="", help="idempotency key (default: new)")
    kind.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="the job fails if not done this long after submit",
    )
    kind.add_argument(
        "--watch", action="store_true", help="follow the job and print its result"
    )


def _with_client(
    handler: Callable[[Client, argparse.Namespace], int], make_client: MakeClient
) -> Callable[[argparse.Namespace], int]:
    def run(arguments: argparse.Namespace) -> int:
        with make_client(arguments) as client:
            return handler(client, arguments)

    return run


def _request(arguments: argparse.Namespace) -> jobs_pb2.SubmitJobRequest:
    kind = arguments.kind
    if kind == "batch":
        lines = arguments.expressions or [line.rstrip("\n") for line in sys.stdin]
        return jobs_pb2.SubmitJobRequest(batch=jobs_pb2.BatchJob(expressions=lines))
    if kind == "integral":
        integral = jobs_pb2.IntegralJob(
            expression=arguments.expression,
            lower=arguments.start,
            upper=arguments.stop,
            intervals=arguments.intervals,
        )
        return jobs_pb2.SubmitJobRequest(integral=integral)
    start, stop = _integer(arguments.start), _integer(arguments.stop)
    if kind == "sum":
        job = jobs_pb2.SumJob(expression=arguments.expression, start=start, stop=stop)
        return jobs_pb2.SubmitJobRequest(sum=job)
    primes = jobs_pb2.PrimeCountJob(start=start, stop=stop)
    return jobs_pb2.SubmitJobRequest(prime_count=primes)


def _integer(text: str) -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise CalcfleetError(f"{text!r} is not an integer") from None


def _submit(client: Client, arguments: argparse.Namespace) -> int:
    job = client.submit(
        _request(arguments), key=arguments.key, job_timeout=arguments.deadline
    )
    if arguments.watch:
        return _follow(client, job.id, sys.stdout, sys.stderr)
    print(job.id)
    return 0


def _watch(client: Client, arguments: argparse.Namespace) -> int:
    return _follow(client, arguments.job_id, sys.stdout, sys.stderr)


def _follow(client: Client, job_id: str, out: TextIO, err: TextIO) -> int:
    """Progress on stderr while stdout is a terminal; the result on stdout."""
    on_terminal = out.isatty()
    last = None
    for last in client.watch_job(job_id):
        if on_terminal:
            print(f"\r{_progress(last)}", end="", file=err, flush=True)
    if on_terminal:
        print(file=err)
    return 0 if last is None else _print_result(last, out, err)


def _progress(job: jobs_pb2.Job) -> str:
    partial = f", so far {job.partial_value}" if job.partial_value else ""
    return (
        f"{STATES.get(job.state, 'unknown')}: {job.fraction_done:6.1%} "
        f"({job.chunks_done}/{job.chunks_total} chunks){partial}"
    )


def _print_result(job: jobs_pb2.Job, out: TextIO, err: TextIO) -> int:
    status = 0
    for result in job.results:
        if result.HasField("error"):
            print(f"expression {result.index + 1}: {result.error.message}", file=err)
            status = EXIT_FAILED
        else:
            print(result.value, file=out)
    if job.value:
        print(job.value, file=out)
    return status


def _get(client: Client, arguments: argparse.Namespace) -> int:
    job = client.get_job(arguments.job_id)
    print(f"id: {job.id}\nstate: {STATES.get(job.state, 'unknown')}")
    print(f"progress: {_progress(job)}")
    if job.workers:
        print(f"workers: {', '.join(job.workers)}")
    if job.HasField("error"):
        print(f"error: {job.error.message}")
    if job.value:
        print(f"value: {job.value}")
    return 0 if job.state != jobs_pb2.JOB_STATE_FAILED else EXIT_FAILED


def _cancel(client: Client, arguments: argparse.Namespace) -> int:
    job = client.cancel_job(arguments.job_id)
    print(f"{job.id}: {STATES.get(job.state, 'unknown')}")
    return 0
