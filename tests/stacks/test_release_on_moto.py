"""`invoke up`, `release` and `status` against a moto server, as a user runs them."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest

from stacks import history
from stacks.aws import Aws
from tests.stacks.conftest import ROOT, certificate, register_image, run_invoke

pytestmark = pytest.mark.slow


def _launch_template_images(session: boto3.Session) -> list[str]:
    stack = session.client("cloudformation").describe_stacks(
        StackName="calcfleet-prod-fleet"
    )["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    versions = session.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=outputs["LaunchTemplateId"]
    )["LaunchTemplateVersions"]
    ordered = sorted(versions, key=lambda v: v["VersionNumber"])
    return [v["LaunchTemplateData"]["ImageId"] for v in ordered]


def test_up_then_release_changes_the_launch_template_image(
    session: boto3.Session, aws_environ: dict[str, str]
) -> None:
    first = register_image(session, "1.0.0")
    second = register_image(session, "1.1.0")

    created = run_invoke(
        aws_environ,
        "up",
        "--target",
        "aws",
        "--ami",
        first,
        "--certificate",
        certificate(session),
    )
    assert created.returncode == 0, created.stderr
    assert "calcfleet-prod-fleet: CREATE_COMPLETE" in created.stdout

    released = run_invoke(aws_environ, "release", "--ami", second)
    assert released.returncode == 0, released.stderr
    assert released.stdout.splitlines()[-1] == (
        f"released: {second} serves calcfleet-prod-fleet (was {first})"
    )
    assert _launch_template_images(session) == [first, second]
    assert history.previous_image(Aws(session), "prod") == first

    again = run_invoke(aws_environ, "release", "--ami", second)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"already released: {second} serves calcfleet-prod-fleet\n"
    assert _launch_template_images(session) == [first, second]

    shown = run_invoke(aws_environ, "status", "--target", "aws")
    assert shown.returncode == 0, shown.stderr
    assert f"image in service: {second}" in shown.stdout
    assert "instances: 2" in shown.stdout


def test_rollback_releases_the_image_before_the_last_release(
    session: boto3.Session, aws_environ: dict[str, str]
) -> None:
    first = register_image(session, "1.0.0")
    second = register_image(session, "1.1.0")
    up = run_invoke(
        aws_environ,
        "up",
        "--target",
        "aws",
        "--ami",
        first,
        "--certificate",
        certificate(session),
    )
    assert up.returncode == 0, up.stderr
    assert run_invoke(aws_environ, "release", "--ami", second).returncode == 0

    rolled = run_invoke(aws_environ, "rollback", "--target", "aws")

    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout.splitlines()[-1] == (
        f"released: {first} serves calcfleet-prod-fleet (was {second})"
    )
    assert _launch_template_images(session)[-1] == first


def test_release_of_an_unverified_image_stops_before_any_change(
    session: boto3.Session, aws_environ: dict[str, str]
) -> None:
    first = register_image(session, "1.0.0")
    unverified = register_image(session, "1.2.0", verified=False)
    up = run_invoke(
        aws_environ,
        "up",
        "--target",
        "aws",
        "--ami",
        first,
        "--certificate",
        certificate(session),
    )
    assert up.returncode == 0, up.stderr

    refused = run_invoke(aws_environ, "release", "--ami", unverified)

    assert refused.returncode == 1
    assert refused.stderr == (
        f"image {unverified} has no calcfleet:verified=true tag: only images the bake"
        " verified are released\n"
    )
    assert _launch_template_images(session) == [first]


def test_release_without_a_stack_says_how_to_create_it(
    session: boto3.Session, aws_environ: dict[str, str]
) -> None:
    image = register_image(session, "1.0.0")

    refused = run_invoke(aws_environ, "release", "--ami", image)

    assert refused.returncode == 1
    assert refused.stderr == (
        "calcfleet-prod-fleet does not exist: create it with `invoke up --target aws`\n"
    )


def test_down_deletes_the_fleet_after_confirmation(
    session: boto3.Session, aws_environ: dict[str, str]
) -> None:
    image = register_image(session, "1.0.0")
    up = run_invoke(
        aws_environ,
        "up",
        "--target",
        "aws",
        "--ami",
        image,
        "--certificate",
        certificate(session),
    )
    assert up.returncode == 0, up.stderr
    cloudformation = session.client("cloudformation")

    declined = subprocess.run(
        [sys.executable, "-m", "invoke", "down", "--target", "aws"],
        cwd=ROOT,
        env=aws_environ,
        input="no\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert declined.returncode == 1
    assert declined.stderr == "not deleted\n"
    assert len(cloudformation.describe_stacks()["Stacks"]) == 2

    down = run_invoke(aws_environ, "down", "--target", "aws", "--yes")

    assert "DELETE_COMPLETE" in down.stdout
    summaries = cloudformation.list_stacks()["StackSummaries"]
    fleet = [s for s in summaries if s["StackName"] == "calcfleet-prod-fleet"]
    assert [s["StackStatus"] for s in fleet] == ["DELETE_COMPLETE"]
    # moto leaves the VPC endpoints' network interfaces behind, so it refuses
    # to delete the VPC; AWS removes them with the endpoints. What is checked
    # here is that such a refusal reaches the user as one line.
    assert down.returncode == 1
    assert down.stderr.startswith(
        "delete stack calcfleet-prod-network - DependencyViolation: The vpc"
    )
    assert down.stderr.count("\n") == 1


def test_release_without_credentials_names_what_to_configure(
    aws_environ: dict[str, str],
) -> None:
    environ = {k: v for k, v in aws_environ.items() if not k.startswith("AWS_")}
    environ.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")

    refused = run_invoke(environ, "release", "--ami", "ami-0123456789abcdef0")

    assert refused.returncode == 1
    assert refused.stderr == (
        "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and"
        " AWS_SECRET_ACCESS_KEY) and AWS_DEFAULT_REGION, or run `aws configure`\n"
    )


@pytest.mark.parametrize("verb", ["up", "down", "release", "rollback", "status"])
def test_local_target_refuses_an_environment_without_a_local_section(
    verb: str, aws_environ: dict[str, str]
) -> None:
    args = [verb, "--target", "local", "--env", "staging"] + (
        ["--ami", "img-1"] if verb == "release" else []
    )

    refused = run_invoke(aws_environ, *args)

    assert refused.returncode == 1
    assert refused.stderr == (
        'stacks/params/staging.json has no "local" section:'
        " it is not an environment the local fleet can run\n"
    )
