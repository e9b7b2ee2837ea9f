"""The Packer template: valid for Debian's Packer 1.6.6 and in its canonical format."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from image import packer

VARIABLES = {
    "version": "0.1.0",
    "commit": "97711e9",
    "built_at": "2026-12-03T16:43:54Z",
    "inputs": "837aa3f7065be1aa",
    "manifest": "/tmp/manifest.json",
}


@pytest.fixture(autouse=True)
def packer_installed() -> None:
    if shutil.which("packer") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("packer is not installed")
        pytest.skip("packer is not installed")


def test_template_validates(tmp_path: Path) -> None:
    # The file provisioner checks that the payload it will upload exists.
    packer.validate({**VARIABLES, "payload": str(tmp_path)})


def test_template_without_its_variables_does_not_validate() -> None:
    with pytest.raises(packer.PackerBuildError, match="packer validate exited with 1"):
        packer.validate({})


@pytest.mark.parametrize("name", ["calcfleet.pkr.hcl", "plugins.pkr.hcl"])
def test_template_is_formatted(name: str) -> None:
    result = subprocess.run(
        ["packer", "fmt", "-check", "-diff", str(packer.IMAGE_DIR / name)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
