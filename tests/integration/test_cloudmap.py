"""Cloud Map discovery against moto: in process, and real servers on moto's server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from calcfleet import cloudmap
from calcfleet.client import Client
from calcfleet.discovery import CloudMapDiscovery

from jobfleet import last_of, squares, status, submit_here, sum_request, wait_for
from servers import StartServer

REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def _service(client: Any) -> str:
    """A Cloud Map HTTP namespace with one service; its id."""
    operation = client.create_http_namespace(Name="calcfleet.local")["OperationId"]
    namespace = client.get_operation(OperationId=operation)["Operation"]["Targets"]
    service = client.create_service(
        Name="calcfleet", NamespaceId=namespace["NAMESPACE"]
    )
    return str(service["Service"]["Id"])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def test_instances_register_find_each_other_and_deregister(aws: None) -> None:
    client = cloudmap.client(cloudmap.session(REGION))
    service_id = _service(client)
    first = CloudMapDiscovery(client, service_id)
    second = CloudMapDiscovery(client, service_id)

    async def scenario() -> list[list[str]]:
        await first.register("10.0.0.1:50051")
        await second.register("10.0.0.2:50051")
        both = await first.addresses()
        await second.deregister()
        return [both, await first.addresses()]

    both, after = asyncio.run(scenario())
    assert both == ["10.0.0.1:50051", "10.0.0.2:50051"]
    assert after == ["10.0.0.1:50051"]
    listed = client.list_instances(ServiceId=service_id)["Instances"]
    assert [i["Id"] for i in listed] == ["calcfleet-10.0.0.1-50051"]
    assert listed[0]["Attributes"]["AWS_INSTANCE_PORT"] == "50051"


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.mark.slow
def test_real_servers_meet_through_cloud_map_and_leave_it_at_drain(
    start_server: StartServer, moto_endpoint: str
) -> None:
    client = boto3.client(
        "servicediscovery",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    service_id = _service(client)
    env = {
        **CREDENTIALS,
        "CALCFLEET_DISCOVERY_BACKEND": "cloudmap",
        "CALCFLEET_DISCOVERY_CLOUDMAP_SERVICE_ID": service_id,
        "CALCFLEET_DISCOVERY_CLOUDMAP_REGION": REGION,
        "CALCFLEET_DISCOVERY_CLOUDMAP_ENDPOINT_URL": moto_endpoint,
        "CALCFLEET_DISCOVERY_REFRESH_SECONDS": "0.3",
    }
    servers = [start_server(env=env) for _ in range(2)]
    for server in servers:
        wait_for(lambda s=server: len(status(s).peers) == 1, 10, "a peer")

    with Client(servers[0].address) as calcfleet:
        job = submit_here(calcfleet, sum_request("k**2", 1, 200_000))
        final = last_of(calcfleet, job.id)
    assert final.value == squares(200_000)
    assert sorted(final.workers) == sorted(s.address for s in servers)

    assert servers[1].terminate() == 0
    listed = client.list_instances(ServiceId=service_id)["Instances"]
    port = servers[0].address.rsplit(":", 1)[1]
    assert [i["Attributes"]["AWS_INSTANCE_PORT"] for i in listed] == [port]
    wait_for(lambda: status(servers[0]).peers == [], 5, "the peer gone")
