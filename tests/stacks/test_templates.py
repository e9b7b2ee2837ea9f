"""What the templates promise beyond what cfn-lint checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks import rules, template

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = sorted(p.stem for p in template.PARAMS_DIR.glob("*.json"))


@pytest.fixture(scope="module")
def fleet() -> dict[str, Any]:
    return template.load("fleet")


def _of_type(document: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in document["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_passes_on_every_template() -> None:
    templates = sorted(str(p) for p in template.TEMPLATE_DIR.glob("*.yaml"))
    linted = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), *templates],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert len(templates) == 2
    assert linted.returncode == 0, linted.stdout


def test_listener_in_front_of_the_grpc_target_group_is_https(
    fleet: dict[str, Any],
) -> None:
    groups = _of_type(fleet, "AWS::ElasticLoadBalancingV2::TargetGroup")
    grpc = [
        name
        for name, g in groups.items()
        if g["Properties"]["ProtocolVersion"] == "GRPC"
    ]
    listeners = _of_type(fleet, "AWS::ElasticLoadBalancingV2::Listener").values()
    fronting = [
        listener["Properties"]
        for listener in listeners
        if any(
            a.get("TargetGroupArn") == {"Ref": grpc[0]}
            for a in listener["Properties"]["DefaultActions"]
        )
    ]
    assert grpc == ["TargetGroup"]
    assert [(p["Protocol"], p["Port"]) for p in fronting] == [("HTTPS", 443)]


def test_health_check_calls_grpc_health_and_expects_status_ok(
    fleet: dict[str, Any],
) -> None:
    group = fleet["Resources"]["TargetGroup"]["Properties"]
    attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    assert group["HealthCheckPath"] == "/grpc.health.v1.Health/Check"
    assert group["Matcher"] == {"GrpcCode": "0"}
    assert int(attributes["deregistration_delay.timeout_seconds"]) < 300


def test_group_follows_the_latest_launch_template_version(
    fleet: dict[str, Any],
) -> None:
    launch = fleet["Resources"]["AutoScalingGroup"]["Properties"]["LaunchTemplate"]
    assert launch["Version"] == {
        "Fn::GetAtt": ["LaunchTemplate", "LatestVersionNumber"]
    }


def test_rolling_update_waits_on_signals(fleet: dict[str, Any]) -> None:
    rolling = fleet["Resources"]["AutoScalingGroup"]["UpdatePolicy"][
        "AutoScalingRollingUpdate"
    ]
    assert rolling["WaitOnResourceSignals"] is True
    assert {"HealthCheck", "ReplaceUnhealthy", "AZRebalance"} <= set(
        rolling["SuspendProcesses"]
    )


def test_instances_require_imdsv2_and_encrypt_their_volume(
    fleet: dict[str, Any],
) -> None:
    data = fleet["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert [m["Ebs"]["Encrypted"] for m in data["BlockDeviceMappings"]] == [True]
    assert data["ImageId"] == {"Ref": "ImageId"}


def test_internet_reaches_the_load_balancer_on_443_only(fleet: dict[str, Any]) -> None:
    ingress = fleet["Resources"]["LoadBalancerSecurityGroup"]["Properties"][
        "SecurityGroupIngress"
    ]
    assert [(r["FromPort"], r["ToPort"], r["CidrIp"]) for r in ingress] == [
        (443, 443, "0.0.0.0/0")
    ]


def test_instances_accept_the_service_port_from_the_balancer_and_peers_only(
    fleet: dict[str, Any],
) -> None:
    rules_in = fleet["Resources"]["InstanceSecurityGroup"]["Properties"][
        "SecurityGroupIngress"
    ]
    peers = fleet["Resources"]["InstanceFromPeersIngress"]["Properties"]
    assert [r["SourceSecurityGroupId"] for r in rules_in] == [
        {"Ref": "LoadBalancerSecurityGroup"}
    ]
    assert peers["SourceSecurityGroupId"] == {"Ref": "InstanceSecurityGroup"}
    assert all("CidrIp" not in r for r in rules_in)


def test_user_data_writes_the_signal_contract(fleet: dict[str, Any]) -> None:
    data = fleet["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    script = data["UserData"]["Fn::Base64"]["Fn::Sub"]
    assert (
        "STACK_NAME=${AWS::StackName}\nRESOURCE=AutoScalingGroup\nREGION=${AWS::Region}\n"
        "HEALTH_WAIT_SECONDS=${HealthWaitSeconds}\n" in script
    )
    assert "CALCFLEET_DISCOVERY_CLOUDMAP_SERVICE_ID=${CloudMapService}" in script


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_environment_has_rules_a_rolling_update_can_follow(
    environment: str,
) -> None:
    found = rules.fleet_rules(environment)
    assert found.min_instances_in_service < found.max_size
    assert 0 < found.pause_seconds <= 3600
    assert found.min_size <= found.desired_capacity <= found.max_size


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_an_instance_gives_up_on_its_health_before_cloudformation_does(
    environment: str, fleet: dict[str, Any]
) -> None:
    # The signal step sends FAILURE after HealthWaitSeconds; sent after
    # PauseTime, CloudFormation would already have timed the instance out.
    values = template.parameters(environment)["fleet"]
    declared = fleet["Parameters"]
    wait = int(
        values.get("HealthWaitSeconds", declared["HealthWaitSeconds"]["Default"])
    )
    pause = rules.duration_seconds(
        values.get("PauseTime", declared["PauseTime"]["Default"])
    )
    # A tenth of the pause is left for the signal to reach CloudFormation.
    assert wait <= pause * 0.9, f"{environment}: wait {wait} s, pause {pause} s"
