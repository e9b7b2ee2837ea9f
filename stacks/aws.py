"""Every call calcfleet makes to AWS, through one boto3 session passed in."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions

from calcfleet.errors import CalcfleetError

log = logging.getLogger("stacks")

Record = dict[str, Any]


class AwsConfigurationError(CalcfleetError):
    """Credentials or region are missing: nothing was asked of AWS."""


class AwsCallError(CalcfleetError):
    """AWS refused or failed a call; the message is AWS's own, on one line."""


class AwsUnreachableError(CalcfleetError):
    """The AWS endpoint could not be reached at all."""


def quiet_botocore(debug: bool = False) -> None:
    """botocore and boto3 log every request at DEBUG; keep them out unless asked."""
    level = logging.DEBUG if debug else logging.WARNING
    for name in ("botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(level)


def session(region: str | None = None, profile: str | None = None) -> boto3.Session:
    """A session from the usual sources: AWS_PROFILE, ~/.aws, environment, SSO."""
    return boto3.Session(region_name=region, profile_name=profile)


@contextlib.contextmanager
def _calling(operation: str) -> Iterator[None]:
    """Turn botocore's failures into one-line errors the user can act on."""
    try:
        yield
    except botocore.exceptions.NoCredentialsError as error:
        raise AwsConfigurationError(_NO_CREDENTIALS) from error
    except botocore.exceptions.EndpointConnectionError as error:
        raise AwsUnreachableError(f"{operation}: {error}") from error
    except botocore.exceptions.ClientError as error:
        detail = error.response.get("Error", {})
        message = f"{detail.get('Code', 'Error')}: {detail.get('Message', '')}"
        raise AwsCallError(f"{operation} - {message}") from error


_NO_CREDENTIALS = (
    "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and"
    " AWS_SECRET_ACCESS_KEY) and AWS_DEFAULT_REGION, or run `aws configure`"
)


def _is_missing_stack(error: botocore.exceptions.ClientError) -> bool:
    message = str(error.response.get("Error", {}).get("Message", ""))
    return "does not exist" in message


def _is_no_update(error: botocore.exceptions.ClientError) -> bool:
    message = str(error.response.get("Error", {}).get("Message", ""))
    return "No updates are to be performed" in message


class Aws:
    """CloudFormation, EC2, Auto Scaling, ELBv2 and SSM, as calcfleet uses them."""

    def __init__(self, session: boto3.Session) -> None:
        self.session = session
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service)  # type: ignore[call-overload]
        return self._clients[service]

    def check_configured(self) -> None:
        """Fail at once, with no network call, if credentials or region are missing."""
        if self.session.get_credentials() is None:
            raise AwsConfigurationError(_NO_CREDENTIALS)
        if not self.session.region_name:
            raise AwsConfigurationError(
                "no AWS region: set AWS_DEFAULT_REGION or pass --region"
            )

    # --- stacks --------------------------------------------------------------

    def stack(self, name: str) -> Record | None:
        """The stack's description, or None when there is no such stack."""
        try:
            stacks = self._client("cloudformation").describe_stacks(StackName=name)
        except botocore.exceptions.ClientError as error:
            if _is_missing_stack(error):
                return None
            with _calling(f"describe stack {name}"):
                raise
        found: Record = stacks["Stacks"][0]
        for parameter in found.get("Parameters", []):
            parameter["ParameterValue"] = _list_value(
                parameter.get("ParameterValue", "")
            )
        return found

    def create_stack(self, name: str, body: str, parameters: dict[str, str]) -> None:
        with _calling(f"create stack {name}"):
            self._client("cloudformation").create_stack(
                StackName=name,
                TemplateBody=body,
                Parameters=_parameter_list(parameters),
                Capabilities=["CAPABILITY_IAM"],
                Tags=[{"Key": "calcfleet:stack", "Value": name}],
            )
        log.info("%s - create requested", name)

    def update_stack(self, name: str, body: str, parameters: dict[str, str]) -> bool:
        """Update a stack; False when CloudFormation says nothing would change."""
        try:
            self._client("cloudformation").update_stack(
                StackName=name,
                TemplateBody=body,
                Parameters=_parameter_list(parameters),
                Capabilities=["CAPABILITY_IAM"],
            )
        except botocore.exceptions.ClientError as error:
            if _is_no_update(error):
                return False
            with _calling(f"update stack {name}"):
                raise
        log.info("%s - update requested", name)
        return True

    def delete_stack(self, name: str) -> None:
        with _calling(f"delete stack {name}"):
            self._client("cloudformation").delete_stack(StackName=name)
        log.info("%s - delete requested", name)

    def stack_events(self, name: str, stop_at: str | None = None) -> list[Record]:
        """Events of a stack, newest first, paging back until the event stop_at."""
        client = self._client("cloudformation")
        events: list[Record] = []
        token: str | None = None
        with _calling(f"describe events of {name}"):
            while True:
                page = client.describe_stack_events(
                    StackName=name, **({"NextToken": token} if token else {})
                )
                for event in page["StackEvents"]:
                    if event["EventId"] == stop_at:
                        return events
                    events.append(event)
                token = page.get("NextToken")
                if not token:
                    return events

    def continue_update_rollback(self, name: str) -> None:
        with _calling(f"continue update rollback of {name}"):
            self._client("cloudformation").continue_update_rollback(StackName=name)

    # --- change sets -----------------------------------------------------------

    def template_body(self, stack: str) -> str:
        """The template the stack runs now, as it was submitted."""
        with _calling(f"get template of {stack}"):
            found = self._client("cloudformation").get_template(
                StackName=stack, TemplateStage="Original"
            )
        body = found["TemplateBody"]
        # boto3 parses a JSON template into a dict; YAML stays text.
        return body if isinstance(body, str) else json.dumps(body)

    def create_change_set(
        self,
        stack: str,
        change_set: str,
        body: str,
        parameters: dict[str, str],
        *,
        rollback_alarms: list[str],
        monitoring_minutes: int,
    ) -> str:
        """A change set of the stack to BODY and PARAMETERS; returns its id."""
        triggers = [
            {"Arn": arn, "Type": "AWS::CloudWatch::Alarm"} for arn in rollback_alarms
        ]
        with _calling(f"create change set for {stack}"):
            created = self._client("cloudformation").create_change_set(
                StackName=stack,
                ChangeSetName=change_set,
                ChangeSetType="UPDATE",
                TemplateBody=body,
                Parameters=_parameter_list(parameters),
                Capabilities=["CAPABILITY_IAM"],
                RollbackConfiguration={
                    "RollbackTriggers": triggers,
                    "MonitoringTimeInMinutes": monitoring_minutes,
                },
            )
        change_set_id: str = created["Id"]
        return change_set_id

    def change_set(self, change_set_id: str, poll_seconds: float = 2.0) -> Record:
        """The change set once CloudFormation has finished computing it."""
        client = self._client("cloudformation")
        with _calling("describe change set"):
            while True:
                found: Record = client.describe_change_set(ChangeSetName=change_set_id)
                if found["Status"] not in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
                    return found
                time.sleep(poll_seconds)

    def execute_change_set(self, change_set_id: str) -> None:
        with _calling("execute change set"):
            self._client("cloudformation").execute_change_set(
                ChangeSetName=change_set_id
            )

    def delete_change_set(self, change_set_id: str) -> None:
        with _calling("delete change set"):
            self._client("cloudformation").delete_change_set(
                ChangeSetName=change_set_id
            )

    # --- images, instances, targets ---------------------------------------------

    def image(self, image_id: str) -> Record | None:
        """The image's description, or None when no such image is visible."""
        try:
            images = self._client("ec2").describe_images(ImageIds=[image_id])["Images"]
        except botocore.exceptions.ClientError as error:
            if "InvalidAMIID" in str(error.response.get("Error", {}).get("Code")):
                return None
            with _calling(f"describe image {image_id}"):
                raise
        return images[0] if images else None

    def images_tagged(self, tags: dict[str, str]) -> list[Record]:
        """This account's images carrying every one of the tags, newest first."""
        filters = [
            {"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()
        ]
        with _calling("describe images"):
            images = self._client("ec2").describe_images(
                Owners=["self"], Filters=filters
            )
        found: list[Record] = images["Images"]
        return sorted(
            found, key=lambda image: image.get("CreationDate", ""), reverse=True
        )

    def group_instances(self, group_name: str) -> list[Record]:
        with _calling(f"describe group {group_name}"):
            groups = self._client("autoscaling").describe_auto_scaling_groups(
                AutoScalingGroupNames=[group_name]
            )["AutoScalingGroups"]
        return list(groups[0]["Instances"]) if groups else []

    def instance_images(self, instance_ids: list[str]) -> dict[str, str]:
        """The image each instance was launched from."""
        if not instance_ids:
            return {}
        with _calling("describe instances"):
            pages = self._client("ec2").describe_instances(InstanceIds=instance_ids)
        return {
            instance["InstanceId"]: instance["ImageId"]
            for reservation in pages["Reservations"]
            for instance in reservation["Instances"]
        }

    def target_health(self, target_group_arn: str) -> dict[str, str]:
        """Each registered target's health state (healthy, unhealthy, draining...)."""
        with _calling("describe target health"):
            found = self._client("elbv2").describe_target_health(
                TargetGroupArn=target_group_arn
            )["TargetHealthDescriptions"]
        return {t["Target"]["Id"]: t["TargetHealth"]["State"] for t in found}

    # --- release history ---------------------------------------------------------

    def put_parameter(self, name: str, value: str, description: str) -> None:
        with _calling(f"put parameter {name}"):
            self._client("ssm").put_parameter(
                Name=name,
                Value=value,
                Description=description,
                Type="String",
                Overwrite=True,
            )

    def parameter_history(self, name: str) -> list[Record]:
        """Every stored version of a parameter, oldest first; empty when it is new."""
        client = self._client("ssm")
        versions: list[Record] = []
        token: str | None = None
        try:
            while True:
                page = client.get_parameter_history(
                    Name=name, **({"NextToken": token} if token else {})
                )
                versions.extend(page["Parameters"])
                token = page.get("NextToken")
                if not token:
                    return versions
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return []
            with _calling(f"read history {name}"):
                raise
        return versions


def _list_value(value: str) -> str:
    """A List parameter's value in AWS's form, "a,b"; moto reports "['a', 'b']"."""
    if value.startswith("[") and value.endswith("]"):
        return ",".join(item.strip(" '\"") for item in value[1:-1].split(","))
    return value


def _parameter_list(parameters: dict[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
