"""One booted local fleet (localtest) shared by the fleet tests, in order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from image import store
from stacks.fleet import Fleet
from stacks.fleetstate import FleetState

from fleetlab import (
    ENVIRONMENT,
    IMAGE_CONFIG,
    STATE_DIR,
    WARMUP_SECONDS,
    Images,
    Machine,
    bake_local,
    broken_copy,
    invoke,
    machine,
    wait_until_whole,
    with_setting,
)


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    # In the image's own configuration: the fleet writes calcfleet.env per
    # instance, as the stack's UserData does on AWS.
    overlay = tmp_path_factory.mktemp("warm") / "overlay"
    config = overlay / "etc" / "calcfleet" / "calcfleet.toml"
    config.parent.mkdir(parents=True)
    config.write_text(with_setting(IMAGE_CONFIG.read_text(), WARMUP_SECONDS))
    base, warm = bake_local(), bake_local(overlay)
    local = store.ImageStore(STATE_DIR)
    broken = broken_copy(local, base)
    yield Images(base, warm, broken)
    local.discard(broken)


@pytest.fixture(scope="session")
def before_up() -> Machine:
    return machine()


@pytest.fixture(scope="session")
def fleet(images: Images, before_up: Machine) -> Iterator[Fleet]:
    """The localtest fleet, up on the base image for the whole session."""
    started = invoke("up", "--env", ENVIRONMENT, "--ami", images.base)
    assert started.returncode == 0, started.stdout + started.stderr
    yield Fleet(STATE_DIR, ENVIRONMENT, say=lambda line: None)
    invoke("down", "--env", ENVIRONMENT)


@pytest.fixture
def whole(fleet: Fleet) -> FleetState:
    """Each test starts from a whole, healthy fleet."""
    return wait_until_whole(fleet)
