"""Helpers of the fleet tests: the localtest fleet, its images, the machine's state."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

from image import bake, nspawn, store
from stacks import localnet
from stacks.fleet import Fleet
from stacks.fleetstate import FleetState

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / ".calcfleet"
ENVIRONMENT = "localtest"
INVOKE = str(Path(sys.executable).parent / "invoke")
# S8: a good image whose service warms up for a while: 30 s less than the
# PauseTime of stacks/params/localtest.json (PT50S).
WARMUP_SECONDS = 20
# An instance replaced by the keeper boots, warms up and is checked twice.
RECOVERY_SECONDS = 120.0
IMAGE_CONFIG = ROOT / "image" / "files" / "calcfleet.toml"


@dataclasses.dataclass(frozen=True)
class Images:
    base: str  # the image the fleet boots from
    warm: str  # S8: good, slow to become SERVING
    never_healthy: str  # S7: passed its checks, fails in service


def invoke(*arguments: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [INVOKE, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def with_setting(config: str, warmup: object) -> str:
    """The image's calcfleet.toml with server.warmup_seconds set to `warmup`."""
    assert "\nwarmup_seconds = 0\n" in config
    value = f'"{warmup}"' if isinstance(warmup, str) else str(warmup)
    return config.replace("\nwarmup_seconds = 0\n", f"\nwarmup_seconds = {value}\n")


def bake_local(overlay: Path | None = None) -> str:
    options = bake.BakeOptions(target="local", state_dir=STATE_DIR, overlay=overlay)
    return bake.bake(options).image_id


def broken_copy(images: store.ImageStore, good: str) -> str:
    """A verified image whose service exits at every start.

    The bake keeps no image whose service never becomes healthy (see
    tests/integration/test_bake.py), so no bake can make this one: it is the
    good image, hard-linked, with a setting the server refuses laid over it
    after verification. It stands for an image that passed its checks and
    still fails in service, the case S7 is about.
    """
    source = images.find_verified(good)
    image_id = images.new_id()
    partial = images.partial(image_id)
    partial.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(source.rootfs), str(partial)], check=True)
    config = partial / "rootfs" / "etc" / "calcfleet" / "calcfleet.toml"
    text = with_setting(config.read_text(), "never")
    config.unlink()  # a new file, not the one linked to the good image
    config.write_text(text)
    # Not made from the good image's inputs: without this, a later bake (or
    # `up`) looking for a verified image of those inputs would find this one.
    tags = {k: v for k, v in source.tags.items() if k != store.INPUTS}
    tags["calcfleet:made-by"] = "tests/fleet: broken after its checks"
    return images.keep(image_id, tags).image_id


@dataclasses.dataclass(frozen=True)
class Machine:
    """What of ours exists on the machine: to compare before `up` and after `down`."""

    nspawn: frozenset[str]
    bridges: frozenset[str]
    cgroups: frozenset[str]
    haproxy: frozenset[str]


def machine() -> Machine:
    processes = subprocess.run(
        ["ps", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    bridges = subprocess.run(
        ["ip", "-o", "link", "show", "type", "bridge"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    groups = nspawn.CGROUP_ROOTS[1] / nspawn.CGROUP_PARENT
    # Fleet instances only (--machine=i-...): other work on this machine may
    # boot instances of its own meanwhile, e.g. a bake's checks.
    return Machine(
        frozenset(
            p
            for p in processes
            if p.startswith("systemd-nspawn") and "--machine=i-" in p
        ),
        frozenset(line.split(":")[1].strip() for line in bridges.splitlines()),
        frozenset(g.name for g in groups.glob("i-*"))
        if groups.is_dir()
        else frozenset(),
        frozenset(p for p in processes if p.startswith("haproxy")),
    )


def wait_until_whole(fleet: Fleet, timeout: float = RECOVERY_SECONDS) -> FleetState:
    """The fleet once it holds its desired capacity, every instance UP."""
    deadline = time.monotonic() + timeout
    while True:
        state = fleet.files.load()
        if state is not None:
            health = fleet.health(state)
            whole = len(state.instances) == fleet.rules.desired_capacity
            if whole and all(seen == "UP" for seen in health.values()):
                return state
        if time.monotonic() > deadline:
            raise AssertionError(f"fleet not whole after {timeout:.0f}s: {state}")
        time.sleep(0.5)


def balancer_target() -> str:
    return localnet.site(ENVIRONMENT).listen
