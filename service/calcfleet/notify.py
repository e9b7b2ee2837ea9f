"""Readiness, watchdog and stopping notices to systemd for a Type=notify unit."""

from __future__ import annotations

import asyncio
import logging

from calcfleet.settings import Settings

log = logging.getLogger(__name__)


class Notifier:
    """sd_notify(3) through systemd-python; does nothing outside systemd."""

    def __init__(self, settings: Settings) -> None:
        self._enabled = bool(settings.notify_socket)
        # systemd kills a unit that misses WatchdogSec; pinging at half the
        # interval is what sd_watchdog_enabled(3) recommends.
        self._watchdog_seconds = settings.watchdog_usec / 2_000_000
        self._watchdog: asyncio.Task[None] | None = None

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")
        if self._enabled and self._watchdog_seconds > 0 and self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._ping())

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self._send(f"STOPPING=1\nSTATUS={status}")

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()

    async def _ping(self) -> None:
        # Runs on the event loop, so a loop blocked for longer than the
        # interval is exactly what the watchdog is there to catch.
        while True:
            self._send("WATCHDOG=1")
            await asyncio.sleep(self._watchdog_seconds)

    def _send(self, message: str) -> None:
        if not self._enabled:
            return
        from systemd import daemon

        if not daemon.notify(message):
            log.warning("systemd - notification %r was not delivered", message)
