from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PADDLE_FIXTURES = ROOT / "fixtures" / "paddle"


def paddle_fixtures() -> list[str]:
    return sorted(p.name for p in PADDLE_FIXTURES.iterdir() if (p / "reference.npz").is_file())


@pytest.fixture
def fixture_copy(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A writable copy of a Paddle fixture directory."""

    def copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(PADDLE_FIXTURES / name, dst)
        return dst

    return copy
