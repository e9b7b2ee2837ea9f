"""The bake's pure parts: the Packer manifest, AMI ids, inputs digest, base key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from image import bake, checks, packer

# Written by Packer 1.6.6: one local run, then a rehearsal run of the
# build-level source "rehearsal", which the manifest still calls "aws".
MANIFEST = {
    "builds": [
        {
            "name": "local",
            "builder_type": "null",
            "build_time": 1796315857,
            "files": None,
            "artifact_id": "Null",
            "packer_run_uuid": "86a60b83-7e6e-848a-e27f-6a6e7edb3d73",
            "custom_data": {"calcfleet:image-id": "img-070d9bccc3cd71c7a"},
        },
        {
            "name": "aws",
            "builder_type": "amazon-ebs",
            "build_time": 1796316460,
            "files": None,
            "artifact_id": "us-east-1:ami-9e75a983297252e5b",
            "packer_run_uuid": "d2548fa5-2bec-4088-ae61-75a7910a8b05",
            "custom_data": None,
        },
    ],
    "last_run_uuid": "d2548fa5-2bec-4088-ae61-75a7910a8b05",
}


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(MANIFEST))
    return path


def test_manifest_entry_is_the_last_run(manifest: Path) -> None:
    entry = packer.read_manifest(manifest, "amazon-ebs")
    assert entry.artifact_id == "us-east-1:ami-9e75a983297252e5b"
    assert entry.custom_data == {}


def test_manifest_without_an_entry_of_the_last_run_means_nothing_was_built(
    manifest: Path,
) -> None:
    with pytest.raises(
        packer.PackerBuildError,
        match="packer built no null image in run d2548fa5-2bec-4088-ae61-75a7910a8b05",
    ):
        packer.read_manifest(manifest, "null")


def test_no_manifest_means_nothing_was_built(tmp_path: Path) -> None:
    with pytest.raises(packer.PackerBuildError, match=r"no manifest"):
        packer.read_manifest(tmp_path / "manifest.json", "null")


def test_ami_id_is_read_from_the_artifact_id() -> None:
    assert bake.ami_id("us-east-1:ami-9e75a983297252e5b") == "ami-9e75a983297252e5b"
    with pytest.raises(bake.AmiMissingError):
        bake.ami_id("Null")


def test_inputs_digest_changes_with_what_the_image_is_made_of_only(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    for name in ("image/provision.sh", "service/calcfleet/x.py", "pyproject.toml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("one")
    overlay = tmp_path / "overlay"
    (overlay / "etc").mkdir(parents=True)
    (overlay / "etc" / "x").write_text("fault")
    first = bake.fingerprint(root, None)

    (root / "service" / "calcfleet" / "__pycache__").mkdir()
    (root / "service" / "calcfleet" / "__pycache__" / "x.pyc").write_text("noise")
    (root / "image" / "nspawn.py").write_text("boots images, is not in them")
    assert bake.fingerprint(root, None) == first

    (root / "image" / "provision.sh").write_text("two")
    changed = bake.fingerprint(root, None)
    assert changed != first
    assert bake.fingerprint(root, overlay) != changed


def test_base_key_ignores_package_order_only() -> None:
    key = bake.base_image_key("bookworm", "http://deb.debian.org/debian", ["b", "a"])
    assert key == bake.base_image_key(
        "bookworm", "http://deb.debian.org/debian", ["a", "b"]
    )
    assert key != bake.base_image_key("trixie", "http://deb.debian.org/debian", ["a"])


def test_failed_checks_are_named_from_the_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "checks.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="test_unit" name="test_unit_is_enabled">'
        '<failure message="assert"/></testcase>'
        '<testcase classname="test_unit" name="test_unit_is_active"/>'
        '<testcase classname="test_service" name="test_health_answers_serving">'
        '<error message="boom"/></testcase>'
        "</testsuite></testsuites>"
    )

    error = checks.failure(report, packer.PackerBuildError("packer build exited 1"))

    assert str(error) == (
        "image checks failed (2): test_unit_is_enabled, test_health_answers_serving"
    )
    assert isinstance(error, checks.ImageChecksFailedError)


def test_a_build_that_failed_before_the_checks_keeps_packers_error(
    tmp_path: Path,
) -> None:
    cause = packer.PackerBuildError("packer build exited with 1")
    assert checks.failure(tmp_path / "absent.xml", cause) is cause
