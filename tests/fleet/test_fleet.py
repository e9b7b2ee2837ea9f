"""The local fleet under load: faults, releases, rollback and down, in this order."""

from __future__ import annotations

import re
import time

import pytest

from calcfleet.client import Client
from calcfleet.load import BackgroundLoad, Tally
from image import nspawn
from stacks.fleet import Fleet
from stacks.fleetstate import FleetState

from fleetlab import (
    ENVIRONMENT,
    RECOVERY_SECONDS,
    WARMUP_SECONDS,
    Images,
    Machine,
    balancer_target,
    invoke,
    machine,
    wait_until_whole,
)

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

NAME = f"the {ENVIRONMENT} fleet on this machine"


def report(what: str, tally: Tally) -> None:
    """The figure the issue asks for; shown with `pytest -rP` or `-s`."""
    print(f"{what}: {tally.calls} calls, {tally.failed} failed {tally.failures[:3]}")


def images_of(fleet: Fleet) -> list[str]:
    state = fleet.files.load()
    assert state is not None
    return sorted(record.image for record in state.instances)


def test_up_boots_desired_capacity_over_two_zones_behind_the_balancer(
    fleet: Fleet, whole: FleetState, images: Images
) -> None:
    with Client(balancer_target()) as client:
        answers = {client.evaluate(f"2**100 + {n}") for n in range(30)}

    status = invoke("status", "--env", ENVIRONMENT)
    again = invoke("up", "--env", ENVIRONMENT)

    assert len(whole.instances) == fleet.rules.desired_capacity == 3
    assert {record.zone for record in whole.instances} == {"local-a", "local-b"}
    assert len({record.address for record in whole.instances}) == 3
    assert images_of(fleet) == [images.base] * 3
    assert answers == {str(2**100 + n) for n in range(30)}
    assert status.returncode == 0
    assert again.returncode == 0
    assert again.stdout.startswith(f"{NAME} is already up\n")
    for record in whole.instances:
        line = f"{record.name}  {images.base}  {record.zone}  {record.address}  UP"
        assert line in status.stdout


def test_killed_service_is_restarted_in_place_and_no_call_fails(
    fleet: Fleet, whole: FleetState, images: Images
) -> None:
    victim = whole.instances[0]
    main_pid = nspawn.run_in(
        victim.leader, ["systemctl", "show", "-p", "MainPID", "--value", "calcfleet"]
    ).stdout.strip()
    seen = set()

    with BackgroundLoad(balancer_target()) as load:
        killed = nspawn.run_in(victim.leader, ["kill", "-KILL", main_pid])
        deadline = time.monotonic() + RECOVERY_SECONDS
        while time.monotonic() < deadline:
            seen.add(fleet.health(whole)[victim.name])
            if "DOWN" in seen and fleet.health(whole)[victim.name] == "UP":
                break
            time.sleep(0.2)
        time.sleep(2)
    restarts = nspawn.run_in(
        victim.leader, ["systemctl", "show", "-p", "NRestarts", "--value", "calcfleet"]
    ).stdout.strip()

    report("fault 1, service SIGKILLed", load.tally)
    assert killed.returncode == 0
    assert "DOWN" in seen  # the balancer stopped sending to it meanwhile
    assert restarts == "1"
    assert wait_until_whole(fleet).instances == whole.instances  # kept, not replaced
    assert images_of(fleet) == [images.base] * 3
    assert load.tally.calls > 100
    assert load.tally.failures == []


def test_killed_instance_is_replaced_and_no_call_fails(
    fleet: Fleet, whole: FleetState, images: Images
) -> None:
    victim = whole.instances[1]

    with BackgroundLoad(balancer_target()) as load:
        nspawn.kill(victim.name)
        time.sleep(2)
        after = wait_until_whole(fleet)

    report("fault 2, instance SIGKILLed", load.tally)
    assert victim.name not in {record.name for record in after.instances}
    assert not nspawn.is_running(victim.name, victim.launcher)
    assert images_of(fleet) == [images.base] * 3
    assert load.tally.calls > 100
    assert load.tally.failures == []


