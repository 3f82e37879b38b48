"""The type check and the linter pass, whatever the checkout's folder is called (docs/decisions.md
"Tooling from any folder name"). Each runs as the developer would, from the checkout's root, with
this Python's mypy and ruff, which the README's test command installs (`pip install -e '.[dev]'`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_mypy_strict_passes() -> None:
    result = _run("bin/typecheck.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_passes() -> None:
    result = _run("-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
