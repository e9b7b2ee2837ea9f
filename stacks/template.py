"""The stack templates and per-environment parameter files, read from stacks/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from calcfleet.errors import CalcfleetError

HERE = Path(__file__).resolve().parent
TEMPLATE_DIR = HERE / "templates"
PARAMS_DIR = HERE / "params"
STACKS = ("network", "fleet")
ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,20}$")


class EnvironmentUnknownError(CalcfleetError):
    """No parameter file for the environment asked for."""


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation's short forms (!Ref X) as their long ones ({Ref: X})."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        # !GetAtt A.B is the short form of Fn::GetAtt: [A, B].
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def body(stack: str) -> str:
    """The template text of one stack ("network" or "fleet"), as sent to AWS."""
    return (TEMPLATE_DIR / f"{stack}.yaml").read_text()


def load(stack: str, template_dir: Path = TEMPLATE_DIR) -> dict[str, Any]:
    """A template as a dictionary, intrinsic functions in their long form."""
    return parse((template_dir / f"{stack}.yaml").read_text())


def parse(body: str) -> dict[str, Any]:
    """A template's text as a dictionary, intrinsic functions in their long form."""
    document: dict[str, Any] = yaml.load(body, Loader=_CloudFormationLoader)  # noqa: S506
    return document


def parameters(
    environment: str, params_dir: Path = PARAMS_DIR
) -> dict[str, dict[str, str]]:
    """An environment's parameter values by stack: {"network": {..}, "fleet": {..}}."""
    path = params_dir / f"{environment}.json"
    if not ENVIRONMENT_NAME.match(environment) or not path.is_file():
        known = ", ".join(sorted(p.stem for p in params_dir.glob("*.json")))
        raise EnvironmentUnknownError(
            f"no environment {environment!r}: {params_dir} has {known}"
        )
    document = json.loads(path.read_text())
    return {
        stack: {k: str(v) for k, v in document.get(stack, {}).items()}
        for stack in STACKS
    }
