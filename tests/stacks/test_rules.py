"""The fleet rules the local fleet shares with the stack template."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stacks import template
from stacks.rules import FleetRules, RulesInvalidError, duration_seconds, fleet_rules
from stacks.template import EnvironmentUnknownError


def test_local_environment_rules_come_from_template_and_parameters() -> None:
    assert fleet_rules("local") == FleetRules(
        min_size=2,
        max_size=4,
        desired_capacity=3,
        max_batch_size=1,
        min_instances_in_service=2,
        min_successful_instances_percent=100,
        pause_seconds=120,
    )


def test_defaults_of_the_template_fill_what_an_environment_leaves_out(
    tmp_path: Path,
) -> None:
    (tmp_path / "bare.json").write_text(json.dumps({"fleet": {}}))

    found = fleet_rules("bare", params_dir=tmp_path)

    assert (found.min_size, found.max_size, found.desired_capacity) == (2, 10, 2)
    assert found.pause_seconds == 15 * 60


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT15M", 900), ("PT1H", 3600), ("PT90S", 90), ("PT1H2M3S", 3723), ("PT0S", 0)],
)
def test_iso_8601_durations_become_seconds(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["15M", "PT", "P1D", "PT5m", "PT1.5M", ""])
def test_durations_cloudformation_refuses_are_refused(text: str) -> None:
    with pytest.raises(RulesInvalidError, match="is not an ISO 8601 duration"):
        duration_seconds(text)


@pytest.mark.parametrize(
    ("fleet", "message"),
    [
        ({"PauseTime": "PT2H"}, "PauseTime of 7200 s is not within 1 s..1 h"),
        (
            {"MinInstancesInService": "10"},
            "MinInstancesInService 10 must be below MaxSize 10",
        ),
        ({"DesiredCapacity": "1"}, "desired capacity 1 is outside 2..10"),
    ],
)
def test_rules_a_rolling_update_cannot_follow_are_refused(
    tmp_path: Path, fleet: dict[str, str], message: str
) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"fleet": fleet}))

    with pytest.raises(RulesInvalidError) as raised:
        fleet_rules("bad", params_dir=tmp_path)

    assert str(raised.value) == message


def test_unknown_environment_lists_the_known_ones(tmp_path: Path) -> None:
    shutil.copy(template.PARAMS_DIR / "local.json", tmp_path / "local.json")

    with pytest.raises(EnvironmentUnknownError) as raised:
        fleet_rules("qa", params_dir=tmp_path)

    assert str(raised.value) == f"no environment 'qa': {tmp_path} has local"
