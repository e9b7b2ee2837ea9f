"""`invoke release` and `rollback` on the local fleet: batches, signals, rollback."""

from __future__ import annotations

import logging
import math

from stacks.fleet import Fleet
from stacks.fleetstate import FleetState, InstanceRecord
from stacks.release import Outcome, PreflightError, Result

log = logging.getLogger("stacks")


class BatchFailedError(Exception):
    """A batch's instances did not all signal success (internal to a release)."""


def release(fleet: Fleet, image_id: str) -> Result:
    """Roll the local fleet onto IMAGE_ID by the template's rules; roll back on failure.

    The same outcomes, lines and exit codes as a CloudFormation release
    (docs/releases.md). A failed preflight raises PreflightError.
    """
    name = f"the {fleet.environment} fleet on this machine"
    # Before taking the fleet: releasing what already serves waits for nothing.
    if fleet.current().image == image_id:
        return Result(Outcome.RELEASED, f"already released: {image_id} serves {name}")
    check_image(fleet, image_id)
    with fleet.files.lock():
        state = fleet.current()
        previous = state.image
        fleet.say(f"{name}: releasing {image_id} (was {previous})")
        try:
            _roll(fleet, state, image_id)
        except BatchFailedError as failure:
            return _roll_back(fleet, state, image_id, previous, str(failure))
        except KeyboardInterrupt:
            return _roll_back(fleet, state, image_id, previous, "interrupted")
        except Exception as error:
            # A fault of ours or of the machine (a stuck nsenter, HAProxy's
            # socket) must not leave the fleet half-replaced: put the old image
            # back as CloudFormation would, and still show the traceback.
            _roll_back(fleet, state, image_id, previous, f"unexpected {error!r}")
            raise
        state.image = image_id
        fleet.files.save(state)
        fleet.files.record(image_id, previous)
    return Result(
        Outcome.RELEASED, f"released: {image_id} serves {name} (was {previous})"
    )


def rollback(fleet: Fleet) -> Result:
    """Release the image that served before the last release."""
    image_id = fleet.files.previous_image()
    fleet.say(f"rolling back to {image_id}, which served before the last release")
    return release(fleet, image_id)


def _roll(fleet: Fleet, state: FleetState, image_id: str) -> None:
    """Replace the old instances batch by batch; BatchFailedError stops it.

    Like AutoScalingRollingUpdate: at most MaxBatchSize new instances at a
    time, booted beside the old ones (never above MaxSize) so that
    MinInstancesInService keep serving; each must signal within PauseTime.
    """
    rules = fleet.rules
    room = rules.max_size - len(state.instances)
    batch_size = max(1, min(rules.max_batch_size, room))
    # MinSuccessfulInstancesPercent: how many new instances may fail before
    # the whole update is rolled back (none at 100 %).
    allowed = rules.desired_capacity - math.ceil(
        rules.desired_capacity * rules.min_successful_instances_percent / 100
    )
    failed: list[str] = []
    replaced = 0
    while old := [i for i in state.instances if i.image != image_id]:
        batch = old[:batch_size]
        booted, failures = fleet.launch(state, image_id, len(batch), leaving=batch)
        verdicts = {**failures, **fleet.wait_for_signals(booted, rules.pause_seconds)}
        bad = [r for r in booted if verdicts[r.name]]
        good = [r for r in booted if not verdicts[r.name]]
        failed += [why for why in verdicts.values() if why]
        if bad:
            fleet.retire(state, bad)
        if len(failed) > allowed:
            raise BatchFailedError(failed[0])
        fleet.admit(good)
        fleet.retire(state, batch)
        replaced += len(good)
        fleet.say(f"instances replaced so far: {replaced} of {rules.desired_capacity}")


def _roll_back(
    fleet: Fleet, state: FleetState, image_id: str, previous: str, reason: str
) -> Result:
    """Put the previous image back on every instance, as UPDATE_ROLLBACK does."""
    name = f"the {fleet.environment} fleet on this machine"
    fleet.say(f"{name}: {reason}; rolling back to {previous}")
    try:
        new = [i for i in state.instances if i.image != previous]
        _restore(fleet, state, previous, new)
    except (BatchFailedError, KeyboardInterrupt) as failure:
        return Result(
            Outcome.ROLLBACK_FAILED,
            f"rollback failed: {name} could not return to {previous} ({failure});"
            " see `invoke status`, then `invoke release --ami` an image that works",
        )
    outcome = Outcome.INTERRUPTED if reason == "interrupted" else Outcome.ROLLED_BACK
    word = "interrupted" if reason == "interrupted" else "rolled back"
    return Result(
        outcome,
        f"{word}: {previous} still serves {name}; {image_id} failed: {reason}",
    )


def _restore(
    fleet: Fleet, state: FleetState, previous: str, new: list[InstanceRecord]
) -> None:
    # Old instances first, then the new ones leave, so capacity never dips
    # below what served when the release began.
    missing = fleet.rules.desired_capacity - len(state.on_image(previous))
    if missing > 0:
        booted, failures = fleet.launch(state, previous, missing)
        verdicts = {
            **failures,
            **fleet.wait_for_signals(booted, fleet.rules.pause_seconds),
        }
        if any(verdicts.values()):
            raise BatchFailedError(next(why for why in verdicts.values() if why))
        fleet.admit(booted)
    if new:
        fleet.retire(state, new)


def check_image(fleet: Fleet, image_id: str) -> None:
    """The preflight of a local release: a verified image of this machine's store."""
    if not image_id.startswith("img-"):
        raise PreflightError(f"{image_id} is not a local image id (img-...)")
    fleet.images.find_verified(image_id)