def test_zone_outage_is_restored_and_no_call_fails(
    fleet: Fleet, whole: FleetState, images: Images
) -> None:
    zone = max(
        ("local-a", "local-b"), key=lambda z: sum(i.zone == z for i in whole.instances)
    )
    victims = [record for record in whole.instances if record.zone == zone]

    with BackgroundLoad(balancer_target()) as load:
        for record in victims:
            nspawn.kill(record.name)
        time.sleep(2)
        after = wait_until_whole(fleet)

    report("fault 3, zone lost", load.tally)
    assert len(victims) >= 1
    assert not {v.name for v in victims} & {r.name for r in after.instances}
    assert {record.zone for record in after.instances} == {"local-a", "local-b"}
    assert images_of(fleet) == [images.base] * 3
    assert load.tally.calls > 100
    assert load.tally.failures == []


def test_release_of_a_good_slow_warming_image_completes_without_failed_calls(
    fleet: Fleet, whole: FleetState, images: Images
) -> None:
    # S8 and fault 4: each new instance is admitted only once the balancer's
    # gRPC health check sees SERVING, after its warm-up.
    with BackgroundLoad(balancer_target()) as load:
        started = time.monotonic()
        released = invoke("release", "--env", ENVIRONMENT, "--ami", images.warm)
        took = time.monotonic() - started

    lines = released.stdout.splitlines()
    report("fault 4, good release", load.tally)
    assert released.returncode == 0, released.stdout + released.stderr
    assert lines[-1] == f"released: {images.warm} serves {NAME} (was {images.base})"
    assert "instances replaced so far: 3 of 3" in lines
    assert took > 3 * WARMUP_SECONDS
    assert images_of(fleet) == [images.warm] * 3
    assert load.tally.failures == []
    assert load.tally.calls > 100


def test_releasing_the_image_that_serves_again_waits_for_nothing(
    fleet: Fleet, whole: FleetState, images: Images
) -> None:
    # S9
    started = time.monotonic()
    again = invoke("release", "--env", ENVIRONMENT, "--ami", images.warm)

    assert again.returncode == 0
    assert again.stdout == f"already released: {images.warm} serves {NAME}\n"
    assert time.monotonic() - started < 10
    assert images_of(fleet) == [images.warm] * 3


def test_never_healthy_image_fails_fast_and_rolls_back_without_failed_calls(
    fleet: Fleet, whole: FleetState, images: Images
) -> None:
    # S7 and fault 5: the new instance's service exits at every start, so it
    # signals failure at its first restart instead of after the pause time.
    with BackgroundLoad(balancer_target()) as load:
        started = time.monotonic()
        released = invoke(
            "release", "--env", ENVIRONMENT, "--ami", images.never_healthy
        )
        took = time.monotonic() - started

    outcome = released.stdout.splitlines()[-1]
    report("fault 5, bad release", load.tally)
    assert released.returncode == 3, released.stdout + released.stderr
    assert re.fullmatch(
        rf"rolled back: {images.warm} still serves {NAME}; {images.never_healthy}"
        r" failed: instance i-[0-9a-f]{12} - calcfleet.service failed or restarted",
        outcome,
    ), outcome
    assert took < fleet.rules.pause_seconds
    assert images_of(fleet) == [images.warm] * 3
    assert load.tally.failures == []
    assert load.tally.calls > 20


def test_rollback_releases_the_image_that_served_before_the_last_release(
    fleet: Fleet, whole: FleetState, images: Images
) -> None:
    with BackgroundLoad(balancer_target()) as load:
        rolled = invoke("rollback", "--env", ENVIRONMENT)

    history = fleet.files.releases()
    report("rollback", load.tally)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert rolled.stdout.splitlines()[-1] == (
        f"released: {images.base} serves {NAME} (was {images.warm})"
    )
    assert [(r.image, r.previous) for r in history[-2:]] == [
        (images.warm, images.base),
        (images.base, images.warm),
    ]
    assert images_of(fleet) == [images.base] * 3
    assert load.tally.failures == []


def test_down_leaves_the_machine_as_it_found_it(
    fleet: Fleet, before_up: Machine
) -> None:
    down = invoke("down", "--env", ENVIRONMENT)
    status = invoke("status", "--env", ENVIRONMENT)

    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines()[-1] == (
        f"fleet {ENVIRONMENT} - down; nothing of it is left running"
    )
    assert machine() == before_up
    assert status.returncode == 1
    assert status.stderr == f"{NAME} is not up: run `invoke up`\n"
    assert fleet.files.load() is None
    assert not list(fleet.files.directory.glob("instances/*"))
