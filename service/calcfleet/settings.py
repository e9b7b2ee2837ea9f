"""Every setting of a calcfleet server, read once at start from TOML and environment."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from calcfleet.errors import CalcfleetError

DEFAULT_CONFIG = Path("/etc/calcfleet/calcfleet.toml")
ENV_PREFIX = "CALCFLEET_"


class SettingsError(CalcfleetError):
    """The configuration file or an environment override is not valid."""


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    listen: str = "127.0.0.1:50051"
    # Address peers and the registry use to reach this server; defaults to listen.
    advertise: str = ""
    # Concurrent RPCs one server handles before it answers RESOURCE_EXHAUSTED.
    max_concurrent_rpcs: int = 1000
    # In-flight calls get this long to finish after SIGTERM. The unit's
    # TimeoutStopSec must be longer, or systemd kills the drain half-way.
    grace_seconds: float = 10.0
    # Keepalive: ping idle clients so that dead load balancer connections are
    # noticed; allow client pings no more often than every 10 s.
    keepalive_seconds: float = 60.0
    # Every message, request or response, is capped; a stream's total is not.
    max_message_bytes: int = 1 << 20
    # Health stays NOT_SERVING this long after the self-test passes, for
    # services that must warm up before taking traffic.
    warmup_seconds: float = 0.0
    log_level: str = "INFO"
    # PEM files; both set means the server speaks TLS instead of plaintext.
    tls_certificate: str = ""
    tls_private_key: str = ""


@dataclasses.dataclass(frozen=True)
class LimitSettings:
    """Bounds on one expression; each keeps one request from starving the rest."""

    max_expression_length: int = 10_000
    max_depth: int = 100
    max_integer_bits: int = 65_536
    max_evaluation_seconds: float = 2.0


@dataclasses.dataclass(frozen=True)
class DiscoverySettings:
    # "static" (the peers below), "local" (a registry directory shared by the
    # instances of one machine) or "cloudmap" (AWS Cloud Map).
    backend: str = "static"
    peers: tuple[str, ...] = ()
    registry_dir: str = "/run/calcfleet/registry"
    cloudmap_service_id: str = ""
    cloudmap_region: str = ""
    # Only for tests against moto's server; empty means AWS's own endpoint.
    cloudmap_endpoint_url: str = ""
    # How often the peer list is read again and dropped peers are probed.
    refresh_seconds: float = 2.0


@dataclasses.dataclass(frozen=True)
class JobSettings:
    """Bounds on one distributed job, checked at submit (docs/jobs.md)."""

    # Terms of a sum, numbers of a prime count, intervals of an integral.
    max_range: int = 10_000_000_000
    max_batch_expressions: int = 10_000
    max_chunks: int = 10_000
    # Terms per chunk (about 0.1 s of a simple term); a larger range gets
    # larger chunks to stay in max_chunks. Every chunk costs a round trip and
    # a few GIL hand-offs on each side, so much smaller chunks waste the fleet.
    chunk_terms: int = 100_000
    batch_chunk_size: int = 100
    max_running_jobs: int = 16
    # Threads computing chunks. CPython's GIL lets only one run Python code
    # at a time, so the fleet's parallelism comes from instances, not threads.
    chunk_threads: int = 1
    # Chunks each peer is given at once: one computing, one on its way.
    peer_slots: int = 2
    # One attempt at a chunk, here or on a peer, may take this long.
    chunk_timeout_seconds: float = 60.0
    max_chunk_attempts: int = 3
    # Deadline of a Get, Cancel or Submit forwarded to another instance, and
    # the longest silence of a forwarded Watch.
    forward_timeout_seconds: float = 5.0
    retention_seconds: float = 3600.0


@dataclasses.dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    limits: LimitSettings = LimitSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    jobs: JobSettings = JobSettings()
    # Set by systemd for a Type=notify unit; empty when not under systemd.
    notify_socket: str = ""
    # Set by systemd when stderr is connected to the journal.
    journal_stream: str = ""
    # Set by systemd when the unit has WatchdogSec=; 0 means no watchdog.
    watchdog_usec: int = 0

    @property
    def advertised_address(self) -> str:
        return self.server.advertise or self.server.listen


def load(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read settings from a TOML file, then apply CALCFLEET_<SECTION>_<NAME> overrides.

    Without a path, CALCFLEET_CONFIG names the file, else /etc/calcfleet/calcfleet.toml
    is read when it exists. Unknown sections and keys are errors, not silently ignored.
    """
    env = os.environ if environ is None else environ
    if path is None and env.get("CALCFLEET_CONFIG"):
        path = Path(env["CALCFLEET_CONFIG"])
    elif path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    document = _read_toml(path) if path else {}

    sections: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        section_type = _section_type(field)
        if section_type is None:
            continue
        values = dict(document.pop(field.name, {}))
        values.update(_overrides(field.name, section_type, env))
        sections[field.name] = _build(section_type, field.name, values)
    if document:
        raise SettingsError(f"{path}: unknown section(s) {', '.join(sorted(document))}")

    return Settings(
        **sections,
        notify_socket=env.get("NOTIFY_SOCKET", ""),
        journal_stream=env.get("JOURNAL_STREAM", ""),
        watchdog_usec=int(env.get("WATCHDOG_USEC", "0") or 0),
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise SettingsError(f"{path}: cannot read: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path}: not valid TOML: {error}") from error


def _section_type(field: dataclasses.Field[Any]) -> type | None:
    hint = typing.get_type_hints(Settings)[field.name]
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _overrides(
    section: str, section_type: type, env: Mapping[str, str]
) -> dict[str, str]:
    prefix = f"{ENV_PREFIX}{section.upper()}_"
    names = {f.name for f in dataclasses.fields(section_type)}
    found = {}
    for key, value in env.items():
        if key.startswith(prefix):
            name = key[len(prefix) :].lower()
            if name not in names:
                raise SettingsError(f"{key}: no setting {section}.{name}")
            found[name] = value
    return found


def _build(section_type: type, section: str, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(section_type)
    known = {f.name for f in dataclasses.fields(section_type)}
    unknown = set(values) - known
    if unknown:
        raise SettingsError(
            f"unknown setting(s) {section}.{', '.join(sorted(unknown))}"
        )
    converted = {
        name: _convert(f"{section}.{name}", hints[name], value)
        for name, value in values.items()
    }
    return section_type(**converted)


def _convert(name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    try:
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else value
            return tuple(str(item).strip() for item in items if str(item).strip())
        if hint is bool:
            return _boolean(value)
        if isinstance(hint, type) and not isinstance(hint, types.GenericAlias):
            if hint is int and isinstance(value, bool):
                raise ValueError(value)
            return hint(value)
    except (TypeError, ValueError) as error:
        raise SettingsError(
            f"{name}: {value!r} is not a valid {hint.__name__}"
        ) from error
    raise SettingsError(f"{name}: unsupported setting type {hint}")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(value)


def with_listen(loaded: Settings, listen: str) -> Settings:
    """The same settings with another listen address (`calcfleet serve --listen`)."""
    return dataclasses.replace(
        loaded, server=dataclasses.replace(loaded.server, listen=listen)
    )
