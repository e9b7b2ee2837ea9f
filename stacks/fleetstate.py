"""What a local fleet is made of, and its release history, in the state directory."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import getpass
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from calcfleet.errors import CalcfleetError
from stacks.history import HistoryEmptyError, Release


class FleetBusyError(CalcfleetError):
    """Another command (or the fleet's keeper) is changing the fleet right now."""


@dataclasses.dataclass
class InstanceRecord:
    """One instance: what the Auto Scaling group would list, plus local pids."""

    name: str
    image: str
    zone: str
    address: str
    slot: int
    launcher: int  # host pid of systemd-nspawn
    leader: int  # host pid of the instance's systemd
    work_dir: str
    launched_at: str

    @property
    def endpoint(self) -> str:
        return f"{self.address}:50051"


@dataclasses.dataclass
class FleetState:
    """The fleet of one environment: its image (the "launch template") and instances."""

    environment: str
    image: str
    instances: list[InstanceRecord] = dataclasses.field(default_factory=list)
    keeper: int = 0

    def on_image(self, image: str) -> list[InstanceRecord]:
        return [i for i in self.instances if i.image == image]

    def free_slot(self, slots: int) -> int:
        used = {i.slot for i in self.instances}
        return next(slot for slot in range(1, slots + 1) if slot not in used)


class StateFiles:
    """<state_dir>/fleet/<env>/: state.json, history.json, the lock, instance dirs."""

    def __init__(self, state_dir: Path, environment: str) -> None:
        self.directory = state_dir / "fleet" / environment
        self.environment = environment

    @property
    def state(self) -> Path:
        return self.directory / "state.json"

    @property
    def history(self) -> Path:
        return self.directory / "history.json"

    def load(self) -> FleetState | None:
        if not self.state.is_file():
            return None
        document = json.loads(self.state.read_text())
        instances = [InstanceRecord(**i) for i in document.pop("instances")]
        return FleetState(**document, instances=instances)

    def save(self, state: FleetState) -> None:
        _write(self.state, dataclasses.asdict(state))

    def forget(self) -> None:
        self.state.unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self, wait: float = 120.0) -> Iterator[None]:
        """Only one changer at a time: up, down, release, rollback or the keeper."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "lock").open("w") as file:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise FleetBusyError(
                            f"the {self.environment} fleet is busy (another release,"
                            " up or down, or its keeper replacing an instance);"
                            " try again in a minute"
                        ) from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)

    # The same records as the SSM parameter of an AWS environment
    # (stacks/history.py): {"image", "previous", "released_at"} per release,
    # oldest first; "by" is the local user rather than an IAM identity.

    def record(self, image: str, previous: str) -> Release:
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        release = Release(image, previous, now, by=_user())
        _write(self.history, [*map(dataclasses.asdict, self.releases()), release])
        return release

    def releases(self) -> list[Release]:
        if not self.history.is_file():
            return []
        return [Release(**entry) for entry in json.loads(self.history.read_text())]

    def previous_image(self) -> str:
        recorded = self.releases()
        if not recorded:
            raise HistoryEmptyError(
                f"no release recorded for the {self.environment} fleet on this machine"
                f" ({self.history}): nothing to roll back to"
            )
        return recorded[-1].previous


def _write(path: Path, document: Any) -> None:
    # Whole or not at all: a reader never sees half a state file.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document, indent=2, default=_plain) + "\n")
    os.replace(partial, path)


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value)


def _user() -> str:
    return getpass.getuser()
