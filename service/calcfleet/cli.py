"""The `calcfleet` command: run a server, or call one."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from calcfleet import __version__, jobcli, logs, settings
from calcfleet.client import STREAM_BATCH, Client
from calcfleet.errors import CalcfleetError

DEFAULT_TARGET = "127.0.0.1:50051"

# Exit codes: 0 success, 1 a call or command failed, 2 bad usage (argparse),
# 130 interrupted with Ctrl-C.
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        command: Callable[[argparse.Namespace], int] = arguments.command
        return command(arguments)
    except CalcfleetError as error:
        print(f"calcfleet: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("calcfleet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calcfleet",
        description="A distributed gRPC calculation service: serve, or call a server.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run a server in the foreground until SIGTERM",
        description="Run a server in the foreground. Settings come from --config "
        "(or /etc/calcfleet/calcfleet.toml) and CALCFLEET_<SECTION>_<NAME> "
        "environment variables; --listen overrides server.listen. SIGTERM "
        "drains: health fails at once, in-flight calls get the grace period.",
    )
    serve.add_argument("--listen", metavar="HOST:PORT", help="address to listen on")
    serve.add_argument("--config", type=Path, metavar="FILE", help="TOML settings")
    serve.add_argument(
        "--port-file",
        type=Path,
        metavar="FILE",
        help="write the bound port here once serving (useful with port 0)",
    )
    serve.set_defaults(command=_serve)

    evaluate = commands.add_parser(
        "eval",
        help="evaluate an expression, or one per line of stdin",
        description="Print the exact value of EXPR. Without EXPR (or with -), read "
        "one expression per line from stdin and stream them to the server, "
        "printing one result per line in order; a failed line prints its error "
        "on stderr and makes the exit status 1.",
    )
    evaluate.add_argument("expression", nargs="?", default="-", metavar="EXPR")
    _add_target(evaluate)
    evaluate.set_defaults(command=_eval)

    calculate = commands.add_parser(
        "calc",
        help="one operation: add, subtract, multiply, divide, floor_divide, "
        "modulo, power, sqrt, negate, absolute, factorial",
        description="Apply one operation to one or two operands, e.g. "
        "`calcfleet calc power 2 100`.",
    )
    calculate.add_argument("operation")
    calculate.add_argument("a")
    calculate.add_argument("b", nargs="?", default="")
    _add_target(calculate)
    calculate.set_defaults(command=_calc)

    health = commands.add_parser(
        "health",
        help="exit 0 when the server's health check answers SERVING",
        description="Check grpc.health.v1 on the target; with --wait, keep "
        "checking until it answers SERVING or the time is up.",
    )
    health.add_argument("--wait", type=float, default=0.0, metavar="SECONDS")
    _add_target(health)
    health.set_defaults(command=_health)

    jobcli.add_commands(commands, _add_target, _client)
    return parser


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        metavar="HOST:PORT",
        help=f"server or load balancer to call (default {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="deadline"
    )
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument(
        "--ca",
        type=Path,
        metavar="PEM",
        help="CA certificates to trust (implies --tls)",
    )


def _client(arguments: argparse.Namespace) -> Client:
    roots = arguments.ca.read_bytes() if arguments.ca else None
    return Client(
        arguments.target,
        timeout=arguments.timeout,
        tls=arguments.tls,
        root_certificates=roots,
    )


def _serve(arguments: argparse.Namespace) -> int:
    loaded = settings.load(arguments.config)
    if arguments.listen:
        loaded = settings.with_listen(loaded, arguments.listen)
    logs.configure(loaded)

    from calcfleet.server import serve

    asyncio.run(serve(loaded, port_file=arguments.port_file))
    return 0


def _eval(arguments: argparse.Namespace) -> int:
    with _client(arguments) as client:
        if arguments.expression != "-":
            print(client.evaluate(arguments.expression))
            return 0
        return _eval_lines(client, sys.stdin, sys.stdout, sys.stderr)


def _eval_lines(client: Client, lines: TextIO, out: TextIO, err: TextIO) -> int:
    status = 0
    # Lines typed at a terminal are answered one by one; piped ones in batches.
    batch = 1 if lines.isatty() else STREAM_BATCH
    for result in client.evaluate_many(_expressions(lines), batch=batch):
        if result.HasField("error"):
            print(f"line {result.index + 1}: {result.error.message}", file=err)
            status = EXIT_FAILED
        else:
            print(result.value, file=out)
    return status


def _expressions(lines: TextIO) -> Iterator[str]:
    for line in lines:
        yield line.rstrip("\n")


def _calc(arguments: argparse.Namespace) -> int:
    with _client(arguments) as client:
        print(client.calculate(arguments.operation, arguments.a, arguments.b))
    return 0


def _health(arguments: argparse.Namespace) -> int:
    give_up = time.monotonic() + arguments.wait
    with _client(arguments) as client:
        while not client.is_serving(timeout=min(arguments.timeout, 2.0)):
            if time.monotonic() >= give_up:
                print(f"calcfleet: {arguments.target} is not serving", file=sys.stderr)
                return EXIT_FAILED
            time.sleep(0.5)
    print(f"{arguments.target} is serving")
    return 0


if __name__ == "__main__":
    sys.exit(main())
