"""Run the image checks (tests/image/, testinfra) against a booted instance."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from calcfleet.errors import CalcfleetError
from image import nspawn

log = logging.getLogger("image")

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "tests" / "image"


class ImageChecksFailedError(CalcfleetError):
    """The image was built but did not pass its checks; it is not kept."""


def run_suite(host_options: Sequence[str], version: str, report: Path) -> int:
    """Run tests/image/ with pytest against one host; return pytest's exit code."""
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(SUITE),
        "-p",
        "no:cacheprovider",
        "--override-ini=addopts=-ra",
        f"--junitxml={report}",
        f"--image-version={version}",
        *host_options,
    ]
    log.info("image checks - %s", " ".join(argv[3:]))
    return subprocess.run(argv, cwd=ROOT, check=False).returncode


def check_rootfs(rootfs: Path, version: str, report: Path) -> int:
    """Boot an ephemeral instance of rootfs with systemd-nspawn and check it."""
    # A name of its own, so that bakes running side by side get their own
    # cgroups.
    name = f"calcfleet-bake-{secrets.token_hex(3)}"
    instance = nspawn.boot(rootfs, name, report.parent / "instance")
    try:
        host_options = [f"--image-leader={instance.leader}", "--image-target=local"]
        return run_suite(host_options, version, report)
    finally:
        nspawn.stop(instance)


def check_over_ssh(address: str, private_key: str, version: str, report: Path) -> int:
    """Check an AMI's build instance over the SSH connection Packer opened."""
    with tempfile.TemporaryDirectory() as directory:
        key = Path(directory) / "key"
        key.write_text(private_key)
        key.chmod(0o600)
        user_host, port = address.rsplit(":", 1)
        user, host = user_host.split("@", 1)
        config = Path(directory) / "ssh_config"
        # A fresh build instance has a host key nobody knows yet; the
        # ControlMaster keeps one connection for all the checks.
        config.write_text(
            f"Host {host}\n  User {user}\n  Port {port}\n  IdentityFile {key}\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
            f"  ControlMaster auto\n  ControlPath {directory}/%C\n"
            "  ControlPersist 60\n"
        )
        spec = f"ssh://{host}?ssh_config={config}&sudo=true"
        return run_suite(
            [f"--image-host={spec}", "--image-target=aws"], version, report
        )


def failure(report: Path, error: Exception) -> CalcfleetError:
    """The error for a failed build: the checks that failed, if it got that far."""
    failed = failed_checks(report)
    if not failed:
        return (
            error if isinstance(error, CalcfleetError) else CalcfleetError(str(error))
        )
    return ImageChecksFailedError(
        f"image checks failed ({len(failed)}): {', '.join(failed)}"
    )


def failed_checks(report: Path) -> list[str]:
    """Names of the failed or erroring test cases in a JUnit XML report."""
    if not report.is_file():
        return []
    failed = []
    for case in ET.parse(report).iter("testcase"):  # noqa: S314 - our own report
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case.get("name", "?"))
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--rootfs", type=Path, help="a local image's root filesystem")
    where.add_argument("--ssh", metavar="USER@HOST:PORT", help="a build instance")
    parser.add_argument("--version", required=True, help="calcfleet version baked")
    parser.add_argument("--report", type=Path, required=True, help="JUnit XML path")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    if arguments.rootfs:
        return check_rootfs(arguments.rootfs, arguments.version, arguments.report)
    # Packer hands the key to the provisioner in its environment.
    key = os.environ["CALCFLEET_SSH_KEY"]
    return check_over_ssh(arguments.ssh, key, arguments.version, arguments.report)


if __name__ == "__main__":
    sys.exit(main())
