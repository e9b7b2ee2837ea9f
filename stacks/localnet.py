"""Every `ip` call: the host bridge a local fleet's instances sit on, and addresses."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
from collections.abc import Collection
from pathlib import Path

from calcfleet.errors import CalcfleetError
from stacks import template

log = logging.getLogger("stacks")

# Instances take host numbers from here up; .1 is the host's end of the bridge.
FIRST_HOST = 10
LAST_HOST = 250


class NetworkError(CalcfleetError):
    """The bridge could not be made, or no address is left on it."""


@dataclasses.dataclass(frozen=True)
class Site:
    """Where one environment's local fleet lives on this machine.

    From the "local" section of stacks/params/ENV.json, so a test fleet and
    a developer's fleet can run side by side without sharing a bridge.
    """

    bridge: str
    prefix: str  # the first three octets of the /24: "10.77.0"
    listen: str  # the balancer's address, on loopback

    @property
    def gateway(self) -> str:
        return f"{self.prefix}.1"


def site(environment: str, params_dir: Path = template.PARAMS_DIR) -> Site:
    template.parameters(environment, params_dir)  # an unknown name fails here
    document = json.loads((params_dir / f"{environment}.json").read_text())
    local = document.get("local")
    if not local:
        raise NetworkError(
            f'stacks/params/{environment}.json has no "local" section:'
            " it is not an environment the local fleet can run"
        )
    return Site(local["Bridge"], local["Subnet"], local["Listen"])


def _ip(*arguments: str) -> subprocess.CompletedProcess[str]:
    log.debug("network - ip %s", " ".join(arguments))
    return subprocess.run(
        ["ip", *arguments], capture_output=True, text=True, check=False
    )


def has_bridge(name: str) -> bool:
    return _ip("link", "show", "dev", name).returncode == 0


def create_bridge(place: Site) -> None:
    """The bridge with the host's address on it; instances join it through nspawn."""
    if has_bridge(place.bridge):
        return
    for arguments in (
        ("link", "add", place.bridge, "type", "bridge"),
        ("address", "add", f"{place.gateway}/24", "dev", place.bridge),
        ("link", "set", place.bridge, "up"),
    ):
        result = _ip(*arguments)
        if result.returncode != 0:
            _ip("link", "delete", place.bridge)
            raise NetworkError(f"ip {' '.join(arguments)}: {result.stderr.strip()}")
    log.info("network - bridge %s with %s/24", place.bridge, place.gateway)


def remove_bridge(place: Site) -> None:
    if has_bridge(place.bridge):
        _ip("link", "delete", place.bridge)
        log.info("network - bridge %s removed", place.bridge)


def free_address(place: Site, used: Collection[str]) -> str:
    for host in range(FIRST_HOST, LAST_HOST + 1):
        address = f"{place.prefix}.{host}"
        if address not in used:
            return address
    raise NetworkError(f"no free address left on {place.bridge}")


def network_file(address: str) -> str:
    """systemd-networkd's configuration for the instance's end of the veth pair.

    nspawn names that end host0; this file sorts before the image's own
    80-container-host0.network (DHCP), so it is the one that applies.
    """
    return (
        "[Match]\nName=host0\n\n"
        f"[Network]\nAddress={address}/24\nLinkLocalAddressing=no\n"
    )
