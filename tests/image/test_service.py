"""The server inside a booted instance: listening, healthy, calculating."""

from __future__ import annotations

import time

import testinfra.host

from servers import EXPENSIVE_EXPRESSION

CALCFLEET = "/opt/calcfleet/bin/calcfleet"
TARGET = "127.0.0.1:50051"


def test_port_listens_on_every_address(host: testinfra.host.Host) -> None:
    assert host.socket("tcp://0.0.0.0:50051").is_listening


def test_health_answers_serving(host: testinfra.host.Host) -> None:
    result = host.run("%s health --target %s --timeout 5", CALCFLEET, TARGET)
    assert result.rc == 0, result.stderr


def test_a_real_calculation_returns_the_exact_value(host: testinfra.host.Host) -> None:
    result = host.run("%s eval %s --target %s", CALCFLEET, "2**100 + 1", TARGET)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "1267650600228229401496703205377"


def test_server_process_runs_as_the_service_user(host: testinfra.host.Host) -> None:
    pid = host.check_output("systemctl show -P MainPID calcfleet.service")
    assert host.check_output("stat -c %%U /proc/%s", pid) == "calcfleet"


def test_installed_version_is_the_baked_one(
    host: testinfra.host.Host, version: str
) -> None:
    assert version, "the checks were not told which version to expect"
    assert host.check_output("%s --version", CALCFLEET) == version


def test_runs_on_debian_python_3_11(host: testinfra.host.Host) -> None:
    output = host.check_output("/opt/calcfleet/bin/python --version")
    assert output.startswith("Python 3.11.")


def test_costliest_admitted_input_neither_trips_the_watchdog_nor_stalls_others(
    host: testinfra.host.Host,
) -> None:
    # Scenario S10. The watchdog's own timing is tested with a real notify
    # socket in tests/integration/test_lifecycle.py; here systemd itself must
    # see no restart while four of the costliest inputs run at once.
    before = host.check_output(
        "systemctl show -P MainPID,NRestarts calcfleet.service"
    ).splitlines()
    background = " & ".join(
        [f"{CALCFLEET} eval '{EXPENSIVE_EXPRESSION}' --target {TARGET} >/dev/null"] * 4
    )
    started = time.monotonic()
    cheap = host.run(
        "sh -c %s",
        f"{background} & sleep 0.2; {CALCFLEET} eval 6*7 --target {TARGET}; wait",
    )
    assert cheap.rc == 0, cheap.stderr
    assert cheap.stdout.strip() == "42"
    assert time.monotonic() - started < 30
    after = host.check_output(
        "systemctl show -P MainPID,NRestarts calcfleet.service"
    ).splitlines()
    assert after == before
