"""The local fleet's pure parts: the balancer's health check, sites, state, history."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
from grpc_health.v1 import health_pb2

from stacks import haproxy, localnet
from stacks.fleetstate import FleetState, InstanceRecord, StateFiles
from stacks.history import HistoryEmptyError


def test_health_check_request_is_one_grpc_health_check_call() -> None:
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
    )

    events = server.receive_data(haproxy.health_check_request())

    request = next(e for e in events if isinstance(e, h2.events.RequestReceived))
    data = next(e for e in events if isinstance(e, h2.events.DataReceived))
    headers = dict(request.headers)
    assert headers[":path"] == "/grpc.health.v1.Health/Check"
    assert headers["content-type"] == "application/grpc"
    assert data.data == b"\x00\x00\x00\x00\x00"  # an empty HealthCheckRequest
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_expected_bytes_are_the_grpc_message_of_a_serving_answer() -> None:
    message = health_pb2.HealthCheckResponse(
        status=health_pb2.HealthCheckResponse.SERVING
    ).SerializeToString()

    framed = b"\x00" + len(message).to_bytes(4, "big") + message

    assert framed.hex() == haproxy.SERVING_MESSAGE


def test_haproxy_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    balancer = haproxy.Balancer(tmp_path, "127.0.0.1:50099", 4)
    balancer.config.write_text(haproxy.render(balancer))

    checked = subprocess.run(
        [shutil.which("haproxy") or "haproxy", "-c", "-f", str(balancer.config)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode == 0, checked.stderr
    assert "server-template slot 1-4 " in balancer.config.read_text()


def test_each_local_environment_has_its_own_bridge_subnet_and_port() -> None:
    local, test = localnet.site("local"), localnet.site("localtest")

    assert local != test
    assert len({local.bridge, test.bridge}) == 2
    assert len({local.prefix, test.prefix}) == 2
    assert len({local.listen, test.listen}) == 2
    assert local.listen.startswith("127.0.0.1:")


def test_environment_without_local_section_is_refused_in_one_line() -> None:
    with pytest.raises(localnet.NetworkError) as refused:
        localnet.site("prod")

    assert str(refused.value) == (
        'stacks/params/prod.json has no "local" section:'
        " it is not an environment the local fleet can run"
    )


def test_network_file_gives_the_instance_its_address_on_host0() -> None:
    text = localnet.network_file("10.77.0.12")

    assert "[Match]\nName=host0\n" in text
    assert "Address=10.77.0.12/24\n" in text


def test_free_address_skips_the_ones_in_use() -> None:
    site = localnet.Site("calcfleet9", "10.77.9", "127.0.0.1:1")

    assert localnet.free_address(site, ["10.77.9.10", "10.77.9.11"]) == "10.77.9.12"


def test_state_survives_a_round_trip_through_its_file(tmp_path: Path) -> None:
    files = StateFiles(tmp_path, "localtest")
    record = InstanceRecord(
        "i-0123456789ab", "img-1", "local-a", "10.77.1.10", 2, 100, 101, "/w", "t"
    )
    state = FleetState("localtest", "img-1", [record], keeper=7)

    files.save(state)

    assert files.load() == state
    assert state.free_slot(4) == 1
    assert record.endpoint == "10.77.1.10:50051"


def test_history_has_the_shape_of_the_ssm_records(tmp_path: Path) -> None:
    files = StateFiles(tmp_path, "localtest")

    files.record("img-2", "img-1")
    files.record("img-3", "img-2")

    assert [(r.image, r.previous) for r in files.releases()] == [
        ("img-2", "img-1"),
        ("img-3", "img-2"),
    ]
    assert files.previous_image() == "img-2"
    assert all(r.released_at and r.by for r in files.releases())


def test_rollback_without_history_says_there_is_nothing_to_roll_back_to(
    tmp_path: Path,
) -> None:
    files = StateFiles(tmp_path, "localtest")

    with pytest.raises(HistoryEmptyError) as empty:
        files.previous_image()

    assert str(empty.value) == (
        "no release recorded for the localtest fleet on this machine"
        f" ({files.history}): nothing to roll back to"
    )
