"""Every HAProxy call: the local fleet's load balancer, its config, its runtime API."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import h2.config
import h2.connection

from calcfleet.errors import CalcfleetError

log = logging.getLogger("stacks")

BACKEND = "instances"
SLOT = "slot"
# HealthCheckResponse{status: SERVING} as a gRPC message: no compression flag,
# a 4-byte length of 2, then field 1 = 1. A server that is not SERVING fails
# the call (trailers only, grpc-status 14) and sends no DATA at all, so these
# bytes appear in the answer only when the instance is SERVING.
SERVING_MESSAGE = "00000000020801"


class BalancerError(CalcfleetError):
    """HAProxy would not start, or its runtime API refused a command."""


@dataclasses.dataclass(frozen=True)
class Balancer:
    """Where one fleet's HAProxy keeps its files, and where it listens."""

    directory: Path
    listen: str
    slots: int

    @property
    def config(self) -> Path:
        return self.directory / "haproxy.cfg"

    @property
    def socket(self) -> Path:
        return self.directory / "haproxy.sock"

    @property
    def pid_file(self) -> Path:
        return self.directory / "haproxy.pid"


@dataclasses.dataclass(frozen=True)
class SlotState:
    """One server line of `show stat`: HAProxy's view of one instance."""

    slot: int
    status: str  # UP, DOWN, DRAIN, MAINT, "UP 1/2", "DOWN 1/2", NOLB...
    check: str  # L7OK, L4CON, L7TOUT, "" when not checked
    sessions: int

    @property
    def is_up(self) -> bool:
        return self.status in {"UP", "DRAIN", "NOLB"} and self.check.startswith("L7OK")


def health_check_request() -> bytes:
    """The bytes of a whole grpc.health.v1 Check call over a fresh HTTP/2 connection.

    HAProxy's HTTP checks cannot read a gRPC status (it travels in trailers),
    so the check is a tcp-check that sends this and expects SERVING_MESSAGE.
    Built with the h2 library rather than recorded, so it stays valid HTTP/2.
    See: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md
    """
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    connection.initiate_connection()
    stream = connection.get_next_available_stream_id()
    connection.send_headers(
        stream,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/grpc.health.v1.Health/Check"),
            (":authority", "calcfleet"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
    )
    # An empty HealthCheckRequest (service ""): the whole server's health.
    connection.send_data(stream, b"\x00\x00\x00\x00\x00", end_stream=True)
    return connection.data_to_send()


def render(balancer: Balancer) -> str:
    """The configuration: gRPC per request, real health checks, retries."""
    host, port = balancer.listen.rsplit(":", 1)
    return f"""\
# Written by stacks/haproxy.py for the local fleet; rewritten at every `up`.
global
    stats socket {balancer.socket} mode 600 level admin
    pidfile {balancer.pid_file}
    log stderr format short local0 warning

defaults
    mode http
    log global
    timeout connect 1s
    timeout client 120s
    timeout server 120s
    timeout check 1s
    # A request that fails to connect, or whose instance dies before
    # answering, goes again, to another instance (redispatch): a dying
    # instance costs the client nothing. Retries need the body in a buffer;
    # gRPC unary requests are small.
    retries 3
    option redispatch 1
    retry-on all-retryable-errors
    option http-buffer-request

frontend grpc
    bind {host}:{port} proto h2
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option tcp-check
    tcp-check connect
    tcp-check send-binary {health_check_request().hex()}
    tcp-check expect binary {SERVING_MESSAGE}
    default-server check inter 500ms fastinter 250ms downinter 500ms rise 2 fall 2
    default-server proto h2 disabled
    # One slot per instance the group may hold (MaxSize); the fleet fills a
    # slot with an instance's address through the runtime API, no reload.
    server-template {SLOT} 1-{balancer.slots} 127.0.0.1:9
"""


def start(balancer: Balancer) -> int:
    """Write the configuration and start HAProxy in the background; its pid."""
    balancer.directory.mkdir(parents=True, exist_ok=True)
    balancer.config.write_text(render(balancer))
    check = subprocess.run(
        ["haproxy", "-c", "-q", "-f", str(balancer.config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise BalancerError(f"haproxy refused {balancer.config}: {check.stderr}")
    log_file = (balancer.directory / "haproxy.log").open("ab")
    with log_file:
        result = subprocess.run(
            ["haproxy", "-D", "-f", str(balancer.config)],
            stdout=log_file,
            stderr=log_file,
            check=False,
        )
    if result.returncode != 0:
        raise BalancerError(f"haproxy did not start; see {log_file.name}")
    pid = running_pid(balancer)
    if pid is None:
        raise BalancerError(f"haproxy wrote no pid to {balancer.pid_file}")
    log.info("balancer - listening on %s (pid %d)", balancer.listen, pid)
    return pid


def running_pid(balancer: Balancer) -> int | None:
    """HAProxy's pid if it runs from this balancer's configuration."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(balancer.pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"haproxy" in cmdline[0] and str(balancer.config).encode() in cmdline:
            return pid
    return None


def stop(balancer: Balancer, timeout: float = 10.0) -> None:
    pid = running_pid(balancer)
    if pid is None:
        return
    log.info("balancer - stopping (pid %d)", pid)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
    balancer.socket.unlink(missing_ok=True)
    balancer.pid_file.unlink(missing_ok=True)


def command(balancer: Balancer, line: str) -> str:
    """One command on HAProxy's runtime API; its answer."""
    log.debug("balancer - %s", line)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(5)
        connection.connect(str(balancer.socket))
        connection.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks).decode()
    if answer.strip() and any(
        word in answer for word in ("No such", "Unknown command", "Require")
    ):
        raise BalancerError(f"haproxy refused {line!r}: {answer.strip()}")
    return answer


def fill(balancer: Balancer, slot: int, address: str) -> None:
    """Point a slot at an instance; it is checked but gets no traffic yet."""
    host, port = address.rsplit(":", 1)
    server = f"{BACKEND}/{SLOT}{slot}"
    command(balancer, f"set server {server} addr {host} port {port}")
    command(balancer, f"set server {server} state drain")


def admit(balancer: Balancer, slot: int) -> None:
    """Send traffic to the slot's instance (it keeps being checked)."""
    command(balancer, f"set server {BACKEND}/{SLOT}{slot} state ready")


def drain(balancer: Balancer, slot: int) -> None:
    """No new requests to the slot's instance; requests in flight finish."""
    command(balancer, f"set server {BACKEND}/{SLOT}{slot} state drain")


def empty(balancer: Balancer, slot: int) -> None:
    """Take the slot out of service entirely: no traffic, no checks."""
    command(balancer, f"set server {BACKEND}/{SLOT}{slot} state maint")


def slots(balancer: Balancer) -> dict[int, SlotState]:
    """Every slot's status from `show stat`, by slot number."""
    text = command(balancer, "show stat").lstrip("# ")
    found = {}
    for row in csv.DictReader(io.StringIO(text)):
        name = row.get("svname", "")
        if row.get("pxname") != BACKEND or not name.startswith(SLOT):
            continue
        slot = int(name.removeprefix(SLOT))
        found[slot] = SlotState(
            slot, row["status"], row.get("check_status", ""), int(row["scur"] or 0)
        )
    return found
