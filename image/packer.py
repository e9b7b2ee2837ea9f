"""Every Packer call: validate and build the template, read the manifest it writes."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from calcfleet.errors import CalcfleetError

log = logging.getLogger("image")

IMAGE_DIR = Path(__file__).resolve().parent
TEMPLATE = IMAGE_DIR / "calcfleet.pkr.hcl"
# Packer 1.7 brought required_plugins and `packer init`; from there on Packer
# is given image/ as a directory, so it also reads plugins.pkr.hcl.
PLUGINS_SINCE = (1, 7)


class PackerMissingError(CalcfleetError):
    """The packer command is not installed."""


class PackerBuildError(CalcfleetError):
    """Packer exited non-zero, or built nothing for the filter it was given."""


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    """What one build recorded in the manifest post-processor's file."""

    source_name: str
    artifact_id: str
    run_uuid: str
    custom_data: dict[str, str]


def version() -> tuple[int, ...]:
    if shutil.which("packer") is None:
        raise PackerMissingError("packer is not installed (apt-get install packer)")
    output = subprocess.run(
        ["packer", "version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", output)
    if match is None:
        raise PackerMissingError(f"cannot read the packer version from {output!r}")
    return tuple(int(part) for part in match.groups())


def template() -> Path:
    """What to hand Packer: the template file, or image/ where plugins are known."""
    return IMAGE_DIR if version() >= PLUGINS_SINCE else TEMPLATE


def validate(variables: Mapping[str, str]) -> None:
    _run(["validate", *_var_args(variables), str(template())], sys.stdout)


def build(only: str, variables: Mapping[str, str], output: TextIO) -> None:
    """Run one build of the template, streaming Packer's output line by line.

    `only` is "BUILD.TYPE.SOURCE", e.g. "local.null.local".
    """
    target = template()
    if target == IMAGE_DIR:
        _run(["init", str(IMAGE_DIR)], output)
    _run(
        ["build", "-color=false", f"-only={only}", *_var_args(variables), str(target)],
        output,
    )


def read_manifest(path: Path, builder_type: str) -> ManifestEntry:
    """The entry of the last run, which must come from a `builder_type` source.

    Packer appends one entry per run and names the latest in last_run_uuid. A
    filter that matches no build still exits 0 and writes nothing, so an
    absent file or no entry of that run means nothing was built. The entry's
    name is not compared: Packer 1.6.6 records the top-level source's name
    even for a build-level source renamed with `name`.
    """
    if not path.is_file():
        raise PackerBuildError(f"packer built no {builder_type} image (no manifest)")
    document: dict[str, Any] = json.loads(path.read_text())
    run_uuid = document["last_run_uuid"]
    for entry in document["builds"]:
        if (
            entry["packer_run_uuid"] == run_uuid
            and entry["builder_type"] == builder_type
        ):
            return ManifestEntry(
                source_name=entry["name"],
                artifact_id=entry["artifact_id"],
                run_uuid=run_uuid,
                custom_data=dict(entry.get("custom_data") or {}),
            )
    raise PackerBuildError(f"packer built no {builder_type} image in run {run_uuid}")


def _var_args(variables: Mapping[str, str]) -> list[str]:
    return [f"-var={name}={value}" for name, value in sorted(variables.items())]


def _run(arguments: list[str], output: TextIO) -> None:
    argv = ["packer", *arguments]
    log.debug("packer - run %s", " ".join(argv))
    with subprocess.Popen(
        argv,
        cwd=IMAGE_DIR.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Packer's own checkpoint call home has nowhere to go here.
        env={**os.environ, "CHECKPOINT_DISABLE": "1", "PACKER_NO_COLOR": "1"},
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            output.write(line)
            output.flush()
    if process.returncode != 0:
        raise PackerBuildError(
            f"packer {arguments[0]} exited with {process.returncode}"
        )
