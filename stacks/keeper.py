"""The local fleet's keeper: a background process that heals it like an ASG would."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from stacks import localfleet
from stacks.fleet import Fleet
from stacks.fleetstate import FleetBusyError

log = logging.getLogger("stacks")

ROUND_SECONDS = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.keeper")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--env", required=True)
    arguments = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    stopping = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    fleet = Fleet(arguments.state_dir, arguments.env, say=log.info)
    down_since: dict[str, float] = {}
    log.info("keeper - watching the %s fleet", arguments.env)
    while not stopping and fleet.files.state.is_file():
        try:
            # Without waiting: while a release, up or down holds the fleet,
            # the keeper stands aside, as an ASG suspends replacing
            # instances during a rolling update.
            with fleet.files.lock(wait=0):
                localfleet.heal(fleet, down_since)
        except FleetBusyError:
            down_since.clear()
        except Exception:
            log.exception("keeper - a round failed; trying again")
        time.sleep(ROUND_SECONDS)
    log.info("keeper - stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
