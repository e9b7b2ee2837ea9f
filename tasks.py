"""Developer and operator tasks; `invoke --list` lists them with their help."""

from __future__ import annotations

import logging
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke import Context, Exit, task

from calcfleet.errors import CalcfleetError
from image import bake as bakes
from stacks import aws, localfleet, localrelease, stack
from stacks import release as releases

ROOT = Path(__file__).resolve().parent
PYTHON = sys.executable


def _project_settings() -> dict[str, Any]:
    """The [tool.calcfleet] table of pyproject.toml: target, state directory."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        settings: dict[str, Any] = tomllib.load(file)["tool"]["calcfleet"]
    return settings


# --- the main job and the tests -------------------------------------------


@task
def demo(c: Context) -> None:
    """The main job: bake or reuse the image, bring the local fleet up, calculate.

    Calculations and a distributed job go through the fleet's load balancer;
    the fleet keeps running afterwards (`invoke down` stops it).
    """
    from calcfleet.demo import show, show_job

    bake(c)
    logging.getLogger().setLevel(logging.WARNING)  # the fleet's own lines suffice
    local = _local_fleet(None)
    image = _local_command(local.current_image)
    serving = _local_command(lambda: localfleet.up(local, image)).image
    if serving != image:
        _say(f"The running fleet serves {serving}: `./dev release --ami {image}`")
    for line in _local_command(lambda: localfleet.status(local)):
        _say(line)
    _say("")
    show(local.site.listen)
    # Instances reread the registry of their peers every 2 s
    # (discovery.refresh_seconds); a job right after boot would run alone.
    time.sleep(3)
    show_job(local.site.listen)
    _say(
        "\nThe fleet keeps running: `./dev status` shows it, `./dev load` loads it,"
        " `./dev down` takes it down."
    )


@task(
    help={
        "quick": "only the fast tests (no image, fleet or slow ones)",
        "k": "only tests whose names match this pytest -k expression",
    }
)
def test(c: Context, quick: bool = False, k: str = "") -> None:
    """Check lint and types, then run the test suite (all of it, as CI does)."""
    lint(c)
    arguments = ["-m", "'not slow and not image and not fleet'"] if quick else []
    if k:
        arguments += ["-k", f"'{k}'"]
    c.run(f"{PYTHON} -m pytest {' '.join(arguments)}", echo=True, pty=False)


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


@task(
    help={
        "target": "local or aws (default: [tool.calcfleet] target)",
        "force": "bake again even if an image of the same inputs exists",
        "overlay": "directory laid over the image root after provisioning (tests)",
        "region": "AWS region (default: AWS_DEFAULT_REGION or the profile's)",
    }
)
def bake(
    c: Context,
    target: str | None = None,
    force: bool = False,
    overlay: str | None = None,
    region: str | None = None,
) -> None:
    """Bake the server image with Packer; tests/image/ must pass before it is kept."""
    chosen = _fleet_target(target)
    options = bakes.BakeOptions(
        target=chosen,
        state_dir=ROOT / _project_settings()["state_dir"],
        force=force,
        overlay=Path(overlay).resolve() if overlay else None,
    )
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        result = bakes.bake(options, aws=_aws(region) if chosen == "aws" else None)
    except CalcfleetError as error:
        raise Exit(str(error), 1) from None
    except KeyboardInterrupt:
        raise Exit("interrupted: no image was kept", 130) from None
    done = "inputs unchanged, reused" if result.reused else "baked and verified"
    _say(f"image {result.image_id} - {done} in {result.seconds:.1f}s")


# --- the stacks and releases (stacks/) -------------------------------------

# The fleet's verbs take --target like the image's: "aws" drives CloudFormation
# (stacks/), "local" the local fleet. A release of an image id "ami-..." is an
# aws release whatever the default target.


def _fleet_target(target: str | None, image_id: str | None = None) -> str:
    if target is None and image_id and image_id.startswith("ami-"):
        return "aws"
    chosen = target or str(_project_settings()["target"])
    if chosen not in ("aws", "local"):
        raise Exit(f"unknown target {chosen!r}: use aws or local", 2)
    return chosen


def _local_fleet(env: str | None) -> Any:
    """The local fleet of ENV (default "local"), its lines printed as they come."""
    from stacks.fleet import Fleet

    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    state_dir = ROOT / _project_settings()["state_dir"]
    return _local_command(lambda: Fleet(state_dir, env or "local", _say))


def _local_command(run: Callable[[], Any]) -> Any:
    """Run a local fleet command; known failures become one line and exit 1."""
    return _command(run, "interrupted: see `invoke status` for what the fleet holds")


def _command(run: Callable[[], Any], interrupted: str) -> Any:
    """Known failures become one line and exit 1; Ctrl-C says what goes on."""
    try:
        return run()
    except CalcfleetError as error:
        raise Exit(str(error), 1) from None
    except KeyboardInterrupt:
        raise Exit(interrupted, 130) from None


def _aws(region: str | None) -> aws.Aws:
    aws.quiet_botocore()
    return aws.Aws(aws.session(region=region))


def _say(line: str) -> None:
    print(line, flush=True)


def _stack_command(run: Callable[[], Any]) -> Any:
    """Run a stack command; known failures become one line and exit 1."""
    return _command(run, "interrupted: CloudFormation carries on; see `invoke status`")


_FLEET_HELP = {
    "target": "aws or local (default: [tool.calcfleet] target)",
    "env": "environment: stacks/params/ENV.json (default prod; local on local)",
    "region": "AWS region (default: AWS_DEFAULT_REGION or the profile's)",
}


@task(
    help={
        **_FLEET_HELP,
        "ami": "image of the fleet (required to create it)",
        "certificate": "ACM certificate ARN of the HTTPS listener",
    }
)
def up(  # noqa: PLR0917 - invoke turns each parameter into an option
    c: Context,
    target: str | None = None,
    env: str | None = None,
    ami: str | None = None,
    certificate: str | None = None,
    region: str | None = None,
) -> None:
    """Create or update the stacks (aws), or boot the local fleet (local)."""
    if _fleet_target(target, ami) == "local":
        local = _local_fleet(env)
        _local_command(lambda: localfleet.up(local, ami))
        for line in _local_command(lambda: localfleet.status(local)):
            _say(line)
        return
    fleet = _stack_command(
        lambda: stack.up(
            _aws(region), env or "prod", ami, _say, certificate_arn=certificate
        )
    )
    _say(f"{fleet['StackName']}: {fleet['StackStatus']}")


@task(help={**_FLEET_HELP, "yes": "delete without asking"})
def down(
    c: Context,
    target: str | None = None,
    env: str | None = None,
    yes: bool = False,
    region: str | None = None,
) -> None:
    """Delete the stacks (aws, after a confirmation) or stop the local fleet."""
    if _fleet_target(target) == "local":
        # Nothing of a local fleet outlives it but images and history, which
        # stay: no question asked.
        local = _local_fleet(env)
        _local_command(lambda: localfleet.down(local))
        return
    env = env or "prod"
    if not yes:
        names = f"calcfleet-{env}-fleet and calcfleet-{env}-network"
        answer = input(f"Delete {names}? Type {env!r} to confirm: ")
        if answer.strip() != env:
            raise Exit("not deleted", 1)
    _stack_command(lambda: stack.down(_aws(region), env, _say))


def _refuse_local_dry_run(dry_run: bool) -> None:
    # A change set is CloudFormation's; the local fleet has nothing to preview.
    if dry_run:
        raise Exit("--dry-run previews a CloudFormation change set: aws only", 2)


def _finish(result: Any) -> None:
    print(result.message, flush=True)
    if result.outcome != 0:
        raise Exit(code=int(result.outcome))


@task(
    help={
        **_FLEET_HELP,
        "ami": "the verified image to release",
        "dry-run": "create and print the change set, then stop",
    }
)
def release(  # noqa: PLR0917 - invoke turns each parameter into an option
    c: Context,
    ami: str,
    target: str | None = None,
    env: str | None = None,
    dry_run: bool = False,
    region: str | None = None,
) -> None:
    """Roll the fleet onto a verified image; rolled back on failure.

    Exit codes: 0 released, already released or dry run; 1 preflight failed,
    nothing changed; 2 usage error; 3 rolled back, the previous image still
    serves; 4 rollback failed, the stack needs `aws cloudformation
    continue-update-rollback`; 130 interrupted, CloudFormation carries on.
    See docs/releases.md.
    """
    if _fleet_target(target, ami) == "local":
        _refuse_local_dry_run(dry_run)
        local = _local_fleet(env)
        _finish(_local_command(lambda: localrelease.release(local, ami)))
        return
    _finish(
        _stack_command(
            lambda: releases.release(
                _aws(region), env or "prod", ami, _say, dry_run=dry_run
            )
        )
    )


@task(help={**_FLEET_HELP, "dry-run": "create and print the change set, then stop"})
def rollback(
    c: Context,
    target: str | None = None,
    env: str | None = None,
    dry_run: bool = False,
    region: str | None = None,
) -> None:
    """Release the image that served before the last release (exit codes as release)."""
    if _fleet_target(target) == "local":
        _refuse_local_dry_run(dry_run)
        local = _local_fleet(env)
        _finish(_local_command(lambda: localrelease.rollback(local)))
        return
    _finish(
        _stack_command(
            lambda: releases.rollback(
                _aws(region), env or "prod", _say, dry_run=dry_run
            )
        )
    )


@task(help=_FLEET_HELP)
def status(
    c: Context,
    target: str | None = None,
    env: str | None = None,
    region: str | None = None,
) -> None:
    """Show the fleet: the image in service, the instances and their health."""
    if _fleet_target(target) == "local":
        local = _local_fleet(env)
        for line in _local_command(lambda: localfleet.status(local)):
            _say(line)
        return
    _stack_command(lambda: stack.status(_aws(region), env or "prod", _say))


# --- benchmarks --------------------------------------------------------------


@task(
    help={
        "target": "HOST:PORT to load (default: the local fleet's balancer)",
        "env": "the local fleet's environment (default local)",
        "seconds": "how long each concurrent run lasts",
    }
)
def load(
    c: Context, target: str | None = None, env: str | None = None, seconds: float = 10.0
) -> None:
    """Classic load through the balancer: 1,000 sequential, 100 and 1,000 concurrent."""
    import asyncio

    from calcfleet import load as loads
    from stacks import localnet

    address = target or _local_command(lambda: localnet.site(env or "local").listen)
    _say(f"load on {address} ({loads.TABLE_EXPRESSION}, exact value checked):")
    for line in loads.table(asyncio.run(loads.classic(address, seconds))):
        _say(line)


@task(
    help={
        "seconds": "how long the concurrent clients run against each server",
        "clients": "how many concurrent clients",
        "rounds": "alternating rounds per server; the best of each is shown",
        "jobs": "also time one CPU-heavy job on one instance, then on two",
    }
)
def bench(
    c: Context,
    seconds: float = 5.0,
    clients: int = 100,
    rounds: int = 3,
    jobs: bool = False,
) -> None:
    """Measure calcfleet against a bare gRPC server in one run and print the ratios."""
    c.run(
        f"{PYTHON} -m calcfleet.bench --seconds {seconds} --clients {clients} "
        f"--rounds {rounds}",
        pty=False,
    )
    if jobs:
        c.run(f"{PYTHON} -m calcfleet.jobbench", pty=False)
