"""`invoke release`: a verified image onto the fleet by change set, and its outcome."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import logging

from calcfleet.errors import CalcfleetError
from stacks import events, history
from stacks.aws import Aws, Record
from stacks.stack import Say, latest_event_id, outputs, parameter_values, stack_name
from stacks.stack import follow as follow_stack

log = logging.getLogger("stacks")

VERIFIED_TAG = "calcfleet:verified"
# CloudFormation keeps watching the rollback alarms this long after the last
# instance signalled, so a bad image that passed its own check is still
# rolled back when the load balancer sees it fail.
MONITORING_MINUTES = 10


class Outcome(enum.IntEnum):
    """How a release ended; the value is the exit code of `invoke release`."""

    RELEASED = 0
    NOT_STARTED = 1
    ROLLED_BACK = 3
    ROLLBACK_FAILED = 4
    INTERRUPTED = 130


@dataclasses.dataclass(frozen=True)
class Result:
    outcome: Outcome
    message: str


class PreflightError(CalcfleetError):
    """The release cannot start; nothing was changed."""


def release(
    aws: Aws,
    environment: str,
    image_id: str,
    say: Say,
    *,
    dry_run: bool = False,
    poll_seconds: float = 5.0,
) -> Result:
    """Release IMAGE_ID to the fleet; a failed preflight raises PreflightError."""
    aws.check_configured()
    name = stack_name(environment, "fleet")
    stack = check_stack(aws, name)
    previous = parameter_values(stack)["ImageId"]
    if previous == image_id:
        return Result(Outcome.RELEASED, f"already released: {image_id} serves {name}")
    check_image(aws, image_id)

    change_set_id = prepare(aws, stack, image_id, say)
    if dry_run:
        aws.delete_change_set(change_set_id)
        return Result(Outcome.RELEASED, f"dry run: {image_id} not released to {name}")

    after = latest_event_id(aws, name)
    aws.execute_change_set(change_set_id)
    say(f"{name}: releasing {image_id} (was {previous})")
    return watch(aws, environment, stack, image_id, previous, after, say, poll_seconds)


def check_stack(aws: Aws, name: str) -> Record:
    """The fleet stack, if it exists and can take an update now."""
    stack = aws.stack(name)
    if stack is None:
        raise PreflightError(
            f"{name} does not exist: create it with `invoke up --target aws`"
        )
    state = stack["StackStatus"]
    if state == "UPDATE_ROLLBACK_FAILED":
        raise PreflightError(
            f"{name} is UPDATE_ROLLBACK_FAILED: fix what the events name, then run"
            f" `aws cloudformation continue-update-rollback --stack-name {name}`"
        )
    if state not in events.UPDATABLE:
        raise PreflightError(
            f"{name} is {state}: wait until it is complete, then retry"
        )
    return stack


def check_image(aws: Aws, image_id: str) -> None:
    """The image exists, is available, and passed the bake's verification."""
    image = aws.image(image_id)
    if image is None:
        raise PreflightError(
            f"image {image_id} does not exist in this account and region"
        )
    if image.get("State") != "available":
        raise PreflightError(f"image {image_id} is {image.get('State')}, not available")
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    if tags.get(VERIFIED_TAG) != "true":
        raise PreflightError(
            f"image {image_id} has no {VERIFIED_TAG}=true tag: only images the bake"
            " verified are released"
        )


