"""Logging for the server: the journal under systemd, stderr everywhere else."""

from __future__ import annotations

import logging
import sys

from calcfleet.settings import Settings

LOGGER_NAME = "calcfleet"


def configure(settings: Settings) -> None:
    """Send calcfleet's log records to the journal or to stderr, once, at start.

    Under systemd, identifiers travel as journal fields: pass them as
    `extra={"CALCFLEET_PEER": address}` and `journalctl CALCFLEET_PEER=...`
    finds them.
    """
    handler: logging.Handler
    if settings.journal_stream and _journal_handler() is not None:
        handler = _journal_handler()  # type: ignore[assignment]
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger(LOGGER_NAME)
    root.handlers[:] = [handler]
    root.setLevel(settings.server.log_level.upper())
    root.propagate = False


def _journal_handler() -> logging.Handler | None:
    try:
        from systemd.journal import JournalHandler
    except ImportError:  # systemd-python is not installed off Linux
        return None
    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER=LOGGER_NAME)
    return handler
