"""Every AWS Cloud Map call calcfleet makes, through a client passed in.

See https://docs.aws.amazon.com/cloud-map/latest/api/API_RegisterInstance.html:
RegisterInstance and DeregisterInstance are asynchronous; they return an
operation id whose GetOperation status turns SUCCESS or FAIL later.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import boto3

from calcfleet.errors import CalcfleetError

log = logging.getLogger(__name__)

OPERATION_TIMEOUT = 60.0
POLL_SECONDS = 1.0


class CloudMapOperationError(CalcfleetError):
    """A Cloud Map registration or deregistration failed or never finished."""


def session(region: str) -> boto3.session.Session:
    return boto3.session.Session(region_name=region or None)


def client(session: boto3.session.Session, endpoint_url: str = "") -> Any:
    return session.client("servicediscovery", endpoint_url=endpoint_url or None)


def instance_id(address: str) -> str:
    """A Cloud Map instance id from an address (ids allow letters, digits, _-.:)."""
    return "calcfleet-" + address.replace(":", "-")


def register(client: Any, service_id: str, address: str) -> None:
    """Register host:port as an instance of the service and wait until it holds."""
    host, port = address.rsplit(":", 1)
    response = client.register_instance(
        ServiceId=service_id,
        InstanceId=instance_id(address),
        Attributes={"AWS_INSTANCE_IPV4": host, "AWS_INSTANCE_PORT": port},
    )
    _wait(client, response["OperationId"], f"register {address}")
    log.info("cloudmap - registered %s in %s", address, service_id)


def deregister(client: Any, service_id: str, instance: str) -> None:
    response = client.deregister_instance(ServiceId=service_id, InstanceId=instance)
    _wait(client, response["OperationId"], f"deregister {instance}")
    log.info("cloudmap - deregistered %s from %s", instance, service_id)


def addresses(client: Any, service_id: str) -> list[str]:
    """host:port of every instance registered in the service."""
    found = []
    for page in client.get_paginator("list_instances").paginate(ServiceId=service_id):
        for instance in page["Instances"]:
            attributes = instance.get("Attributes", {})
            if "AWS_INSTANCE_IPV4" in attributes and "AWS_INSTANCE_PORT" in attributes:
                found.append(
                    f"{attributes['AWS_INSTANCE_IPV4']}:{attributes['AWS_INSTANCE_PORT']}"
                )
    return sorted(found)


def _wait(client: Any, operation_id: str, what: str) -> None:
    give_up = time.monotonic() + OPERATION_TIMEOUT
    while True:
        operation = client.get_operation(OperationId=operation_id)["Operation"]
        status = operation["Status"]
        if status == "SUCCESS":
            return
        if status == "FAIL":
            reason = operation.get("ErrorMessage", "no reason given")
            raise CloudMapOperationError(f"cloudmap - {what} failed: {reason}")
        if time.monotonic() > give_up:
            raise CloudMapOperationError(
                f"cloudmap - {what} still {status} after {OPERATION_TIMEOUT:.0f} s"
            )
        time.sleep(POLL_SECONDS)
