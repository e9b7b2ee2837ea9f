"""The fleet's sizes and release rules, from the fleet template and an environment."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from calcfleet.errors import CalcfleetError
from stacks import template

# CloudFormation accepts PauseTime as PT#H#M#S, and at most one hour of it.
# See: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-updatepolicy.html
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")
MAX_PAUSE_SECONDS = 3600


class RulesInvalidError(CalcfleetError):
    """The template and parameters together describe a fleet that cannot roll."""


@dataclasses.dataclass(frozen=True)
class FleetRules:
    """What the Auto Scaling group and its rolling update will do, in plain numbers."""

    min_size: int
    max_size: int
    desired_capacity: int
    max_batch_size: int
    min_instances_in_service: int
    min_successful_instances_percent: int
    pause_seconds: int


def duration_seconds(text: str) -> int:
    """Seconds in an ISO 8601 duration of the form CloudFormation takes (PT5M30S)."""
    match = _DURATION.match(text)
    if text == "PT" or not match:
        raise RulesInvalidError(f"{text!r} is not an ISO 8601 duration like PT15M")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def fleet_rules(
    environment: str,
    template_dir: Path = template.TEMPLATE_DIR,
    params_dir: Path = template.PARAMS_DIR,
) -> FleetRules:
    """The rules the fleet of ENVIRONMENT follows, checked for consistency."""
    document = template.load("fleet", template_dir)
    values = {
        name: str(spec["Default"])
        for name, spec in document["Parameters"].items()
        if "Default" in spec
    }
    values.update(template.parameters(environment, params_dir)["fleet"])

    group = document["Resources"]["AutoScalingGroup"]
    rolling = group["UpdatePolicy"]["AutoScalingRollingUpdate"]
    properties = group["Properties"]

    def resolve(value: Any) -> str:
        if isinstance(value, dict) and "Ref" in value:
            return values[value["Ref"]]
        return str(value)

    rules = FleetRules(
        min_size=int(resolve(properties["MinSize"])),
        max_size=int(resolve(properties["MaxSize"])),
        desired_capacity=int(resolve(properties["DesiredCapacity"])),
        max_batch_size=int(resolve(rolling["MaxBatchSize"])),
        min_instances_in_service=int(resolve(rolling["MinInstancesInService"])),
        min_successful_instances_percent=int(
            resolve(rolling.get("MinSuccessfulInstancesPercent", 100))
        ),
        pause_seconds=duration_seconds(resolve(rolling["PauseTime"])),
    )
    check(rules)
    return rules


def check(rules: FleetRules) -> None:
    """Refuse rules with which a rolling update could never make progress."""
    if not rules.min_size <= rules.desired_capacity <= rules.max_size:
        raise RulesInvalidError(
            f"desired capacity {rules.desired_capacity} is outside"
            f" {rules.min_size}..{rules.max_size}"
        )
    # An update adds a batch beside the instances kept in service; with
    # MinInstancesInService at MaxSize there is never room for a new instance.
    if rules.min_instances_in_service >= rules.max_size:
        raise RulesInvalidError(
            f"MinInstancesInService {rules.min_instances_in_service} must be"
            f" below MaxSize {rules.max_size}"
        )
    if not 0 < rules.pause_seconds <= MAX_PAUSE_SECONDS:
        raise RulesInvalidError(
            f"PauseTime of {rules.pause_seconds} s is not within 1 s..1 h"
        )
    if rules.max_batch_size < 1:
        raise RulesInvalidError("MaxBatchSize must be at least 1")
