"""The other instances of the fleet: who they are, which answer, channels to them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from calcfleet.discovery import Discovery
from calcfleet.settings import Settings

log = logging.getLogger(__name__)

# How long a drain waits for the registry to confirm the deregistration.
DEREGISTER_SECONDS = 5.0

# A peer that does not answer its health check this fast is not used.
PROBE_SECONDS = 1.0


class PeerSet:
    """Registers this instance, keeps the fleet list fresh and drops silent peers.

    A peer is usable once it has answered a health check with SERVING; one
    that fails a call is dropped at once, then probed again on every refresh
    and used again as soon as it answers.
    """

    def __init__(self, discovery: Discovery, settings: Settings) -> None:
        self.discovery = discovery
        self.address = ""
        self._settings = settings
        self._known: set[str] = set()
        self._down: dict[str, str] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._refresher: asyncio.Task[None] | None = None

    async def start(self, address: str) -> None:
        self.address = address
        await self.discovery.register(address)
        await self.refresh()
        self._refresher = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        try:
            # Bounded: Cloud Map confirms a deregistration asynchronously, and
            # the drain must fit in the unit's stop timeout whatever it says.
            await asyncio.wait_for(self.discovery.deregister(), DEREGISTER_SECONDS)
        except Exception as error:  # the drain must go on whatever the registry says
            # Peers then drop this instance when it stops answering.
            log.warning("discovery - could not deregister %s: %s", self.address, error)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    def usable(self) -> list[str]:
        """Peers to hand chunks to now: registered, answering, not this instance."""
        return sorted(self._known - set(self._down))

    def is_member(self, address: str) -> bool:
        return address == self.address or address in self._known

    def channel(self, address: str) -> grpc.aio.Channel:
        """One persistent channel per peer, opened on first use."""
        if address not in self._channels:
            self._channels[address] = grpc.aio.insecure_channel(
                address, options=self._channel_options()
            )
        return self._channels[address]

    def mark_down(self, address: str, reason: str) -> None:
        if address in self._known and address not in self._down:
            log.warning("peer - %s dropped until it answers again: %s", address, reason)
            self._down[address] = reason

    async def refresh(self) -> None:
        try:
            listed = set(await self.discovery.addresses()) - {self.address}
        except Exception as error:  # any registry failure: retried next refresh
            log.warning(
                "peer - cannot read the registry, keeping %d peers: %s",
                len(self._known),
                error,
            )
            return
        for gone in self._known - listed:
            # Its channel stays open: closing it would cancel the calls that
            # running jobs still have on it, and a drained peer ends those
            # itself. An unused channel costs a socket at most.
            log.info("peer - %s left the registry", gone)
            self._down.pop(gone, None)
        for new in listed - self._known:
            self._down[new] = "not checked yet"
        self._known = listed
        await asyncio.gather(*(self._probe(address) for address in list(self._down)))

    async def _probe(self, address: str) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel(address))
        try:
            response = await stub.Check(
                health_pb2.HealthCheckRequest(), timeout=PROBE_SECONDS
            )
        except grpc.RpcError:
            return
        if response.status == health_pb2.HealthCheckResponse.SERVING:
            log.info("peer - %s answers", address)
            self._down.pop(address, None)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.discovery.refresh_seconds)
            await self.refresh()

    def _channel_options(self) -> list[tuple[str, int]]:
        size = self._settings.server.max_message_bytes
        return [
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            # Peers ping no more often than servers allow (every 10 s).
            ("grpc.keepalive_time_ms", 15_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            # A dead peer is retried soon after it comes back, not after minutes.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2_000),
        ]
