"""Every systemd-nspawn call: boot an instance of a local image, run in it, stop it."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from calcfleet.errors import CalcfleetError

log = logging.getLogger("image")

# The host's PID 1 is not systemd, so nspawn cannot register with machined
# (--register=no) nor ask it for a scope (--keep-unit). Each launcher moves
# itself into a cgroup of its own first, or all instances would share one.
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
CGROUP_PARENT = "calcfleet"
WAIT_ONLINE = "systemd-networkd-wait-online.service"


class InstanceBootError(CalcfleetError):
    """An instance did not come up: nspawn exited or systemd never answered."""


@dataclasses.dataclass(frozen=True)
class Bind:
    """A host path mounted into the instance."""

    source: Path
    target: str
    read_only: bool = True

    def option(self) -> str:
        flag = "--bind-ro" if self.read_only else "--bind"
        return f"{flag}={self.source}:{self.target}"


@dataclasses.dataclass
class Instance:
    """One booted copy of an image; `leader` is its systemd, PID 1 inside."""

    name: str
    rootfs: Path
    launcher: subprocess.Popen[bytes]
    leader: int
    console_log: Path

    def run(
        self, argv: Sequence[str], timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in every namespace of the instance, as its root."""
        return run_in(self.leader, argv, timeout)


def nsenter_argv(leader: int) -> list[str]:
    """The command prefix that enters every namespace of an instance.

    Without machined (see above) `machinectl shell` is not there; nsenter
    into the instance's PID 1 is the way in.
    """
    return ["nsenter", "--target", str(leader), "--all"]


