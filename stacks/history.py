"""The release history of an environment, kept in an SSM parameter beside its stacks."""

from __future__ import annotations

import dataclasses
import datetime
import json

from calcfleet.errors import CalcfleetError
from stacks.aws import Aws

# Why SSM: every version of a parameter is kept (the last 100) with its time
# and the IAM identity that wrote it, readable by anyone who may read the
# stack, from any laptop or CI job. Stack tags would be the other place, but
# changing a stack's tags updates every resource that carries them.
# See: https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-versions.html


class HistoryEmptyError(CalcfleetError):
    """No release was ever recorded, so there is nothing to roll back to."""


@dataclasses.dataclass(frozen=True)
class Release:
    image: str
    previous: str
    released_at: str
    by: str = ""


def parameter_name(environment: str) -> str:
    return f"/calcfleet/{environment}/release"


def record(aws: Aws, environment: str, image: str, previous: str) -> Release:
    """Note that IMAGE now serves ENVIRONMENT, replacing PREVIOUS."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    release = Release(image=image, previous=previous, released_at=now)
    value = {"image": image, "previous": previous, "released_at": now}
    aws.put_parameter(
        parameter_name(environment),
        json.dumps(value, sort_keys=True),
        f"calcfleet: image serving {environment}; versions are its release history",
    )
    return release


def releases(aws: Aws, environment: str) -> list[Release]:
    """Every recorded release, oldest first."""
    found = []
    for version in aws.parameter_history(parameter_name(environment)):
        value = json.loads(version["Value"])
        found.append(
            Release(
                image=value["image"],
                previous=value["previous"],
                released_at=value["released_at"],
                by=str(version.get("LastModifiedUser", "")),
            )
        )
    return found


def previous_image(aws: Aws, environment: str) -> str:
    """The image that served before the last release."""
    recorded = releases(aws, environment)
    if not recorded:
        raise HistoryEmptyError(
            f"no release recorded for {environment} ({parameter_name(environment)}):"
            " nothing to roll back to"
        )
    return recorded[-1].previous
