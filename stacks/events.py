"""Stack events as CloudFormation emits them: which are new, what they say."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

Event = dict[str, Any]

# Statuses in which a stack operation has ended and nothing more will happen
# without someone acting. See: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/view-stack-events.html
TERMINAL = frozenset(
    {
        "CREATE_COMPLETE",
        "CREATE_FAILED",
        "ROLLBACK_COMPLETE",
        "ROLLBACK_FAILED",
        "UPDATE_COMPLETE",
        "UPDATE_FAILED",
        "UPDATE_ROLLBACK_COMPLETE",
        "UPDATE_ROLLBACK_FAILED",
        "DELETE_COMPLETE",
        "DELETE_FAILED",
    }
)
# Statuses from which a stack accepts an update or a change set.
UPDATABLE = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "IMPORT_COMPLETE",
    }
)

# The ASG's rolling update reports each new instance's signal, e.g.
# "Received SUCCESS signal with UniqueId i-0123456789abcdef0".
_SUCCESS_SIGNAL = re.compile(r"Received SUCCESS signal with UniqueId (\S+)")


class EventFeed:
    """Hands out each event of one stack once, oldest first, after a starting point."""

    def __init__(self, stack_name: str, after_event_id: str | None) -> None:
        self.stack_name = stack_name
        self.last_event_id = after_event_id
        self.status: str | None = None
        self.status_reason = ""
        self.seen: list[Event] = []

    def take(self, newest_first: list[Event]) -> list[Event]:
        """The events not handed out yet, from a page read back to last_event_id."""
        fresh = []
        for event in newest_first:
            if event["EventId"] == self.last_event_id:
                break
            fresh.append(event)
        fresh.reverse()
        if fresh:
            self.last_event_id = fresh[-1]["EventId"]
        self.seen.extend(fresh)
        for event in fresh:
            if is_stack_event(event, self.stack_name):
                self.status = event["ResourceStatus"]
                self.status_reason = event.get("ResourceStatusReason", "")
        return fresh

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL


def is_stack_event(event: Event, stack_name: str) -> bool:
    """True for an event about the stack itself rather than one of its resources."""
    return bool(
        event["ResourceType"] == "AWS::CloudFormation::Stack"
        and event["LogicalResourceId"] == stack_name
    )


def describe(event: Event) -> str:
    """One line for a person: time, status, resource, and the reason if any."""
    stamp = event["Timestamp"]
    clock = (
        stamp.strftime("%H:%M:%S") if hasattr(stamp, "strftime") else str(stamp)[11:19]
    )
    line = f"{clock} {event['ResourceStatus']:<45} {event['LogicalResourceId']}"
    reason = event.get("ResourceStatusReason")
    return f"{line}: {reason}" if reason else line


def signalled_instances(events: Iterable[Event]) -> list[str]:
    """Instances that signalled success, in order, each once."""
    found: list[str] = []
    for event in events:
        match = _SUCCESS_SIGNAL.search(event.get("ResourceStatusReason", ""))
        if match and match.group(1) not in found:
            found.append(match.group(1))
    return found


def first_failure(events: Iterable[Event]) -> str:
    """The reason of the first resource that failed: the cause, not the cascade."""
    for event in events:
        if event["ResourceStatus"].endswith("_FAILED") and event["ResourceType"] != (
            "AWS::CloudFormation::Stack"
        ):
            return (
                f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"
            )
    for event in events:
        if event["ResourceStatus"] in (
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "ROLLBACK_IN_PROGRESS",
        ):
            return str(event.get("ResourceStatusReason", ""))
    return ""
