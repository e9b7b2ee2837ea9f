"""Discovery backends: local registry entries and Cloud Map operation polling."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from calcfleet import cloudmap
from calcfleet.discovery import LocalRegistry, StaticDiscovery


def test_local_registry_lists_every_entry_and_forgets_a_deregistered_one(
    tmp_path: Path,
) -> None:
    first, second = LocalRegistry(tmp_path), LocalRegistry(tmp_path)

    async def scenario() -> tuple[list[str], list[str]]:
        await first.register("127.0.0.1:1001")
        await second.register("127.0.0.1:1002")
        both = await first.addresses()
        await first.deregister()
        return both, await second.addresses()

    both, after = asyncio.run(scenario())
    assert both == ["127.0.0.1:1001", "127.0.0.1:1002"]
    assert after == ["127.0.0.1:1002"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["127.0.0.1_1002.json"]


def test_local_registry_skips_an_unreadable_entry(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    registry = LocalRegistry(tmp_path)
    asyncio.run(registry.register("127.0.0.1:1003"))
    assert asyncio.run(registry.addresses()) == ["127.0.0.1:1003"]


def test_static_list_is_what_the_settings_say() -> None:
    static = StaticDiscovery(("10.0.0.1:50051", "10.0.0.2:50051"))
    assert asyncio.run(static.addresses()) == ["10.0.0.1:50051", "10.0.0.2:50051"]


class _Operations:
    """Cloud Map whose operations stay PENDING for a while, as AWS's do.

    moto finishes every operation at once, so the polling is tested here.
    """

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.polls = 0

    def register_instance(self, **arguments: Any) -> dict[str, str]:
        return {"OperationId": "op-1"}

    def get_operation(self, OperationId: str) -> dict[str, Any]:  # noqa: N803
        status = self.statuses[min(self.polls, len(self.statuses) - 1)]
        self.polls += 1
        return {"Operation": {"Status": status, "ErrorMessage": "quota reached"}}


def test_registration_waits_for_its_operation_to_succeed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cloudmap, "POLL_SECONDS", 0)
    client = _Operations(["SUBMITTED", "PENDING", "SUCCESS"])
    cloudmap.register(client, "srv-1", "10.0.0.1:50051")
    assert client.polls == 3


def test_failed_registration_is_an_error_with_aws_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cloudmap, "POLL_SECONDS", 0)
    with pytest.raises(cloudmap.CloudMapOperationError) as failure:
        cloudmap.register(_Operations(["PENDING", "FAIL"]), "srv-1", "10.0.0.1:1")
    assert str(failure.value) == (
        "cloudmap - register 10.0.0.1:1 failed: quota reached"
    )
