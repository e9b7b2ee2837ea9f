"""The `calcfleet` command against a real server: output, messages, exit codes."""

from __future__ import annotations

import subprocess
import sys
import time

from servers import RunningServer


def calcfleet(
    *arguments: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calcfleet.cli", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_eval_prints_the_exact_value(shared_server: RunningServer) -> None:
    result = calcfleet("eval", "2**100 + 1", "--target", shared_server.address)
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "1267650600228229401496703205377\n",
        "",
    )


def test_eval_error_is_one_line_and_exit_1(shared_server: RunningServer) -> None:
    result = calcfleet("eval", "1/0", "--target", shared_server.address)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "calcfleet: INVALID_ARGUMENT: division by zero in '/' at column 2\n"
    )


def test_eval_of_a_huge_power_fails_fast_and_the_server_keeps_answering(
    shared_server: RunningServer,
) -> None:
    started = time.monotonic()
    result = calcfleet("eval", "9**9**9**9", "--target", shared_server.address)
    assert result.returncode == 1
    assert result.stderr.startswith("calcfleet: OUT_OF_RANGE: integer result would")
    assert time.monotonic() - started < 5
    after = calcfleet("eval", "6*7", "--target", shared_server.address)
    assert after.stdout == "42\n"


def test_eval_reads_stdin_through_the_stream(shared_server: RunningServer) -> None:
    result = calcfleet(
        "eval", "--target", shared_server.address, stdin="1+1\n1/0\n2**10\n"
    )
    assert result.returncode == 1
    assert result.stdout == "2\n1024\n"
    assert result.stderr == "line 2: division by zero in '/' at column 2\n"


def test_calc_applies_one_operation(shared_server: RunningServer) -> None:
    result = calcfleet(
        "calc", "floor_divide", "-7", "2", "--target", shared_server.address
    )
    assert (result.returncode, result.stdout) == (0, "-4\n")
    unknown = calcfleet("calc", "cube", "2", "--target", shared_server.address)
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "calcfleet: unknown operation 'cube'\n",
    )


def test_health_exits_0_when_serving_and_1_when_nothing_listens(
    shared_server: RunningServer,
) -> None:
    serving = calcfleet("health", "--target", shared_server.address)
    assert (serving.returncode, serving.stdout) == (
        0,
        f"{shared_server.address} is serving\n",
    )
    absent = calcfleet("health", "--target", "127.0.0.1:1", "--timeout", "0.5")
    assert (absent.returncode, absent.stderr) == (
        1,
        "calcfleet: 127.0.0.1:1 is not serving\n",
    )


def test_unreachable_target_is_one_line_unavailable() -> None:
    result = calcfleet("eval", "1+1", "--target", "127.0.0.1:1", "--timeout", "1")
    assert result.returncode == 1
    assert result.stderr.startswith("calcfleet: UNAVAILABLE: ")
    assert result.stderr.count("\n") == 1


def test_help_explains_every_command() -> None:
    result = calcfleet("--help")
    assert result.returncode == 0
    for command in ("serve", "eval", "calc", "health"):
        assert command in result.stdout
        assert calcfleet(command, "--help").returncode == 0


def test_bad_settings_stop_serve_with_one_line() -> None:
    result = calcfleet("serve", "--config", "/nonexistent/calcfleet.toml")
    assert result.returncode == 1
    assert result.stderr == (
        "calcfleet: /nonexistent/calcfleet.toml: cannot read: "
        "No such file or directory\n"
    )


def test_serve_on_a_port_in_use_exits_1_with_one_line(
    shared_server: RunningServer,
) -> None:
    result = calcfleet("serve", "--listen", shared_server.address)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"calcfleet: cannot listen on {shared_server.address}"
    )
