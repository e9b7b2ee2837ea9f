"""A moto server on a free loopback port in AWS's place, and helpers to fill it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from stacks.aws import Aws

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).parent / "recorded"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def aws_environ(moto_endpoint: str) -> dict[str, str]:
    """A fresh moto account, and the environment that points boto3 at it."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=5)
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith("AWS_")
    }
    environ.update(
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    return environ


@pytest.fixture
def session(
    aws_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> boto3.Session:
    for key, value in aws_environ.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return boto3.Session()


def register_image(session: boto3.Session, name: str, verified: bool = True) -> str:
    """An AMI in moto, tagged as the bake tags the images it verified."""
    ec2 = session.client("ec2")
    base = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]
    image_id: str = ec2.create_image(InstanceId=instance["InstanceId"], Name=name)[
        "ImageId"
    ]
    tags = [{"Key": "calcfleet:version", "Value": name}]
    if verified:
        tags.append({"Key": "calcfleet:verified", "Value": "true"})
    ec2.create_tags(Resources=[image_id], Tags=tags)
    return image_id


def certificate(session: boto3.Session) -> str:
    arn: str = session.client("acm").request_certificate(DomainName="calc.example.com")[
        "CertificateArn"
    ]
    return arn


def run_invoke(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


__all__ = ["RECORDED", "Aws", "certificate", "register_image", "run_invoke"]
