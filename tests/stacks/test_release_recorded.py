"""The release's reaction to real CloudFormation behaviour, from recorded events."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from stacks import history, stack
from stacks.aws import Aws
from stacks.release import Outcome, release
from tests.stacks.conftest import RECORDED, certificate, register_image

pytestmark = pytest.mark.slow


class ReplayedEvents(Aws):
    """moto for everything but the stack's events after execution: those are recorded.

    moto applies a change set at once and emits no rolling-update or rollback
    events, so this is the one place a fake stands in: at the choke point
    that reads events, revealing a few more recorded events per poll.
    """

    def __init__(self, session: boto3.Session, recording: Path, interrupt_at: int = 0):
        super().__init__(session)
        page = json.loads(recording.read_text())["StackEvents"]
        for event in page:
            event["Timestamp"] = datetime.datetime.fromisoformat(event["Timestamp"])
        self.pending = list(reversed(page))
        self.revealed: list[dict[str, Any]] = []
        self.executed = False
        self.polls = 0
        self.interrupt_at = interrupt_at

    def execute_change_set(self, change_set_id: str) -> None:
        super().execute_change_set(change_set_id)
        self.executed = True

    def stack_events(
        self, name: str, stop_at: str | None = None
    ) -> list[dict[str, Any]]:
        if not self.executed:
            return super().stack_events(name, stop_at)
        self.polls += 1
        if self.polls == self.interrupt_at:
            raise KeyboardInterrupt
        self.revealed += self.pending[:3]
        del self.pending[:3]
        newest_first = list(reversed(self.revealed))
        ids = [e["EventId"] for e in newest_first]
        return newest_first[: ids.index(stop_at)] if stop_at in ids else newest_first


@pytest.fixture
def fleet(session: boto3.Session) -> tuple[str, str]:
    """A fleet stack on moto serving a verified image, and a second one to release."""
    first = register_image(session, "1.0.0")
    second = register_image(session, "1.1.0")
    stack.up(
        Aws(session),
        "prod",
        first,
        lambda line: None,
        certificate_arn=certificate(session),
        poll_seconds=0,
    )
    return first, second


def _release(session: boto3.Session, recording: str, image: str, **replay: Any) -> Any:
    aws = ReplayedEvents(session, RECORDED / f"{recording}.json", **replay)
    lines: list[str] = []
    result = release(aws, "prod", image, lines.append, poll_seconds=0)
    return result, lines, aws


def test_successful_rolling_update_is_released_and_recorded(
    session: boto3.Session, fleet: tuple[str, str]
) -> None:
    first, second = fleet

    result, lines, aws = _release(session, "rolling_update_succeeds", second)

    assert result.outcome == Outcome.RELEASED == 0
    assert (
        result.message
        == f"released: {second} serves calcfleet-prod-fleet (was {first})"
    )
    assert [line for line in lines if "replaced so far" in line] == [
        "calcfleet-prod-fleet: instances replaced so far: 1 of 2",
        "calcfleet-prod-fleet: instances replaced so far: 2 of 2",
    ]
    # Each of the 17 recorded events printed exactly once.
    assert sum(1 for line in lines if line[:2] == "14") == 17
    assert history.previous_image(aws, "prod") == first


def test_signal_timeout_rolls_back_to_the_previous_image(
    session: boto3.Session, fleet: tuple[str, str]
) -> None:
    first, second = fleet

    result, lines, aws = _release(session, "signal_timeout_rolls_back", second)

    assert result.outcome == Outcome.ROLLED_BACK == 3
    assert result.message == (
        f"rolled back: {first} still serves calcfleet-prod-fleet; {second} failed:"
        " AutoScalingGroup: Received 0 SUCCESS signal(s) out of 1. Unable to satisfy"
        " 100% MinSuccessfulInstancesPercent requirement"
    )
    # The instance that signalled during the rollback runs the old image.
    assert not [line for line in lines if "replaced so far" in line]
    assert history.releases(aws, "prod") == []


def test_failed_rollback_names_the_recovery_command(
    session: boto3.Session, fleet: tuple[str, str]
) -> None:
    _, second = fleet

    result, _, _ = _release(session, "rollback_fails", second)

    assert result.outcome == Outcome.ROLLBACK_FAILED == 4
    assert result.message == (
        "rollback failed: calcfleet-prod-fleet is UPDATE_ROLLBACK_FAILED and needs"
        " attention (AutoScalingGroup: Received 0 SUCCESS signal(s) out of 1. Unable"
        " to satisfy 100% MinSuccessfulInstancesPercent requirement); fix the cause,"
        " then run `aws cloudformation continue-update-rollback --stack-name"
        " calcfleet-prod-fleet`"
    )


def test_rollback_trigger_after_all_signals_still_rolls_back(
    session: boto3.Session, fleet: tuple[str, str]
) -> None:
    first, second = fleet

    result, lines, aws = _release(session, "rollback_trigger_after_signals", second)

    assert result.outcome == Outcome.ROLLED_BACK == 3
    assert result.message.startswith(
        f"rolled back: {first} still serves calcfleet-prod-fleet; {second} failed:"
        " Stack update was rolled back because of rollback trigger:"
        " arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
        "calcfleet-prod-fleet-UnhealthyHostsAlarm-"
    )
    assert "calcfleet-prod-fleet: instances replaced so far: 2 of 2" in lines
    assert history.releases(aws, "prod") == []


def test_ctrl_c_mid_release_says_the_release_goes_on(
    session: boto3.Session, fleet: tuple[str, str]
) -> None:
    _, second = fleet

    result, lines, _ = _release(
        session, "rolling_update_succeeds", second, interrupt_at=3
    )

    assert result.outcome == Outcome.INTERRUPTED == 130
    assert result.message == (
        f"interrupted: the release of {second} goes on in CloudFormation;"
        " follow it with `invoke status --target aws --env prod`"
    )
    assert sum(1 for line in lines if line[:2] == "14") == 6


def test_releasing_the_serving_image_waits_for_nothing(
    session: boto3.Session, fleet: tuple[str, str]
) -> None:
    first, _ = fleet

    result, lines, aws = _release(session, "rolling_update_succeeds", first)

    assert result.outcome == Outcome.RELEASED
    assert result.message == f"already released: {first} serves calcfleet-prod-fleet"
    assert lines == []
    assert aws.polls == 0
