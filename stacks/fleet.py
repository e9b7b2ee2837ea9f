"""The local fleet's instances: booted from a local image, behind HAProxy."""

from __future__ import annotations

import concurrent.futures
import datetime
import logging
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from calcfleet.errors import CalcfleetError
from image import bake, nspawn, store
from stacks import haproxy, localnet, rules
from stacks.fleetstate import FleetState, InstanceRecord, StateFiles

log = logging.getLogger("stacks")

Say = Callable[[str], None]

# Two pretend availability zones, as the stack spreads its group over two
# subnets; a new instance goes to the zone with fewer instances.
ZONES = ("local-a", "local-b")
NETWORK_FILE = "/etc/systemd/network/10-calcfleet.network"
# What the stack's UserData writes on AWS (see "Instance signal contract" in
# docs/architecture.md), bind-mounted read-only here.
ENV_FILE = "/etc/calcfleet/calcfleet.env"
# The local registry of the fleet's instances (calcfleet.discovery), one host
# directory shared by all. The unit's ProtectSystem=strict leaves nothing
# writable but its runtime directory, so a drop-in opens this one path.
REGISTRY = "/var/lib/calcfleet-registry"
DROP_IN = "/etc/systemd/system/calcfleet.service.d/50-local-fleet.conf"
BOOT_SECONDS = 180.0
# Requests still in flight on a drained instance get this long before it stops;
# the server itself then drains for its own grace period (server.grace_seconds).
DRAIN_SECONDS = 10.0


class FleetNotUpError(CalcfleetError):
    """There is no local fleet for this environment: `invoke up` first."""


class FleetImageMissingError(CalcfleetError):
    """No verified local image to boot the fleet from."""


class FleetUpError(CalcfleetError):
    """The fleet could not reach its desired capacity of healthy instances."""


