"""Settings come from one TOML file plus CALCFLEET_<SECTION>_<NAME> overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from calcfleet import settings
from calcfleet.settings import SettingsError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calcfleet.toml"
    path.write_text(text)
    return path


def test_defaults_apply_without_a_file() -> None:
    loaded = settings.load(environ={})
    assert loaded.server.listen == "127.0.0.1:50051"
    assert loaded.limits.max_integer_bits == 65_536
    assert loaded.notify_socket == ""


def test_file_values_and_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nlisten = "0.0.0.0:7000"\ngrace_seconds = 3\n')
    environ = {
        "CALCFLEET_SERVER_GRACE_SECONDS": "4.5",
        "CALCFLEET_DISCOVERY_PEERS": "10.0.0.1:50051, 10.0.0.2:50051",
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "10000000",
    }
    loaded = settings.load(path, environ)
    assert loaded.server.listen == "0.0.0.0:7000"
    assert loaded.server.grace_seconds == 4.5
    assert loaded.discovery.peers == ("10.0.0.1:50051", "10.0.0.2:50051")
    assert loaded.notify_socket == "/run/systemd/notify"
    assert loaded.watchdog_usec == 10_000_000


def test_config_file_is_named_by_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nmax_depth = 7\n")
    loaded = settings.load(environ={"CALCFLEET_CONFIG": str(path)})
    assert loaded.limits.max_depth == 7


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("[nope]\n", {}, "unknown section(s) nope"),
        ("[server]\nlisen = 1\n", {}, "unknown setting(s) server.lisen"),
        ("[limits]\nmax_depth = 'deep'\n", {}, "limits.max_depth: 'deep' is not"),
        ("", {"CALCFLEET_SERVER_LISEN": "x"}, "CALCFLEET_SERVER_LISEN: no setting"),
        ("", {"CALCFLEET_LIMITS_MAX_DEPTH": "1.5"}, "limits.max_depth: '1.5'"),
        ("[server\n", {}, "not valid TOML"),
    ],
)
def test_mistakes_are_named_not_ignored(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        settings.load(write(tmp_path, text), environ)
    assert message in str(caught.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        settings.load(tmp_path / "absent.toml", {})
