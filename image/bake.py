"""The bake: build the image, let its checks gate it, record its provenance."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from calcfleet.errors import CalcfleetError
from image import checks, packer, store
from stacks.aws import Aws

log = logging.getLogger("image")

ROOT = Path(__file__).resolve().parent.parent
IMAGE_DIR = ROOT / "image"
# Everything an image is made from. A change in any of these bakes anew; the
# checks are an input too, since they decide what "verified" means. The
# Python that drives the bake (this module, packer.py, nspawn.py, store.py)
# is not: changing how an image is booted or stored changes no image.
INPUT_PATHS = (
    "image/calcfleet.pkr.hcl",
    "image/provision.sh",
    "image/rootfs.sh",
    "image/files",
    "image/checks.py",
    "service",
    "protos",
    "tests/image",
    "pyproject.toml",
)
SKIPPED_PARTS = {"__pycache__", "build", ".mypy_cache"}

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What debootstrap puts into the cached base; provision.sh adds the rest.
BASE_PACKAGES = (
    "ca-certificates",
    "iproute2",
    "procps",
    "python3",
    "python3-venv",
    "systemd",
    "systemd-sysv",
)


class BakeTargetError(CalcfleetError):
    """The target is neither local nor aws."""


class AmiMissingError(CalcfleetError):
    """Packer finished but its manifest names no AMI."""


@dataclasses.dataclass(frozen=True)
class BakeOptions:
    target: str
    state_dir: Path
    force: bool = False
    # A directory laid over the image's root after the standard files: how a
    # test bakes a deliberately faulty image. Part of the inputs.
    overlay: Path | None = None
    # aws only: an EC2 endpoint other than AWS's own. Set, the bake is the
    # rehearsal against moto: no instance to reach, so no provisioning and no
    # checks, and the AMI is tagged calcfleet:verified=false.
    ec2_endpoint: str | None = None
    source_ami_name: str | None = None
    source_ami_owner: str | None = None


@dataclasses.dataclass(frozen=True)
class BakeResult:
    image_id: str
    reused: bool
    seconds: float


def bake(
    options: BakeOptions, output: TextIO = sys.stdout, aws: Aws | None = None
) -> BakeResult:
    """Bake the image of the target, or reuse one made from the same inputs.

    `aws` is needed for the aws target only.
    """
    if options.target == "local":
        return _local_image(options, output)
    if options.target == "aws":
        if aws is None:
            raise ValueError("an aws bake needs an Aws")
        return _ami(options, output, aws)
    raise BakeTargetError(f"unknown target {options.target!r}: use local or aws")


def _local_image(options: BakeOptions, output: TextIO) -> BakeResult:
    started = time.monotonic()
    images = store.ImageStore(options.state_dir)
    inputs = fingerprint(ROOT, options.overlay)

    existing = None if options.force else images.find_by_inputs(inputs)
    if existing is not None:
        log.debug("image %s - inputs unchanged, reusing it", existing.image_id)
        return BakeResult(existing.image_id, True, time.monotonic() - started)

    for name in images.remove_abandoned():
        log.info("image %s - removed, its bake was gone", name)
    image_id = images.new_id()
    partial = images.start_partial(image_id)
    try:
        tags = _run_local_build(image_id, partial, inputs, options, output)
        image = images.keep(image_id, tags)
    except BaseException:
        images.discard(image_id)
        raise
    log.debug("image %s - verified and kept", image.image_id)
    return BakeResult(image.image_id, False, time.monotonic() - started)


def _run_local_build(
    image_id: str, partial: Path, inputs: str, options: BakeOptions, output: TextIO
) -> dict[str, str]:
    cache = options.state_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    base_key = base_image_key(SUITE, MIRROR, BASE_PACKAGES)
    variables = {
        **provenance_variables(inputs),
        "image_id": image_id,
        "payload": str(make_payload(partial / "payload", options.overlay)),
        "manifest": str(partial / "manifest.json"),
        "python": sys.executable,
        "rootfs": str(partial / "rootfs"),
        "base_tarball": str(cache / f"base-{base_key}.tar"),
        "base_image": f"debian-{SUITE}-{base_key}",
        "suite": SUITE,
        "mirror": MIRROR,
        "base_packages": ",".join(BASE_PACKAGES),
        "cache_dir": str(cache),
        "checks_report": str(partial / "checks.xml"),
    }
    try:
        packer.build("local.null.local", variables, output)
    except packer.PackerBuildError as error:
        raise checks.failure(partial / "checks.xml", error) from error

    entry = packer.read_manifest(partial / "manifest.json", "null")
    shutil.rmtree(partial / "payload")
    return {**entry.custom_data, store.VERIFIED: "true"}


def _ami(options: BakeOptions, output: TextIO, aws: Aws) -> BakeResult:
    started = time.monotonic()
    aws.check_configured()
    inputs = fingerprint(ROOT, options.overlay)
    rehearsal = options.ec2_endpoint is not None

    wanted = {store.INPUTS: inputs, store.VERIFIED: "false" if rehearsal else "true"}
    existing = [] if options.force else aws.images_tagged(wanted)
    if existing:
        image_id = str(existing[0]["ImageId"])
        log.debug("image %s - inputs unchanged, reusing it", image_id)
        return BakeResult(image_id, True, time.monotonic() - started)

    work = Path(tempfile.mkdtemp(prefix="ami-", dir=_build_dir(options)))
    try:
        build = "rehearsal" if rehearsal else "aws"
        variables = {
            **provenance_variables(inputs),
            "payload": str(make_payload(work / "payload", options.overlay)),
            "manifest": str(work / "manifest.json"),
            "python": sys.executable,
            "checks_report": str(work / "checks.xml"),
            "region": str(aws.session.region_name),
            **_aws_overrides(options),
        }
        try:
            packer.build(f"{build}.amazon-ebs.{build}", variables, output)
        except packer.PackerBuildError as error:
            raise checks.failure(work / "checks.xml", error) from error
        entry = packer.read_manifest(work / "manifest.json", "amazon-ebs")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BakeResult(ami_id(entry.artifact_id), False, time.monotonic() - started)


def _aws_overrides(options: BakeOptions) -> dict[str, str]:
    overrides = {
        "ec2_endpoint": options.ec2_endpoint,
        "skip_aws_checks": "true" if options.ec2_endpoint else None,
        "source_ami_name": options.source_ami_name,
        "source_ami_owner": options.source_ami_owner,
    }
    return {name: value for name, value in overrides.items() if value}


def ami_id(artifact_id: str) -> str:
    """The AMI id in an amazon-ebs artifact id, "REGION:AMI[,REGION:AMI...]"."""
    for part in artifact_id.split(","):
        _, _, image_id = part.partition(":")
        if image_id.startswith("ami-"):
            return image_id
    raise AmiMissingError(f"packer recorded no AMI (artifact {artifact_id!r})")


def _build_dir(options: BakeOptions) -> Path:
    directory = options.state_dir / "build"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def provenance_variables(inputs: str) -> dict[str, str]:
    """The template variables every target records as tags."""
    return {
        "version": project_version(),
        "commit": git_commit(),
        "built_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inputs": inputs,
    }


def make_payload(directory: Path, overlay: Path | None) -> Path:
    """What provisioning reads: the calcfleet wheel, provision.sh, files/, overlay/."""
    directory.mkdir(parents=True)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--wheel-dir", str(directory), str(ROOT)),
        ],
        check=True,
        cwd=ROOT,
    )
    shutil.copy2(IMAGE_DIR / "provision.sh", directory / "provision.sh")
    shutil.copytree(IMAGE_DIR / "files", directory / "files")
    if overlay is not None:
        shutil.copytree(overlay, directory / "overlay", symlinks=True)
    return directory


def fingerprint(root: Path, overlay: Path | None) -> str:
    """A digest of every input file's path and content, and of the overlay's."""
    digest = hashlib.sha256()
    trees = [(name, root / name) for name in INPUT_PATHS]
    if overlay is not None:
        trees.append(("overlay", overlay))
    for name, path in trees:
        for file in _files(path):
            relative = name if file == path else f"{name}/{file.relative_to(path)}"
            digest.update(relative.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def base_image_key(suite: str, mirror: str, packages: Iterable[str]) -> str:
    """Names the cached debootstrap base: equal key, equal base."""
    text = "\n".join([suite, mirror, *sorted(packages)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        version: str = tomllib.load(file)["project"]["version"]
    return version


def git_commit() -> str:
    """HEAD, marked "-dirty" when the inputs differ from it."""

    def git(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=False
        )

    head = git("rev-parse", "HEAD").stdout.strip() or "unknown"
    changed = git("status", "--porcelain", "--", *INPUT_PATHS).stdout.strip()
    return f"{head}-dirty" if changed else head


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        file
        for file in path.rglob("*")
        if (file.is_file() or file.is_symlink())
        and not SKIPPED_PARTS.intersection(file.relative_to(path).parts)
        and not any(part.endswith(".egg-info") for part in file.parts)
    )
