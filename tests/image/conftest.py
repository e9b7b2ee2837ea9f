"""Fixtures of the image checks: the host under test, the version it must carry."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra
import testinfra.host
from testinfra.backend import base

from image import bake, nspawn, store

ROOT = Path(__file__).resolve().parents[2]
# How long a freshly booted instance gets to bring the service up before the
# checks look at it. A healthy server is active within seconds; the margin is
# for a machine busy with other work (CI runs fleets beside the bake).
SETTLE_SECONDS = 60
TOOLS = ("packer", "debootstrap", "systemd-nspawn", "nsenter")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("calcfleet image")
    group.addoption("--image-leader", type=int, help="host pid of a booted instance")
    group.addoption("--image-host", help="testinfra host spec, e.g. ssh://...")
    group.addoption("--image-version", help="calcfleet version the image must carry")
    group.addoption("--image-target", default="local", help="local or aws")


class NsenterBackend(base.BaseBackend):
    """Runs commands in every namespace of an nspawn instance, found by its PID 1.

    testinfra has no nspawn backend, and the instance has no SSH server.
    """

    NAME = "nsenter"

    def __init__(self, leader: int) -> None:
        self.leader = leader
        super().__init__(f"instance-{leader}")

    def run(self, command: str, *args: str, **kwargs: object) -> base.CommandResult:
        shell = self.get_command(command, *args)
        prefix = " ".join(nspawn.nsenter_argv(self.leader))
        result = self.run_local(f"{prefix} /bin/sh -c %s", shell)
        result.command = self.encode(shell)
        return result


@dataclasses.dataclass(frozen=True)
class Target:
    host: testinfra.host.Host
    version: str
    kind: str = "local"


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    leader = request.config.getoption("--image-leader", None)
    spec = request.config.getoption("--image-host", None)
    version = request.config.getoption("--image-version", None) or ""
    kind = request.config.getoption("--image-target", None) or "local"
    if leader:
        yield Target(testinfra.host.Host(NsenterBackend(leader)), version, kind)
    elif spec:
        yield Target(testinfra.get_host(spec), version, kind)
    else:
        yield from _baked_local_image()


@pytest.fixture(scope="session")
def host(target: Target) -> testinfra.host.Host:
    return target.host


@pytest.fixture(scope="session")
def version(target: Target) -> str:
    return target.version


@pytest.fixture(scope="session")
def image_target(target: Target) -> str:
    return target.kind


@pytest.fixture(scope="session", autouse=True)
def settled(host: testinfra.host.Host) -> None:
    """Wait until calcfleet.service has left "activating", within a bound."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        state = host.run("systemctl show -P ActiveState calcfleet.service").stdout
        if state.strip() not in {"activating", "reloading", ""}:
            return
        time.sleep(1)


def _baked_local_image() -> Iterator[Target]:
    # Run on its own (`pytest tests/image`), the suite bakes the local image
    # (a reuse, in seconds, when nothing changed) and checks a fresh boot of
    # it; `invoke bake` runs it against the image it is making instead.
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        message = f"the image checks need root and {', '.join(TOOLS)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    state_dir = ROOT / _project_settings()["state_dir"]
    result = bake.bake(bake.BakeOptions(target="local", state_dir=state_dir))
    image = store.ImageStore(state_dir).find_verified(result.image_id)
    work = state_dir / "instances" / "image-checks"
    instance = nspawn.boot(image.rootfs, "calcfleet-checks", work)
    try:
        yield Target(
            testinfra.host.Host(NsenterBackend(instance.leader)), image.version
        )
    finally:
        nspawn.stop(instance)


def _project_settings() -> dict[str, str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        settings: dict[str, str] = tomllib.load(file)["tool"]["calcfleet"]
    return settings
