"""Developer and operator tasks; `invoke --list` lists them with their help."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

from invoke import Context, task

ROOT = Path(__file__).resolve().parent
PYTHON = sys.executable


def _project_settings() -> dict[str, Any]:
    """The [tool.calcfleet] table of pyproject.toml: target, state directory."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        settings: dict[str, Any] = tomllib.load(file)["tool"]["calcfleet"]
    return settings


# --- the service -----------------------------------------------------------


@task
def protos(c: Context) -> None:
    """Regenerate the Python modules in service/calcfleet/v1 from protos/."""
    c.run(f"{PYTHON} protos/generate.py", echo=True)


@task
def lint(c: Context) -> None:
    """Check formatting, lint and types (ruff, mypy)."""
    c.run(f"{PYTHON} -m ruff format --check .", echo=True)
    c.run(f"{PYTHON} -m ruff check .", echo=True)
    c.run(f"{PYTHON} -m mypy", echo=True)


@task
def fmt(c: Context) -> None:
    """Format the code and apply safe lint fixes."""
    c.run(f"{PYTHON} -m ruff format .", echo=True)
    c.run(f"{PYTHON} -m ruff check --fix .", echo=True)


# --- the image (image/) ----------------------------------------------------

# --- the stacks and releases (stacks/) -------------------------------------
