"""`invoke up`, `down` and `status` on the local target, and the keeper's healing."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from image import nspawn
from stacks import haproxy, localnet
from stacks.fleet import Fleet, FleetUpError
from stacks.fleetstate import FleetState

log = logging.getLogger("stacks")

ROOT = Path(__file__).resolve().parent.parent
# An instance the balancer has seen DOWN this long is replaced, like an ASG
# replacing an instance its ELB health check marks unhealthy. Longer than a
# restart of the service by systemd (RestartSec=2 plus a start), so a killed
# service is restarted in place and its instance kept.
UNHEALTHY_SECONDS = 15.0
KEEPER_STOP_SECONDS = 300.0


def up(fleet: Fleet, image_id: str | None = None) -> FleetState:
    """Boot the desired capacity behind the balancer, then start the keeper."""
    with fleet.files.lock():
        state = fleet.files.load()
        if state is not None and haproxy.running_pid(fleet.balancer) is not None:
            fleet.say(f"the {fleet.environment} fleet on this machine is already up")
            return state
        if state is not None:
            fleet.say("a previous fleet was left behind (machine restarted?); clearing")
            _clear(fleet, state)

        image = image_id or fleet.current_image()
        fleet.images.find_verified(image)
        localnet.create_bridge(fleet.site)
        haproxy.start(fleet.balancer)
        state = FleetState(fleet.environment, image)
        fleet.files.save(state)
        fleet.say(
            f"fleet {fleet.environment} - booting {fleet.rules.desired_capacity}"
            f" instances of {image} behind {fleet.site.listen}"
        )
        try:
            _fill(fleet, state)
        except BaseException:
            _clear(fleet, state)
            raise
        state.keeper = _start_keeper(fleet)
        fleet.files.save(state)
    return state


def _fill(fleet: Fleet, state: FleetState) -> list[str]:
    """Launch instances until the desired capacity serves; what went wrong."""
    missing = fleet.rules.desired_capacity - len(state.instances)
    if missing <= 0:
        return []
    booted, failures = fleet.launch(state, state.image, missing)
    verdicts = fleet.wait_for_signals(booted, fleet.rules.pause_seconds)
    healthy = [record for record in booted if not verdicts[record.name]]
    fleet.admit(healthy)
    failed = [record for record in booted if verdicts[record.name]]
    if failed:
        fleet.retire(state, failed)
    reasons = [*failures.values(), *(verdicts[r.name] for r in failed)]
    if reasons and not state.keeper:
        raise FleetUpError(f"the fleet did not come up: {reasons[0]}")
    return reasons


def down(fleet: Fleet) -> None:
    """Stop the keeper, every instance, the balancer and the bridge."""
    state = fleet.files.load()
    if state is not None and state.keeper:
        _stop_keeper(state.keeper)
    with fleet.files.lock(wait=KEEPER_STOP_SECONDS):
        state = fleet.files.load()
        if state is None and not localnet.has_bridge(fleet.site.bridge):
            fleet.say(
                f"the {fleet.environment} fleet on this machine is not up:"
                " nothing to do"
            )
            return
        _clear(fleet, state or FleetState(fleet.environment, ""))
    fleet.say(f"fleet {fleet.environment} - down; nothing of it is left running")


def _clear(fleet: Fleet, state: FleetState) -> None:
    if haproxy.running_pid(fleet.balancer) is not None and state.instances:
        fleet.retire(state, list(state.instances))
    for record in state.instances:
        nspawn.stop_launcher(record.name, record.launcher)
        nspawn.remove_leftovers(record.name, Path(record.work_dir) / "console.log")
    haproxy.stop(fleet.balancer)
    localnet.remove_bridge(fleet.site)
    # Entries of instances that were killed stay in the registry; the next
    # fleet starts with an empty one.
    shutil.rmtree(fleet.files.directory / "registry", ignore_errors=True)
    fleet.files.forget()


def status(fleet: Fleet) -> list[str]:
    """One line for the fleet, one per instance: image, zone, address, health."""
    state = fleet.current()
    rules = fleet.rules
    health = fleet.health(state)
    lines = [
        f"fleet {fleet.environment}: image {state.image}, balancer {fleet.site.listen},"
        f" {len(state.instances)} instances (desired {rules.desired_capacity},"
        f" min {rules.min_size}, max {rules.max_size})"
    ]
    for record in sorted(state.instances, key=lambda r: (r.zone, r.address)):
        lines.append(
            f"  {record.name}  {record.image}  {record.zone}  {record.address}"
            f"  {health[record.name]}"
        )
    return lines


def heal(fleet: Fleet, down_since: dict[str, float]) -> None:
    """One round of the keeper: replace what is dead or long unhealthy, refill.

    `down_since` carries, from round to round, when each instance was first
    seen DOWN.
    """
    state = fleet.files.load()
    if state is None:
        return
    now = time.monotonic()
    health = fleet.health(state)
    for name, seen in health.items():
        if seen.startswith("DOWN"):
            down_since.setdefault(name, now)
        else:
            down_since.pop(name, None)
    failing = [
        record
        for record in state.instances
        if health[record.name] == "stopped"
        or now - down_since.get(record.name, now) > UNHEALTHY_SECONDS
    ]
    for record in failing:
        fleet.say(f"instance {record.name} - {health[record.name]}: replacing it")
        down_since.pop(record.name, None)
    if failing:
        fleet.retire(state, failing)
    for reason in _fill(fleet, state):
        fleet.say(f"replacement failed: {reason}")


def _start_keeper(fleet: Fleet) -> int:
    log_file = fleet.files.directory / "keeper.log"
    with log_file.open("ab") as output:
        keeper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stacks.keeper",
                "--state-dir",
                str(fleet.files.directory.parent.parent),
                "--env",
                fleet.environment,
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    fleet.say(f"fleet {fleet.environment} - keeper {keeper.pid} replaces failures")
    return keeper.pid


def is_keeper(pid: int) -> bool:
    with contextlib.suppress(OSError):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return b"stacks.keeper" in argv
    return False


def _stop_keeper(pid: int) -> None:
    # The keeper finishes the round it is in (it may be booting a
    # replacement), so nothing it started is left without a record.
    if not is_keeper(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + KEEPER_STOP_SECONDS
    while is_keeper(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if is_keeper(pid):
        os.kill(pid, signal.SIGKILL)
