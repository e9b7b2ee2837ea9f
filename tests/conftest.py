"""Fixtures shared by every test: real calcfleet servers, and CI's rule on skips."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import RunningServer, StartServer, launch_server


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """A factory of servers for one test; every one is stopped after it."""
    started: list[RunningServer] = []

    def start(*arguments: str, env: dict[str, str] | None = None) -> RunningServer:
        started.append(launch_server(tmp_path, *arguments, env=env))
        return started[-1]

    yield start
    for running in started:
        running.kill()


@pytest.fixture
def server(start_server: StartServer) -> RunningServer:
    """A server of the test's own, for tests that stop or disturb it."""
    return start_server()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for a whole module of tests that only call it."""
    running = launch_server(tmp_path_factory.mktemp("server"))
    yield running
    running.kill()


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: a missing tool must not pass quietly."""
    if os.environ.get("CI") == "true" and _skipped and exitstatus == 0:
        print(f"\nCI: {len(_skipped)} test(s) skipped, and CI runs every test:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