def run_in(
    leader: int, argv: Sequence[str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run argv inside the instance whose PID 1 has host pid `leader`."""
    log.debug("instance %d - run %s", leader, " ".join(argv))
    return subprocess.run(
        [*nsenter_argv(leader), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def boot(
    rootfs: Path,
    name: str,
    work_dir: Path,
    *,
    binds: Sequence[Bind] = (),
    network_bridge: str | None = None,
    timeout: float = 60.0,
) -> Instance:
    """Boot an ephemeral copy of rootfs and wait until its systemd answers.

    work_dir holds the instance's own /etc/hostname and its console log.
    --ephemeral copies the image beside it, so nothing the instance does
    reaches the image.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    hostname = work_dir / "hostname"
    hostname.write_text(f"{name}\n")
    console_log = work_dir / "console.log"
    argv = [
        "systemd-nspawn",
        f"--directory={rootfs}",
        f"--machine={name}",
        "--boot",
        "--ephemeral",
        "--register=no",
        "--keep-unit",
        "--console=passive",
        Bind(hostname, "/etc/hostname").option(),
        *(bind.option() for bind in binds),
    ]
    if network_bridge:
        argv.append(f"--network-bridge={network_bridge}")
    else:
        # An instance with no bridge gets a network namespace of its own with
        # only loopback: on the host's network it would bind the host's port
        # 50051 (two check instances at once would collide) and its
        # systemd-networkd would manage the host's links. Nothing there can
        # come online, so systemd-networkd-wait-online is masked for it, or
        # network-online.target (and the service after it) would wait two
        # minutes for a link that never comes.
        argv += [
            "--private-network",
            Bind(Path("/dev/null"), f"/etc/systemd/system/{WAIT_ONLINE}").option(),
        ]

    log.info("instance %s - booting %s", name, rootfs)
    with console_log.open("wb") as console:
        launcher = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: _enter_own_cgroup(name),  # noqa: PLW1509
            start_new_session=True,
        )
    try:
        leader = _leader(launcher, timeout)
    except BaseException:
        # No systemd to shut down cleanly yet: end the launcher and its copy.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout)
        _remove_own_cgroup(name)
        raise
    instance = Instance(name, rootfs, launcher, leader, console_log)
    try:
        _wait_until_answering(instance, timeout)
    except BaseException:
        stop(instance)
        raise
    return instance


def stop(instance: Instance, timeout: float = 30.0) -> None:
    """Power the instance off (nspawn turns SIGTERM into a clean shutdown)."""
    if instance.launcher.poll() is None:
        log.info("instance %s - stopping", instance.name)
        instance.launcher.send_signal(signal.SIGTERM)
        try:
            instance.launcher.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("instance %s - no clean shutdown, killing", instance.name)
            os.killpg(instance.launcher.pid, signal.SIGKILL)
            instance.launcher.wait(timeout)
    _remove_own_cgroup(instance.name)


def is_running(name: str, launcher: int) -> bool:
    """Whether pid `launcher` is still the systemd-nspawn of instance `name`.

    For callers that did not start the instance (a later command reading the
    fleet's state): the pid alone may have been reused since.
    """
    try:
        argv = Path(f"/proc/{launcher}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"systemd-nspawn" in argv[0] and f"--machine={name}".encode() in argv


def stop_launcher(name: str, launcher: int, timeout: float = 30.0) -> None:
    """stop() for an instance known only by its name and launcher pid."""
    if is_running(name, launcher):
        log.info("instance %s - stopping", name)
        os.kill(launcher, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while is_running(name, launcher) and time.monotonic() < deadline:
            time.sleep(0.2)
    if is_running(name, launcher):
        log.warning("instance %s - no clean shutdown, killing", name)
    kill(name)
    _remove_own_cgroup(name)


def kill(name: str) -> None:
    """SIGKILL every process of the instance, nspawn included, as a crash would.

    cgroup.kill (cgroup v2, Linux 5.14) kills the whole group at once, so no
    process escapes by forking meanwhile. An ephemeral copy killed this way
    stays on disk: see remove_leftovers().
    """
    group = CGROUP_ROOTS[1] / CGROUP_PARENT / name / "cgroup.kill"
    if group.exists():
        group.write_text("1")
        deadline = time.monotonic() + 10
        while _has_processes(name) and time.monotonic() < deadline:
            time.sleep(0.1)


def remove_leftovers(name: str, console_log: Path) -> None:
    """Remove what a killed nspawn could not: its ephemeral copy and cgroups.

    nspawn names the copy on the first line of its output ("Spawning
    container NAME on /path/.#machine.XXXX.").
    """
    with contextlib.suppress(OSError, IndexError):
        first = console_log.read_text(errors="replace").splitlines()[0]
        copy = Path(first.split(" on ", 1)[1].rstrip("."))
        if copy.name.startswith(".#machine.") and copy.is_dir():
            log.info("instance %s - removing its ephemeral copy %s", name, copy)
            shutil.rmtree(copy, ignore_errors=True)
    _remove_own_cgroup(name)


def _has_processes(name: str) -> bool:
    for root in CGROUP_ROOTS:
        for procs in (root / CGROUP_PARENT / name).glob("**/cgroup.procs"):
            with contextlib.suppress(OSError):
                if procs.read_text().strip():
                    return True
    return False


def _enter_own_cgroup(name: str) -> None:
    # Runs in the launcher between fork and exec, so nspawn starts inside it.
    for root in CGROUP_ROOTS:
        if root.is_dir():
            group = root / CGROUP_PARENT / name
            group.mkdir(parents=True, exist_ok=True)
            (group / "cgroup.procs").write_text(str(os.getpid()))


def _remove_own_cgroup(name: str) -> None:
    # nspawn leaves its payload/ and supervisor/ groups behind; remove the
    # tree deepest first. A group still holding a process stays, harmlessly.
    for root in CGROUP_ROOTS:
        group = root / CGROUP_PARENT / name
        if not group.is_dir():
            continue
        for directory in sorted(group.glob("**/"), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()


def _leader(launcher: subprocess.Popen[bytes], timeout: float) -> int:
    """The host pid of the instance's PID 1, a child of nspawn.

    nspawn's first child only sets up mounts, forks the real PID 1 and exits;
    taking it for the leader makes every later nsenter fail. The leader is
    the child that is PID 1 in a namespace of its own (the last NSpid field).
    """
    deadline = time.monotonic() + timeout
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    while time.monotonic() < deadline:
        if launcher.poll() is not None:
            raise InstanceBootError(f"systemd-nspawn exited with {launcher.returncode}")
        pids = children.read_text().split() if children.exists() else []
        for pid in pids:
            if _is_namespace_init(int(pid)):
                return int(pid)
        time.sleep(0.1)
    raise InstanceBootError(f"systemd-nspawn started no instance in {timeout:.0f}s")


def _is_namespace_init(pid: int) -> bool:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return len(line.split()) > 2 and line.split()[-1] == "1"
    return False


def _wait_until_answering(instance: Instance, timeout: float) -> None:
    # Only until systemd answers, not until boot has finished: a unit that
    # never reports READY holds boot in "starting" for its whole start timeout,
    # and the caller wants to see that, not wait it out.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if instance.launcher.poll() is not None:
            raise InstanceBootError(
                f"instance {instance.name} - nspawn exited with "
                f"{instance.launcher.returncode}; see {instance.console_log}"
            )
        state = instance.run(["systemctl", "is-system-running"], timeout=10).stdout
        if state.strip() in {"starting", "running", "degraded"}:
            log.info("instance %s - systemd is up (%s)", instance.name, state.strip())
            return
        time.sleep(0.2)
    raise InstanceBootError(
        f"instance {instance.name} - systemd did not answer in {timeout:.0f}s; "
        f"see {instance.console_log}"
    )