class Fleet:
    """One environment's local fleet: rules from the template, state on disk."""

    def __init__(self, state_dir: Path, environment: str, say: Say = print) -> None:
        self.environment = environment
        self.rules = rules.fleet_rules(environment)
        self.site = localnet.site(environment)
        self.files = StateFiles(state_dir, environment)
        self.images = store.ImageStore(state_dir)
        self.balancer = haproxy.Balancer(
            self.files.directory / "balancer", self.site.listen, self.rules.max_size
        )
        self.say = say

    def current(self) -> FleetState:
        state = self.files.load()
        if state is None or haproxy.running_pid(self.balancer) is None:
            raise FleetNotUpError(
                f"the {self.environment} fleet on this machine is not up:"
                " run `invoke up`"
            )
        return state

    def current_image(self) -> str:
        """The image baked from the sources as they are, else the newest verified.

        Images baked with an overlay (the tests' deliberately slow or broken
        ones) have other inputs, so they are never taken for the current one.
        """
        current = self.images.find_by_inputs(bake.fingerprint(bake.ROOT, None))
        if current is not None:
            return current.image_id
        for image in self.images.images():
            if image.is_verified:
                return image.image_id
        raise FleetImageMissingError(
            f"no verified local image in {self.images.root}: run `invoke bake`"
        )

    # --- instances ---------------------------------------------------------

    def launch(
        self,
        state: FleetState,
        image_id: str,
        count: int,
        leaving: Sequence[InstanceRecord] = (),
    ) -> tuple[list[InstanceRecord], dict[str, str]]:
        """Boot `count` instances of the image; (booted, {name: why not} of failures).

        Booted instances are checked by the balancer but get no traffic until
        admitted: their health is their "signal". Zones are counted without
        the instances `leaving`, which the new ones replace.
        """
        rootfs = self.images.find_verified(image_id).rootfs
        staying = [i for i in state.instances if i not in leaving]
        planned = [self._plan(state, image_id, staying) for _ in range(count)]
        with concurrent.futures.ThreadPoolExecutor(max(count, 1)) as pool:
            booted = list(pool.map(lambda r: self._boot(r, rootfs), planned))
        failures = {r.name: why for r, why in zip(planned, booted, strict=True) if why}
        state.instances = [i for i in state.instances if i.name not in failures]
        self.files.save(state)
        return [r for r in planned if r.name not in failures], failures

    def _plan(
        self, state: FleetState, image_id: str, staying: list[InstanceRecord]
    ) -> InstanceRecord:
        zone = min(ZONES, key=lambda z: sum(i.zone == z for i in staying))
        name = f"i-{secrets.token_hex(6)}"
        record = InstanceRecord(
            name=name,
            image=image_id,
            zone=zone,
            address=localnet.free_address(
                self.site, [i.address for i in state.instances]
            ),
            slot=state.free_slot(self.rules.max_size),
            launcher=0,
            leader=0,
            work_dir=str(self.files.directory / "instances" / name),
            launched_at=datetime.datetime.now(datetime.UTC).isoformat(
                timespec="seconds"
            ),
        )
        state.instances.append(record)
        staying.append(record)
        return record

    def _boot(self, record: InstanceRecord, rootfs: Path) -> str:
        try:
            instance = nspawn.boot(
                rootfs,
                record.name,
                Path(record.work_dir),
                binds=self._instance_files(record),
                network_bridge=self.site.bridge,
                timeout=BOOT_SECONDS,
            )
        except nspawn.InstanceBootError as error:
            self._remove(record)
            return str(error)
        record.launcher, record.leader = instance.launcher.pid, instance.leader
        haproxy.fill(self.balancer, record.slot, record.endpoint)
        self.say(
            f"instance {record.name} - booted {record.image} in {record.zone}"
            f" at {record.address}"
        )
        return ""

    def _instance_files(self, record: InstanceRecord) -> list[nspawn.Bind]:
        """Its address, its settings, and the registry it shares with its peers."""
        work_dir = Path(record.work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        network = work_dir / "host0.network"
        network.write_text(localnet.network_file(record.address))
        settings = work_dir / "calcfleet.env"
        settings.write_text(
            f"CALCFLEET_SERVER_ADVERTISE={record.endpoint}\n"
            "CALCFLEET_DISCOVERY_BACKEND=local\n"
            f"CALCFLEET_DISCOVERY_REGISTRY_DIR={REGISTRY}\n"
        )
        drop_in = work_dir / "local-fleet.conf"
        drop_in.write_text(f"[Service]\nReadWritePaths={REGISTRY}\n")
        registry = self.files.directory / "registry"
        registry.mkdir(parents=True, exist_ok=True)
        # Sticky and open to all: the service runs as its own user inside.
        registry.chmod(0o1777)
        return [
            nspawn.Bind(network, NETWORK_FILE),
            nspawn.Bind(settings, ENV_FILE),
            nspawn.Bind(drop_in, DROP_IN),
            nspawn.Bind(registry, REGISTRY, read_only=False),
        ]

    def wait_for_signals(
        self, records: Sequence[InstanceRecord], timeout: float
    ) -> dict[str, str]:
        """Each instance's signal: "" once the balancer sees it SERVING, else why not.

        Like calcfleet-signal on an AMI, an instance whose service failed or
        restarted signals FAILURE at once instead of waiting out the pause.
        """
        verdicts: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while len(verdicts) < len(records) and time.monotonic() < deadline:
            seen = haproxy.slots(self.balancer)
            for record in records:
                if record.name not in verdicts:
                    verdict = self._signal(record, seen[record.slot])
                    if verdict is not None:
                        verdicts[record.name] = verdict
            time.sleep(0.25)
        for record in records:
            verdicts.setdefault(
                record.name,
                f"instance {record.name} - health not SERVING within the pause"
                f" time of {timeout:.0f}s",
            )
        return verdicts

    def _signal(self, record: InstanceRecord, seen: haproxy.SlotState) -> str | None:
        if not nspawn.is_running(record.name, record.launcher):
            return f"instance {record.name} - stopped before it became healthy"
        if seen.is_up:
            return ""
        shown = nspawn.run_in(
            record.leader,
            ["systemctl", "show", "calcfleet.service", "-p", "ActiveState,NRestarts"],
            timeout=10,
        ).stdout
        unit = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
        if unit.get("ActiveState") == "failed" or unit.get("NRestarts", "0") != "0":
            return f"instance {record.name} - calcfleet.service failed or restarted"
        return None

    def admit(self, records: Sequence[InstanceRecord]) -> None:
        for record in records:
            haproxy.admit(self.balancer, record.slot)
            log.info("instance %s - in service", record.name)

    def retire(self, state: FleetState, records: Sequence[InstanceRecord]) -> None:
        """Drain the instances at the balancer, then power them off."""
        for record in records:
            haproxy.drain(self.balancer, record.slot)
        slots = {record.slot for record in records}
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and any(
            s.sessions for n, s in haproxy.slots(self.balancer).items() if n in slots
        ):
            time.sleep(0.2)
        with concurrent.futures.ThreadPoolExecutor(max(len(records), 1)) as pool:
            list(pool.map(self._stop, records))
        names = {record.name for record in records}
        state.instances = [i for i in state.instances if i.name not in names]
        self.files.save(state)

    def _stop(self, record: InstanceRecord) -> None:
        if record.launcher:
            nspawn.stop_launcher(record.name, record.launcher)
        haproxy.empty(self.balancer, record.slot)
        self._remove(record)
        self.say(f"instance {record.name} - stopped ({record.image})")

    def _remove(self, record: InstanceRecord) -> None:
        work_dir = Path(record.work_dir)
        nspawn.remove_leftovers(record.name, work_dir / "console.log")
        shutil.rmtree(work_dir, ignore_errors=True)

    def health(self, state: FleetState) -> dict[str, str]:
        """The balancer's word on each instance: UP, DOWN, DRAIN..., or "stopped"."""
        seen = haproxy.slots(self.balancer)
        return {
            record.name: seen[record.slot].status
            if nspawn.is_running(record.name, record.launcher)
            else "stopped"
            for record in state.instances
        }
