"""The --port-file handshake: a server writes the port it bound, a launcher waits."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from calcfleet.errors import CalcfleetError


class ServerNotStartedError(CalcfleetError):
    """A launched server exited, or wrote no port file in time."""


def write(path: Path, port: int) -> None:
    """Write the port whole, then rename, so that a reader never sees half a number."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{port}\n")
    partial.replace(path)


def wait(process: subprocess.Popen[bytes], path: Path, timeout: float) -> int:
    """The port a just-launched server wrote to `path`, once it serves."""
    give_up = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise ServerNotStartedError(f"server exited with {process.returncode}")
        if time.monotonic() > give_up:
            raise ServerNotStartedError(f"server did not start within {timeout:g} s")
        time.sleep(0.05)
    return int(path.read_text())
