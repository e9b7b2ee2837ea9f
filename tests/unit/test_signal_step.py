"""The AMI's CloudFormation signal step: IMDSv2 instance id, the SignalResource call."""

from __future__ import annotations

import http.server
import importlib.machinery
import importlib.util
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

SCRIPT = Path(__file__).resolve().parents[2] / "image" / "files" / "calcfleet-signal"
ENVIRON = {"STACK_NAME": "calcfleet-prod-fleet", "RESOURCE": "AutoScalingGroup"}


@pytest.fixture(scope="module")
def step() -> types.ModuleType:
    loader = importlib.machinery.SourceFileLoader("calcfleet_signal", str(SCRIPT))
    spec = importlib.util.spec_from_loader("calcfleet_signal", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class Imds(http.server.BaseHTTPRequestHandler):
    """The two IMDSv2 requests: a token by PUT, then the id with that token."""

    def do_PUT(self) -> None:
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self._answer(200 if self.path == "/latest/api/token" and ttl else 400, "tok")

    def do_GET(self) -> None:
        # IMDSv2 only: without the token the metadata service answers 401.
        token = self.headers.get("X-aws-ec2-metadata-token")
        ok = self.path == "/latest/meta-data/instance-id" and token == "tok"
        self._answer(200 if ok else 401, "i-0123456789abcdef0")

    def _answer(self, code: int, body: str) -> None:
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def imds() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/latest"
    server.shutdown()


def test_instance_id_comes_from_imdsv2_with_a_token(
    step: types.ModuleType, imds: str
) -> None:
    assert step.instance_id(imds) == "i-0123456789abcdef0"


@pytest.mark.parametrize(("healthy", "status"), [(True, "SUCCESS"), (False, "FAILURE")])
def test_signal_names_stack_resource_and_instance(
    step: types.ModuleType, healthy: bool, status: str
) -> None:
    # moto has no SignalResource; the request is checked against AWS's shape.
    client = boto3.client("cloudformation", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response(
            "signal_resource",
            {},
            {
                "StackName": "calcfleet-prod-fleet",
                "LogicalResourceId": "AutoScalingGroup",
                "UniqueId": "i-0123456789abcdef0",
                "Status": status,
            },
        )
        sent = step.signal(client, ENVIRON, "i-0123456789abcdef0", healthy)
        stub.assert_no_pending_responses()
    assert sent == status
