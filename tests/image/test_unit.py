"""calcfleet.service on a booted instance: valid, enabled, active, hardened."""

from __future__ import annotations

import re
import time

import testinfra.host

UNIT = "calcfleet.service"
MAX_EXPOSURE = 2.0
HARDENING = {
    "Type": "notify",
    "NotifyAccess": "main",
    "User": "calcfleet",
    "Restart": "on-failure",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateUsers": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
}


def wait_while_activating(host: testinfra.host.Host, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while show(host, "ActiveState")["ActiveState"] == "activating":
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)


def show(host: testinfra.host.Host, *properties: str) -> dict[str, str]:
    output = host.check_output("systemctl show %s -p %s", UNIT, ",".join(properties))
    return dict(line.split("=", 1) for line in output.splitlines())


def test_unit_file_passes_systemd_analyze_verify(host: testinfra.host.Host) -> None:
    result = host.run("systemd-analyze verify %s", UNIT)
    assert result.rc == 0, result.stderr
    assert result.stderr.strip() == ""


def test_unit_is_enabled(host: testinfra.host.Host) -> None:
    # `is-enabled` prints "static" for a unit without [Install]: such a unit
    # starts only when something else pulls it in, not at boot.
    result = host.run("systemctl is-enabled %s", UNIT)
    assert result.stdout.strip() == "enabled"


def test_unit_is_active(host: testinfra.host.Host) -> None:
    state = show(host, "ActiveState", "SubState", "NRestarts", "Result")
    assert state == {
        "ActiveState": "active",
        "SubState": "running",
        "NRestarts": "0",
        "Result": "success",
    }


def test_unit_has_the_hardening_properties(host: testinfra.host.Host) -> None:
    assert show(host, *HARDENING) == HARDENING


def test_watchdog_and_stop_timeout_fit_the_server(host: testinfra.host.Host) -> None:
    # The stop timeout must outlast the server's 10 s drain grace.
    assert show(host, "WatchdogUSec", "TimeoutStopUSec") == {
        "WatchdogUSec": "20s",
        "TimeoutStopUSec": "30s",
    }


def test_security_exposure_is_at_most_two(host: testinfra.host.Host) -> None:
    output = host.run("systemd-analyze security --no-pager %s", UNIT).stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match is not None, output
    assert float(match.group(1)) <= MAX_EXPOSURE, output


def test_service_logs_to_the_journal(host: testinfra.host.Host) -> None:
    result = host.run("journalctl --no-pager -q -u %s -o cat", UNIT)
    assert result.rc == 0
    assert "serving on 0.0.0.0:50051" in result.stdout, result.stdout


def test_stop_drains_and_exits_zero_before_the_stop_timeout(
    host: testinfra.host.Host,
) -> None:
    # Runs last in this file: it stops the service, then starts it again
    # (without waiting on the start job, which for a unit that never reports
    # READY lasts its whole TimeoutStartSec).
    host.check_output("systemctl stop %s", UNIT)
    stopped = show(host, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    host.check_output("systemctl start --no-block %s", UNIT)
    wait_while_activating(host)

    # ExecMainCode 1 is CLD_EXITED: the process exited by itself, with status
    # 0, rather than being killed (2, CLD_KILLED) when TimeoutStopSec ran out.
    # See: https://man7.org/linux/man-pages/man2/waitid.2.html
    assert stopped == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",
        "ExecMainStatus": "0",
    }
    assert show(host, "ActiveState")["ActiveState"] == "active"
