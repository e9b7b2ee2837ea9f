"""Real calcfleet servers started as processes, for tests to call and to stop."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from calcfleet import portfile

START_TIMEOUT = 20.0


@dataclasses.dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the drain; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


StartServer = Callable[..., RunningServer]


def launch_server(
    directory: Path, *arguments: str, env: dict[str, str] | None = None
) -> RunningServer:
    """Start `calcfleet serve` on a free loopback port and wait until it serves."""
    index = len(list(directory.glob("server-*.log")))
    port_file = directory / f"server-{index}.port"
    log = directory / f"server-{index}.log"
    command = [sys.executable, "-m", "calcfleet.cli", "serve"]
    command += ["--listen", "127.0.0.1:0", "--port-file", str(port_file)]
    environment = {**os.environ}
    environment.pop("NOTIFY_SOCKET", None)
    environment.update(env or {})
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, *arguments], stderr=sink, stdout=sink, env=environment
        )
    return RunningServer(process, _wait_for_port(process, port_file, log), log)


def _wait_for_port(process: subprocess.Popen[bytes], port_file: Path, log: Path) -> int:
    try:
        return portfile.wait(process, port_file, START_TIMEOUT)
    except portfile.ServerNotStartedError as error:
        process.kill()
        pytest.fail(f"{error}:\n{log.read_text()}")


# The costliest kind of expression the default limits admit: each term is an
# integer square root of a 65,000-bit number, and the text is just under the
# 10,000-character limit. It takes about half a second here.
EXPENSIVE_EXPRESSION = "+".join(["isqrt(2**65000)%7"] * 520)
