"""The AMI bake rehearsed: Packer's amazon-ebs source against a moto server."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import boto3
import pytest

from image import bake
from stacks.aws import Aws

from conftest import run_invoke

pytestmark = pytest.mark.slow


@pytest.fixture
def base_image(session: boto3.Session) -> dict[str, str]:
    """One of moto's stock Linux AMIs that the source filter can select.

    moto has no Debian AMI, and the images it registers lack the root device
    and virtualization types the filter asks for.
    """
    for image in session.client("ec2").describe_images()["Images"]:
        if (
            image.get("Platform") != "windows"
            and image.get("RootDeviceType") == "ebs"
            and image.get("VirtualizationType") == "hvm"
        ):
            return image
    raise AssertionError("moto offers no Linux EBS HVM image")


def test_rehearsal_registers_an_ami_with_the_provenance_tags(
    session: boto3.Session,
    moto_endpoint: str,
    base_image: dict[str, str],
    tmp_path: Path,
) -> None:
    if shutil.which("packer") is None:
        pytest.fail("packer is not installed")
    options = bake.BakeOptions(
        target="aws",
        state_dir=tmp_path,
        ec2_endpoint=moto_endpoint,
        source_ami_name=base_image["Name"],
        source_ami_owner=base_image["OwnerId"],
    )
    output = io.StringIO()

    try:
        result = bake.bake(options, output, Aws(session))
    finally:
        print(output.getvalue())  # Packer's own account, shown when this fails

    assert result.image_id.startswith("ami-")
    assert not result.reused
    image = session.client("ec2").describe_images(ImageIds=[result.image_id])
    tags = {tag["Key"]: tag["Value"] for tag in image["Images"][0]["Tags"]}
    assert tags == {
        "calcfleet:version": bake.project_version(),
        "calcfleet:commit": bake.git_commit(),
        "calcfleet:built-at": tags["calcfleet:built-at"],
        "calcfleet:inputs": bake.fingerprint(bake.ROOT, None),
        "calcfleet:base-image": base_image["ImageId"],
        # No instance to reach on moto, so no checks ran: not verified.
        "calcfleet:verified": "false",
    }
    assert tags["calcfleet:built-at"].endswith("Z")
    assert "rehearsal.amazon-ebs.rehearsal" in output.getvalue()


def test_aws_bake_without_credentials_stops_at_once_with_one_line(
    aws_environ: dict[str, str],
) -> None:
    environ = {k: v for k, v in aws_environ.items() if k != "AWS_ACCESS_KEY_ID"}
    environ.pop("AWS_SECRET_ACCESS_KEY")

    result = run_invoke(environ, "bake", "--target", "aws")

    assert result.returncode == 1
    assert result.stderr == (
        "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and"
        " AWS_SECRET_ACCESS_KEY) and AWS_DEFAULT_REGION, or run `aws configure`\n"
    )
    assert result.stdout == ""
