"""How an instance announces itself and finds its peers: three backends."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Protocol

from calcfleet.errors import CalcfleetError
from calcfleet.settings import DiscoverySettings

log = logging.getLogger(__name__)


class DiscoveryError(CalcfleetError):
    """The registry could not be read or written."""


class Discovery(Protocol):
    """Register this instance at start, deregister it at drain, list the fleet.

    `addresses` lists every registered instance, this one included; which of
    them answer is the peer set's business (calcfleet.peers), not the registry's.
    """

    async def register(self, address: str) -> None: ...

    async def deregister(self) -> None: ...

    async def addresses(self) -> list[str]: ...


class StaticDiscovery:
    """A fixed list from the settings, for development; nothing is registered."""

    def __init__(self, peers: tuple[str, ...]) -> None:
        self._peers = list(peers)

    async def register(self, address: str) -> None:
        return None

    async def deregister(self) -> None:
        return None

    async def addresses(self) -> list[str]:
        return list(self._peers)


class LocalRegistry:
    """A directory shared by the instances of one machine, one file per instance.

    Each entry is written whole to a temporary file and renamed into place, so
    that a reader never sees half an entry. An instance killed with SIGKILL
    leaves its entry behind; its peers stop using it because it stops
    answering, as they would with Cloud Map.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._entry: Path | None = None

    async def register(self, address: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = self.directory / f"{address.replace(':', '_')}.json"
        text = json.dumps({"address": address, "pid": os.getpid()})
        handle, partial = tempfile.mkstemp(dir=self.directory, suffix=".partial")
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(partial, entry)
        self._entry = entry
        log.info("discovery - registered %s in %s", address, self.directory)

    async def deregister(self) -> None:
        if self._entry is not None:
            self._entry.unlink(missing_ok=True)
            log.info("discovery - removed %s", self._entry)
            self._entry = None

    async def addresses(self) -> list[str]:
        found = []
        for entry in sorted(self.directory.glob("*.json")):
            try:
                found.append(str(json.loads(entry.read_text())["address"]))
            except FileNotFoundError:
                continue  # deregistered while we listed
            except (OSError, ValueError, KeyError) as error:
                log.warning(
                    "discovery - ignoring unreadable entry %s: %s", entry, error
                )
        return found


class CloudMapDiscovery:
    """AWS Cloud Map; the boto3 calls live in calcfleet.cloudmap, run off the loop."""

    def __init__(self, client: object, service_id: str) -> None:
        self._client = client
        self._service_id = service_id
        self._instance_id = ""

    async def register(self, address: str) -> None:
        from calcfleet import cloudmap

        self._instance_id = cloudmap.instance_id(address)
        await asyncio.to_thread(
            cloudmap.register, self._client, self._service_id, address
        )

    async def deregister(self) -> None:
        from calcfleet import cloudmap

        if self._instance_id:
            await asyncio.to_thread(
                cloudmap.deregister, self._client, self._service_id, self._instance_id
            )
            self._instance_id = ""

    async def addresses(self) -> list[str]:
        from calcfleet import cloudmap

        return await asyncio.to_thread(
            cloudmap.addresses, self._client, self._service_id
        )


def from_settings(settings: DiscoverySettings) -> Discovery:
    if settings.backend == "static":
        return StaticDiscovery(settings.peers)
    if settings.backend == "local":
        return LocalRegistry(Path(settings.registry_dir))
    if settings.backend == "cloudmap":
        from calcfleet import cloudmap

        if not settings.cloudmap_service_id:
            raise DiscoveryError("discovery.cloudmap_service_id is not set")
        client = cloudmap.client(
            cloudmap.session(settings.cloudmap_region), settings.cloudmap_endpoint_url
        )
        return CloudMapDiscovery(client, settings.cloudmap_service_id)
    raise DiscoveryError(
        f"discovery.backend {settings.backend!r} is not one of static, local, cloudmap"
    )
