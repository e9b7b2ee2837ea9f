"""The network and fleet stacks of an environment: create, update, follow, delete."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from calcfleet.errors import CalcfleetError
from stacks import events, history, template
from stacks.aws import Aws, Record

log = logging.getLogger("stacks")

Say = Callable[[str], None]
OnEvents = Callable[[list[events.Event]], None]


class StackMissingError(CalcfleetError):
    """The stack a command needs does not exist."""


class StackFailedError(CalcfleetError):
    """A stack operation ended in a failed or rolled-back state."""


class ImageMissingError(CalcfleetError):
    """Creating the fleet needs an image and none was given."""


def stack_name(environment: str, stack: str) -> str:
    return f"calcfleet-{environment}-{stack}"


def outputs(stack: Record) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def parameter_values(stack: Record) -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}


def latest_event_id(aws: Aws, name: str) -> str | None:
    newest = aws.stack_events(name)[:1]
    return str(newest[0]["EventId"]) if newest else None


def follow(
    aws: Aws,
    stack_id: str,
    name: str,
    after_event_id: str | None,
    say: Say,
    *,
    poll_seconds: float,
    on_events: OnEvents | None = None,
) -> events.EventFeed:
    """Print each new event once until the stack's operation ends."""
    feed = events.EventFeed(name, after_event_id)
    while True:
        fresh = feed.take(aws.stack_events(stack_id, stop_at=feed.last_event_id))
        for event in fresh:
            say(events.describe(event))
        if on_events is not None:
            on_events(fresh)
        if feed.is_finished:
            return feed
        time.sleep(poll_seconds)


def apply(
    aws: Aws, name: str, body: str, parameters: dict[str, str], say: Say, *, poll: float
) -> Record:
    """Create the stack, or update it to this template and these parameters."""
    existing = aws.stack(name)
    after = latest_event_id(aws, name) if existing else None
    if existing is None:
        say(f"{name}: creating")
        aws.create_stack(name, body, parameters)
    elif not aws.update_stack(name, body, parameters):
        say(f"{name}: up to date")
        return existing

    created = aws.stack(name)
    assert created is not None, f"{name} vanished right after it was submitted"
    feed = follow(aws, created["StackId"], name, after, say, poll_seconds=poll)
    if feed.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise StackFailedError(
            f"{name} ended {feed.status}: {events.first_failure(feed.seen)}"
        )
    done = aws.stack(name)
    assert done is not None
    return done


def up(
    aws: Aws,
    environment: str,
    image_id: str | None,
    say: Say,
    *,
    certificate_arn: str | None = None,
    poll_seconds: float = 5.0,
) -> Record:
    """Create or update both stacks of ENVIRONMENT; returns the fleet stack."""
    aws.check_configured()
    values = template.parameters(environment)
    fleet_name = stack_name(environment, "fleet")
    fleet = aws.stack(fleet_name)
    image = image_id or (parameter_values(fleet).get("ImageId") if fleet else None)
    if not image:
        raise ImageMissingError(f"{fleet_name} does not exist yet: pass --ami IMAGE_ID")

    network = apply(
        aws,
        stack_name(environment, "network"),
        template.body("network"),
        values["network"],
        say,
        poll=poll_seconds,
    )
    fleet_parameters = {
        **values["fleet"],
        **_network_parameters(network),
        "ImageId": image,
    }
    if certificate_arn:
        fleet_parameters["CertificateArn"] = certificate_arn
    return apply(
        aws,
        fleet_name,
        template.body("fleet"),
        fleet_parameters,
        say,
        poll=poll_seconds,
    )


def _network_parameters(network: Record) -> dict[str, str]:
    found = outputs(network)
    return {k: found[k] for k in ("VpcId", "PublicSubnetIds", "PrivateSubnetIds")}


def down(aws: Aws, environment: str, say: Say, poll_seconds: float = 5.0) -> None:
    """Delete the fleet stack, then the network it stands in."""
    aws.check_configured()
    for stack in ("fleet", "network"):
        name = stack_name(environment, stack)
        existing = aws.stack(name)
        if existing is None:
            say(f"{name}: does not exist")
            continue
        after = latest_event_id(aws, name)
        aws.delete_stack(name)
        feed = follow(
            aws, existing["StackId"], name, after, say, poll_seconds=poll_seconds
        )
        if feed.status != "DELETE_COMPLETE":
            raise StackFailedError(
                f"{name} ended {feed.status}: {events.first_failure(feed.seen)}"
            )


def status(aws: Aws, environment: str, say: Say) -> None:
    """Show the stacks, the image in service, the instances and their target health."""
    aws.check_configured()
    for stack in ("network", "fleet"):
        name = stack_name(environment, stack)
        found = aws.stack(name)
        say(f"{name}: {found['StackStatus'] if found else 'does not exist'}")
    fleet = aws.stack(stack_name(environment, "fleet"))
    if fleet is None:
        return

    image = parameter_values(fleet).get("ImageId", "?")
    say(f"image in service: {image}")
    recorded = history.releases(aws, environment)
    if recorded:
        last = recorded[-1]
        say(
            f"last release: {last.image} at {last.released_at}"
            f" (before it {last.previous})"
        )

    found = outputs(fleet)
    instances = aws.group_instances(found["AutoScalingGroupName"])
    images = aws.instance_images([i["InstanceId"] for i in instances])
    health = aws.target_health(found["TargetGroupArn"])
    say(f"instances: {len(instances)}")
    for instance in instances:
        instance_id = instance["InstanceId"]
        say(
            f"  {instance_id} {instance['LifecycleState']}"
            f" image {images.get(instance_id, '?')}"
            f" target {health.get(instance_id, 'unregistered')}"
        )
