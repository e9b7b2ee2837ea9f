"""`invoke bake` of the local image, for real: Packer, debootstrap, nspawn, checks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from image import store

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / ".calcfleet"
TOOLS = ("packer", "debootstrap", "systemd-nspawn", "nsenter")

pytestmark = [pytest.mark.slow, pytest.mark.image]


@pytest.fixture(autouse=True)
def tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root")
    if missing:
        message = f"baking needs {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def invoke_bake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "bake", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def overlay(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "overlay"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def assert_bake_fails_naming(
    result: subprocess.CompletedProcess[str], *checks: str
) -> None:
    """The bake failed on its checks, named them, and kept nothing of its image."""
    output = result.stdout[-4000:]
    assert result.returncode == 1, output
    message = result.stderr.strip()
    assert "\n" not in message, message
    assert message.startswith("image checks failed ("), output + message
    for check in checks:
        assert check in message
    # Other bakes may run beside this one: look for this bake's image only.
    made = set(re.findall(r"(img-[0-9a-f]{17})\.partial", result.stdout))
    assert len(made) == 1, output
    images = store.ImageStore(STATE_DIR)
    image_id = made.pop()
    assert not images.partial(image_id).exists()
    with pytest.raises(store.ImageNotFoundError):
        images.find(image_id)


def test_bake_keeps_a_verified_image_and_reuses_it_when_nothing_changed() -> None:
    first = invoke_bake()
    second = invoke_bake()

    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    print(first.stdout.splitlines()[-1])
    made = re.fullmatch(
        r"image (img-[0-9a-f]{17}) - (baked and verified|inputs unchanged, reused)"
        r" in [\d.]+s",
        first.stdout.splitlines()[-1],
    )
    assert made is not None
    image = store.ImageStore(STATE_DIR).find_verified(made.group(1))
    assert image.rootfs.joinpath("opt/calcfleet/bin/calcfleet").is_file()
    assert image.tags[store.VERSION] == "0.1.0"
    assert set(image.tags) >= {store.COMMIT, store.BASE_IMAGE, store.BUILT_AT}

    assert second.returncode == 0, second.stderr
    reused = re.fullmatch(
        r"image (img-[0-9a-f]{17}) - inputs unchanged, reused in ([\d.]+)s",
        second.stdout.splitlines()[-1],
    )
    assert reused is not None, second.stdout
    assert reused.group(1) == made.group(1)
    assert float(reused.group(2)) < 10


def test_service_that_never_becomes_healthy_fails_the_bake(tmp_path: Path) -> None:
    # READY is sent only once health is SERVING, which an hour of warm-up
    # keeps from happening: the unit stays "activating".
    faulty = overlay(
        tmp_path,
        {"etc/calcfleet/calcfleet.env": "CALCFLEET_SERVER_WARMUP_SECONDS=3600\n"},
    )

    result = invoke_bake("--overlay", str(faulty))

    assert_bake_fails_naming(
        result,
        "test_unit_is_active",
        "test_health_answers_serving",
    )


def test_service_that_exits_at_start_fails_the_bake(tmp_path: Path) -> None:
    faulty = overlay(
        tmp_path, {"etc/calcfleet/calcfleet.env": "CALCFLEET_SERVER_NO_SUCH=1\n"}
    )

    result = invoke_bake("--overlay", str(faulty))

    assert_bake_fails_naming(
        result, "test_unit_is_active", "test_port_listens_on_every_address"
    )


def test_static_unit_without_install_section_fails_the_bake(tmp_path: Path) -> None:
    unit = (ROOT / "image" / "files" / "calcfleet.service").read_text()
    static = unit.split("[Install]")[0]
    faulty = overlay(tmp_path, {"etc/systemd/system/calcfleet.service": static})

    result = invoke_bake("--overlay", str(faulty))

    assert_bake_fails_naming(result, "test_unit_is_enabled", "test_unit_is_active")
