"""What the image carries and what it must not: compilers, headers, caches, owners."""

from __future__ import annotations

import pytest
import testinfra.host

BUILD_PACKAGES = (
    "gcc",
    "cpp",
    "binutils",
    "libc6-dev",
    "libsystemd-dev",
    "python3-dev",
)
COMPILERS = ("gcc", "cc", "c++", "g++", "cpp", "x86_64-linux-gnu-gcc-12", "as", "ld")


@pytest.mark.parametrize("package", BUILD_PACKAGES)
def test_build_package_is_not_installed(
    host: testinfra.host.Host, package: str
) -> None:
    assert not host.package(package).is_installed


@pytest.mark.parametrize("command", COMPILERS)
def test_no_compiler_on_the_path(host: testinfra.host.Host, command: str) -> None:
    assert not host.exists(command)


def test_service_user_is_a_locked_system_user(host: testinfra.host.Host) -> None:
    user = host.user("calcfleet")
    assert user.exists
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == "/nonexistent"
    assert not host.file("/nonexistent").exists


def test_service_user_owns_nothing_but_its_runtime_directory(
    host: testinfra.host.Host,
) -> None:
    owned = host.check_output(
        "find / -xdev -user calcfleet -not -path '/proc/*' -print"
    ).split()
    assert owned == []


def test_installation_is_owned_by_root_and_not_writable_by_others(
    host: testinfra.host.Host,
) -> None:
    writable = host.check_output(
        "find /opt/calcfleet /etc/calcfleet -perm /022 -not -type l -print"
    )
    assert writable == ""
    for path in ("/opt/calcfleet", "/etc/calcfleet/calcfleet.toml"):
        assert host.file(path).user == "root"


def test_package_caches_are_empty(host: testinfra.host.Host) -> None:
    # apt keeps an empty lock file in its archive directory.
    found = host.check_output("find /var/cache/apt /var/lib/apt/lists -type f")
    assert found.split() == ["/var/cache/apt/archives/lock"]
    assert not host.file("/root/.cache").exists


def test_systemd_networkd_is_enabled(host: testinfra.host.Host) -> None:
    assert host.service("systemd-networkd").is_enabled


def test_cloudformation_signal_is_only_on_aws_images(
    host: testinfra.host.Host, image_target: str
) -> None:
    unit = host.file("/etc/systemd/system/calcfleet-signal.service")
    assert unit.exists == (image_target == "aws")
