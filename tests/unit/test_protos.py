"""The generated modules in service/calcfleet/v1 match protos/ exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "service" / "calcfleet" / "v1"


def test_generated_modules_are_not_stale(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--out", str(tmp_path)],
        check=True,
    )
    fresh = tmp_path / "calcfleet" / "v1"
    names = sorted(p.name for p in fresh.iterdir() if p.is_file())
    committed = sorted(p.name for p in GENERATED.iterdir() if p.is_file())
    assert names == committed, "run `./dev protos` and commit the result"
    for name in names:
        assert (fresh / name).read_bytes() == (GENERATED / name).read_bytes(), (
            f"service/calcfleet/v1/{name} is stale: run `./dev protos` and commit it"
        )
