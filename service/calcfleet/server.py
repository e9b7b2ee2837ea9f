"""The calcfleet server: its gRPC services, its start-up and its drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from calcfleet import __version__, portfile
from calcfleet.calculator import CalculatorServicer, ExpressionRunner
from calcfleet.errors import CalcfleetError
from calcfleet.health import NOT_SERVING, SERVING, GatedHealthServicer
from calcfleet.interceptors import InternalErrorInterceptor
from calcfleet.jobservice import JobsComponent
from calcfleet.notify import Notifier
from calcfleet.settings import Settings
from calcfleet.v1 import calculator_pb2, calculator_pb2_grpc

log = logging.getLogger(__name__)

HEALTH_SERVICE = "grpc.health.v1.Health"
SELF_TEST = ("3*(4-1)+2**100", "1267650600228229401496703205385")


class ServerStartError(CalcfleetError):
    """The server could not listen, or failed its own self-test."""


class Component(Protocol):
    """A part of the server with gRPC services and a life of its own.

    `start` runs once the port listens and before health turns SERVING;
    `stop` runs as soon as the drain begins, while in-flight calls go on;
    `close` runs once the server has stopped and no call is left.
    """

    service_names: tuple[str, ...]

    def add_to(self, server: grpc.aio.Server) -> None: ...

    async def start(self, address: str) -> None: ...

    async def stop(self) -> None: ...

    async def close(self) -> None: ...


class CalculatorComponent:
    service_names: tuple[str, ...] = (
        calculator_pb2.DESCRIPTOR.services_by_name["Calculator"].full_name,
    )

    def __init__(self, settings: Settings) -> None:
        self.runner = ExpressionRunner(settings.limits)

    def add_to(self, server: grpc.aio.Server) -> None:
        servicer = CalculatorServicer(self.runner)
        calculator_pb2_grpc.add_CalculatorServicer_to_server(servicer, server)

    async def start(self, address: str) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def close(self) -> None:
        self.runner.close()


class CalcfleetServer:
    """One calcfleet instance: build, listen, serve until told to stop, drain."""

    def __init__(self, settings: Settings, components: list[Component]) -> None:
        self.settings = settings
        self.components = components
        self.health = GatedHealthServicer()
        self.notifier = Notifier(settings)
        self.port = 0
        self._server = grpc.aio.server(
            interceptors=[InternalErrorInterceptor()],
            options=_channel_options(settings),
            maximum_concurrent_rpcs=settings.server.max_concurrent_rpcs,
        )
        self._stop_requested = asyncio.Event()

    @property
    def service_names(self) -> list[str]:
        names = [name for c in self.components for name in c.service_names]
        return [*names, HEALTH_SERVICE]

    async def start(self) -> None:
        """Listen, prove the service answers, then turn health to SERVING."""
        await self._set_health(NOT_SERVING)
        for component in self.components:
            component.add_to(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            [*self.service_names, reflection.SERVICE_NAME], self._server
        )
        self.port = self._bind()
        await self._server.start()
        await self._self_test()
        for component in self.components:
            await component.start(self.address)
        if self.settings.server.warmup_seconds > 0:
            self.notifier.status("warming up")
            await asyncio.sleep(self.settings.server.warmup_seconds)
        await self._set_health(SERVING)
        self.notifier.ready(f"serving on {self.address}")
        log.info(
            "server - calcfleet %s serving on %s",
            __version__,
            self.address,
            extra={"CALCFLEET_ADDRESS": self.address, "CALCFLEET_VERSION": __version__},
        )

    @property
    def address(self) -> str:
        host = self.settings.advertised_address.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def request_stop(self) -> None:
        self._stop_requested.set()

    async def run(self, port_file: Path | None = None) -> None:
        """Start, serve until SIGTERM or SIGINT, then drain.

        The signals are handled from the first moment, so a stop that arrives
        during start-up (a long warm-up, say) still ends in a clean drain and
        exit status 0 rather than in death by signal.
        """
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        starting = asyncio.create_task(self.start())
        stopping = asyncio.create_task(self._stop_requested.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.info("server - stop requested while starting")
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        elif (error := starting.exception()) is not None:
            # A failed start still gives back what it took (the port, the
            # registry entry) before the error reaches the command line.
            await self._shut_down(grace=0)
            raise error
        else:
            if port_file is not None:
                portfile.write(port_file, self.port)
            await stopping
        await self.drain()

    async def drain(self) -> None:
        """Fail health now, refuse new calls, let in-flight calls end within grace."""
        grace = self.settings.server.grace_seconds
        log.info(
            "server - draining, in-flight calls have %.1f s",
            grace,
            extra={"CALCFLEET_ADDRESS": self.address},
        )
        self.notifier.stopping("draining")
        await self.health.enter_graceful_shutdown()
        await self._shut_down(grace)
        log.info("server - stopped")

    async def _shut_down(self, grace: float) -> None:
        for component in self.components:
            await component.stop()
        await self._server.stop(grace)
        for component in self.components:
            await component.close()
        self.notifier.close()

    def _bind(self) -> int:
        listen = self.settings.server.listen
        server = self.settings.server
        try:
            if server.tls_certificate and server.tls_private_key:
                key = Path(server.tls_private_key).read_bytes()
                chain = Path(server.tls_certificate).read_bytes()
                credentials = grpc.ssl_server_credentials([(key, chain)])
                port = self._server.add_secure_port(listen, credentials)
            else:
                port = self._server.add_insecure_port(listen)
        except OSError as error:
            raise ServerStartError(f"cannot read the TLS files: {error}") from None
        except RuntimeError:  # grpcio's way of saying the address cannot be bound
            port = 0
        if port == 0:
            raise ServerStartError(f"cannot listen on {listen}")
        return port

    async def _self_test(self) -> None:
        """Evaluate a known expression before taking any traffic."""
        expression, expected = SELF_TEST
        for component in self.components:
            if isinstance(component, CalculatorComponent):
                value = await component.runner.run(expression, None)
                if str(value) != expected:
                    raise ServerStartError(f"self-test gave {value}, not {expected}")

    async def _set_health(self, status: int) -> None:
        for name in ["", *self.service_names]:
            await self.health.set(name, status)


def _channel_options(settings: Settings) -> list[tuple[str, int]]:
    server = settings.server
    return [
        ("grpc.max_receive_message_length", server.max_message_bytes),
        ("grpc.max_send_message_length", server.max_message_bytes),
        # Ping idle connections so that a peer that vanished (an instance
        # killed mid-call, a load balancer that dropped the flow) is noticed.
        ("grpc.keepalive_time_ms", int(server.keepalive_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Clients may ping every 10 s; more often earns a GOAWAY, which is how
        # gRPC servers protect themselves from ping floods.
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        # Two servers on one port must fail to start, not share it silently.
        ("grpc.so_reuseport", 0),
    ]


def build(settings: Settings) -> CalcfleetServer:
    return CalcfleetServer(
        settings, [CalculatorComponent(settings), JobsComponent(settings)]
    )


async def serve(settings: Settings, port_file: Path | None = None) -> None:
    """Run a server in the foreground until SIGTERM or SIGINT, then drain."""
    await build(settings).run(port_file)