def prepare(aws: Aws, stack: Record, image_id: str, say: Say) -> str:
    """A change set for the new ImageId, every other parameter as it is; printed."""
    name = stack["StackName"]
    # The running template is sent back (rather than UsePreviousTemplate,
    # which moto lacks) so that a release changes nothing but the image.
    body = aws.template_body(name)
    # Every value is passed back as read, not as UsePreviousValue, which moto
    # cannot apply to a parameter that took its default.
    parameters = {**parameter_values(stack), "ImageId": image_id}
    found = outputs(stack)
    alarms = [
        found[k] for k in ("UnhealthyHostsAlarmArn", "ErrorsAlarmArn") if k in found
    ]
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    change_set_id = aws.create_change_set(
        name,
        f"calcfleet-release-{stamp}",
        body,
        parameters,
        rollback_alarms=alarms,
        monitoring_minutes=MONITORING_MINUTES,
    )
    change_set = aws.change_set(change_set_id)
    if change_set["Status"] == "FAILED":
        aws.delete_change_set(change_set_id)
        raise PreflightError(
            f"change set for {name} failed: {change_set.get('StatusReason')}"
        )

    say(f"{name}: change set {change_set['ChangeSetName']}")
    for change in change_set.get("Changes", []):
        say("  " + describe_change(change.get("ResourceChange", {})))
    return change_set_id


def describe_change(change: Record) -> str:
    """One line per resource change: what, which, and whether it is replaced."""
    action, resource = change.get("Action", "?"), change.get("LogicalResourceId")
    line = f"{action} {resource} ({change.get('ResourceType')})"
    if change.get("Replacement") == "True":
        line += ", replaced"
    return line


def watch(  # noqa: PLR0917 - the release's whole context, passed on once
    aws: Aws,
    environment: str,
    stack: Record,
    image_id: str,
    previous: str,
    after: str | None,
    say: Say,
    poll_seconds: float,
) -> Result:
    """Follow the update to its end and turn the stack's final status into a Result."""
    name = stack["StackName"]
    desired = parameter_values(stack).get("DesiredCapacity", "?")
    replaced: list[str] = []
    rolling_back = False

    # Instances that signalled while the update went forward run the new
    # image; the ones signalling during a rollback run the old one again.
    def count(fresh: list[events.Event]) -> None:
        nonlocal rolling_back
        for event in fresh:
            rolling_back = rolling_back or event["ResourceStatus"].startswith(
                "UPDATE_ROLLBACK"
            )
            for instance in [] if rolling_back else events.signalled_instances([event]):
                if instance not in replaced:
                    replaced.append(instance)
                    progress = f"{len(replaced)} of {desired}"
                    say(f"{name}: instances replaced so far: {progress}")

    try:
        feed = follow_stack(
            aws,
            stack["StackId"],
            name,
            after,
            say,
            poll_seconds=poll_seconds,
            on_events=count,
        )
    except KeyboardInterrupt:
        return Result(
            Outcome.INTERRUPTED,
            f"interrupted: the release of {image_id} goes on in CloudFormation;"
            f" follow it with `invoke status --target aws --env {environment}`",
        )
    return outcome(aws, environment, feed, image_id, previous)


def outcome(
    aws: Aws, environment: str, feed: events.EventFeed, image_id: str, previous: str
) -> Result:
    name = feed.stack_name
    reason = events.first_failure(feed.seen)
    if feed.status == "UPDATE_COMPLETE":
        history.record(aws, environment, image_id, previous)
        return Result(
            Outcome.RELEASED, f"released: {image_id} serves {name} (was {previous})"
        )
    if feed.status == "UPDATE_ROLLBACK_COMPLETE":
        return Result(
            Outcome.ROLLED_BACK,
            f"rolled back: {previous} still serves {name}; {image_id} failed: {reason}",
        )
    return Result(
        Outcome.ROLLBACK_FAILED,
        f"rollback failed: {name} is {feed.status} and needs attention ({reason});"
        f" fix the cause, then run"
        f" `aws cloudformation continue-update-rollback --stack-name {name}`",
    )


def rollback(
    aws: Aws,
    environment: str,
    say: Say,
    dry_run: bool = False,
    poll_seconds: float = 5.0,
) -> Result:
    """Release the image that served before the last recorded release."""
    aws.check_configured()
    image_id = history.previous_image(aws, environment)
    say(f"rolling back to {image_id}, which served before the last release")
    return release(
        aws, environment, image_id, say, dry_run=dry_run, poll_seconds=poll_seconds
    )
