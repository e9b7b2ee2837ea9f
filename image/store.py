"""The local image store: baked root filesystems and their provenance."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from calcfleet.errors import CalcfleetError

# Local image ids look like AMI ids, so both read alike in a release:
# "img-" and 17 hex digits.
ID_PREFIX = "img-"
METADATA = "metadata.json"
OWNER = "owner.pid"
# Keys shared with the AMI tags, so the same provenance reads the same way.
VERIFIED = "calcfleet:verified"
VERSION = "calcfleet:version"
COMMIT = "calcfleet:commit"
BASE_IMAGE = "calcfleet:base-image"
BUILT_AT = "calcfleet:built-at"
INPUTS = "calcfleet:inputs"


class ImageNotFoundError(CalcfleetError):
    """No local image has this id."""


class ImageNotVerifiedError(CalcfleetError):
    """The image exists but its checks did not pass."""


@dataclasses.dataclass(frozen=True)
class LocalImage:
    """One baked image: its root filesystem and the tags that say where it came from."""

    image_id: str
    path: Path
    tags: dict[str, str]

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def is_verified(self) -> bool:
        return self.tags.get(VERIFIED) == "true" and self.rootfs.is_dir()

    @property
    def version(self) -> str:
        return self.tags.get(VERSION, "")

    @property
    def built_at(self) -> str:
        return self.tags.get(BUILT_AT, "")


class ImageStore:
    """Images under <state_dir>/images/<IMAGE_ID>/ with rootfs/ and metadata.json.

    An image is written as <IMAGE_ID>.partial/ and renamed only once it has
    passed its checks, so a failed or interrupted bake leaves nothing that
    find() or images() would return.
    """

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "images"

    def images(self) -> list[LocalImage]:
        """Every complete image, newest first."""
        found = [
            self._load(path)
            for path in self.root.glob(f"{ID_PREFIX}*")
            if not path.name.endswith(".partial") and (path / METADATA).is_file()
        ]
        return sorted(found, key=lambda image: image.built_at, reverse=True)

    def find(self, image_id: str) -> LocalImage:
        path = self.root / image_id
        if not image_id.startswith(ID_PREFIX) or not (path / METADATA).is_file():
            raise ImageNotFoundError(f"no local image {image_id} in {self.root}")
        return self._load(path)

    def find_verified(self, image_id: str) -> LocalImage:
        """The image by id, only if its checks passed: what a release may use."""
        image = self.find(image_id)
        if not image.is_verified:
            raise ImageNotVerifiedError(f"image {image_id} did not pass its checks")
        return image

    def find_by_inputs(self, inputs: str) -> LocalImage | None:
        """The newest verified image baked from exactly these inputs, if any."""
        for image in self.images():
            if image.is_verified and image.tags.get(INPUTS) == inputs:
                return image
        return None

    def new_id(self) -> str:
        return ID_PREFIX + secrets.token_hex(9)[:17]

    def partial(self, image_id: str) -> Path:
        """Where a bake writes the image before it is kept."""
        return self.root / f"{image_id}.partial"

    def start_partial(self, image_id: str) -> Path:
        """Make the partial directory, marked with the pid of the bake that owns it."""
        partial = self.partial(image_id)
        partial.mkdir(parents=True)
        (partial / OWNER).write_text(f"{os.getpid()}\n")
        return partial

    def remove_abandoned(self) -> list[str]:
        """Remove partial images whose bake is gone (killed, or the machine died).

        A bake interrupted with Ctrl-C discards its own; one killed outright
        cannot. Partials of bakes still running are left alone.
        """
        removed = []
        for partial in self.root.glob(f"{ID_PREFIX}*.partial"):
            owner = partial / OWNER
            if not owner.is_file():
                continue  # not started by a bake: not ours to judge
            if not Path(f"/proc/{owner.read_text().strip()}").exists():
                self.discard(partial.name.removesuffix(".partial"))
                removed.append(partial.name)
        return removed

    def keep(self, image_id: str, tags: dict[str, str]) -> LocalImage:
        """Record the tags and make the partial image a complete one."""
        partial = self.partial(image_id)
        (partial / OWNER).unlink(missing_ok=True)
        (partial / METADATA).write_text(
            json.dumps({"id": image_id, "tags": tags}, indent=2, sort_keys=True) + "\n"
        )
        partial.rename(self.root / image_id)
        return self.find(image_id)

    def discard(self, image_id: str) -> None:
        for path in (self.partial(image_id), self.root / image_id):
            _unmount_below(path)
            shutil.rmtree(path, ignore_errors=True)

    def _load(self, path: Path) -> LocalImage:
        document = json.loads((path / METADATA).read_text())
        return LocalImage(document["id"], path, dict(document["tags"]))


def _unmount_below(path: Path) -> None:
    """Unmount whatever an interrupted build left mounted inside path.

    rootfs.sh bind-mounts the host's /dev and /sys into the root filesystem
    while it provisions; rmtree does not stop at mount points, so deleting a
    partial image with those still mounted would delete the host's own files.
    """
    prefix = f"{path.resolve()}/"
    # /proc/self/mountinfo: the fifth field is the mount point, octal-escaped.
    # See: https://man7.org/linux/man-pages/man5/proc_pid_mountinfo.5.html
    points = [
        line.split()[4].encode().decode("unicode_escape")
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=True)
