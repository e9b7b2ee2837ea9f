"""Load for a server or a fleet: sequential, concurrent and streamed calls, measured."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import threading
import time
from collections.abc import AsyncIterator, Sequence

import grpc

from calcfleet.client import SERVICE_CONFIG
from calcfleet.v1 import calculator_pb2 as pb

EVALUATE = "/calcfleet.v1.Calculator/Evaluate"
STREAM = "/calcfleet.v1.Calculator/EvaluateStream"
CHANNEL_OPTIONS = [
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    # Each simulated client gets a connection of its own, as separate
    # processes would, instead of sharing one through gRPC's subchannel pool.
    ("grpc.use_local_subchannel_pool", 1),
]


@dataclasses.dataclass(frozen=True)
class Latencies:
    """What a run of calls measured; times in seconds."""

    calls: int
    errors: int
    seconds: float
    samples: Sequence[float]

    @property
    def ops_per_second(self) -> float:
        return (self.calls - self.errors) / self.seconds if self.seconds else 0.0

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) if self.samples else float("nan")

    def percentile(self, fraction: float) -> float:
        if not self.samples:
            return float("nan")
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _evaluate(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        EVALUATE,
        request_serializer=pb.EvaluateRequest.SerializeToString,
        response_deserializer=pb.EvaluateResponse.FromString,
    )


async def sequential(
    target: str, expression: str, calls: int, timeout: float = 5.0
) -> Latencies:
    """`calls` calls one after another on one channel."""
    request = pb.EvaluateRequest(expression=expression)
    samples, errors = [], 0
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        method = _evaluate(channel)
        await method(request, timeout=timeout)  # connect before measuring
        started = time.perf_counter()
        for _ in range(calls):
            began = time.perf_counter()
            try:
                await method(request, timeout=timeout)
            except grpc.aio.AioRpcError:
                errors += 1
            samples.append(time.perf_counter() - began)
        elapsed = time.perf_counter() - started
    return Latencies(calls, errors, elapsed, samples)


async def concurrent(
    target: str,
    expression: str,
    clients: int,
    seconds: float,
    *,
    timeout: float = 5.0,
    expected: str | None = None,
) -> Latencies:
    """`clients` clients, each on its own connection, calling for `seconds`.

    A call counts as an error when it fails or, with `expected`, returns
    another value.
    """
    request = pb.EvaluateRequest(expression=expression)
    samples: list[float] = []
    counts = {"calls": 0, "errors": 0}
    channels = [
        grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        for _ in range(clients)
    ]
    await asyncio.gather(*(c.channel_ready() for c in channels))
    stop_at = time.perf_counter() + seconds

    async def client(channel: grpc.aio.Channel) -> None:
        method = _evaluate(channel)
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            counts["calls"] += 1
            try:
                response = await method(request, timeout=timeout)
                if expected is not None and response.value != expected:
                    counts["errors"] += 1
            except grpc.aio.AioRpcError:
                counts["errors"] += 1
            samples.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in channels))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(c.close() for c in channels))
    return Latencies(counts["calls"], counts["errors"], elapsed, samples)


async def stream(target: str, expression: str, count: int, batch: int) -> Latencies:
    """`count` expressions over one EvaluateStream, `batch` to a message."""
    request = pb.StreamRequest(expressions=[expression] * batch)
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        call = channel.stream_stream(
            STREAM,
            request_serializer=pb.StreamRequest.SerializeToString,
            response_deserializer=pb.StreamResponse.FromString,
        )
        await channel.channel_ready()

        async def requests() -> AsyncIterator[pb.StreamRequest]:
            for _ in range(count // batch):
                yield request

        started = time.perf_counter()
        answered = errors = 0
        async for response in call(requests()):
            answered += len(response.results)
            errors += sum(result.HasField("error") for result in response.results)
        elapsed = time.perf_counter() - started
    return Latencies(answered, errors, elapsed, [])


# --- the classic table, and load in the background -------------------------

TABLE_EXPRESSION = "2**64 + 1"
TABLE_VALUE = "18446744073709551617"


async def classic(target: str, seconds: float = 10.0) -> dict[str, Latencies]:
    """The three classic runs: 1,000 sequential, 100 and 1,000 concurrent clients."""
    await sequential(target, TABLE_EXPRESSION, 100)  # warm both ends up
    return {
        "1,000 sequential": await sequential(target, TABLE_EXPRESSION, 1000),
        "100 concurrent": await concurrent(
            target, TABLE_EXPRESSION, 100, seconds, expected=TABLE_VALUE
        ),
        "1,000 concurrent": await concurrent(
            target, TABLE_EXPRESSION, 1000, seconds, expected=TABLE_VALUE
        ),
    }


def table(results: dict[str, Latencies]) -> list[str]:
    """The runs as lines of a table; times in milliseconds."""
    lines = [
        f"{'run':<18} {'calls':>7} {'errors':>6} {'ops/s':>8}"
        f" {'mean ms':>8} {'p50 ms':>7} {'p99 ms':>7}"
    ]
    for name, run in results.items():
        lines.append(
            f"{name:<18} {run.calls:>7} {run.errors:>6} {run.ops_per_second:>8.0f}"
            f" {run.mean * 1000:>8.2f} {run.percentile(0.5) * 1000:>7.2f}"
            f" {run.percentile(0.99) * 1000:>7.2f}"
        )
    return lines


@dataclasses.dataclass
class Tally:
    """Calls made by background load, and every one that failed."""

    calls: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)


class BackgroundLoad:
    """Clients calling a target from a thread of their own until stopped.

    Every call carries the documented retry policy (calcfleet.client) and
    checks the exact value; a call counts as failed when it ends in any
    status but OK or returns another value. For fault tests: start it, do
    harm, stop it, and read the tally.
    """

    def __init__(self, target: str, clients: int = 4, pause: float = 0.02) -> None:
        self.target = target
        self.clients = clients
        self.pause = pause
        self.tally = Tally()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> Tally:
        self._stopping.set()
        self._thread.join(60)
        return self.tally

    def _run(self) -> None:
        asyncio.run(self._clients())

    async def _clients(self) -> None:
        request = pb.EvaluateRequest(expression=TABLE_EXPRESSION)
        channels = [
            grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            for _ in range(self.clients)
        ]

        async def client(channel: grpc.aio.Channel) -> None:
            method = _evaluate(channel)
            while not self._stopping.is_set():
                self.tally.calls += 1
                try:
                    response = await method(request, timeout=10)
                    if response.value != TABLE_VALUE:
                        self.tally.failures.append(f"wrong value {response.value}")
                except grpc.aio.AioRpcError as error:
                    self.tally.failures.append(
                        f"{error.code().name}: {error.details()}"
                    )
                await asyncio.sleep(self.pause)

        await asyncio.gather(*(client(channel) for channel in channels))
        await asyncio.gather(*(channel.close() for channel in channels))
