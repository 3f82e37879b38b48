"""mypy over spaktok from a checkout in any folder: `.venv/bin/python bin/typecheck.py [mypy options]`.

The checkout's root is the package spaktok (pyproject.toml: package-dir "." -> spaktok), and mypy
names modules after folders, so it names them spaktok.* only when it sees the checkout as a folder
called spaktok. This makes one: a temporary directory holding a symlink `spaktok` -> the checkout,
where mypy runs with the checkout's pyproject.toml ([tool.mypy]: strict, which packages). mypy is
this Python's (the venv's), so are the third-party packages it reads. Output paths are printed
relative to the checkout, and the cache is the checkout's .mypy_cache (MYPY_CACHE_DIR overrides it).

Extra arguments go to mypy; name modules (`-p spaktok.infra`, `-m spaktok.settings`), not paths:
mypy runs in the temporary directory. docs/decisions.md "Tooling from any folder name".
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "spaktok" + os.sep


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault("MYPY_CACHE_DIR", str(ROOT / ".mypy_cache"))
    with tempfile.TemporaryDirectory(prefix="spaktok-typecheck-") as tmp:
        (Path(tmp) / "spaktok").symlink_to(ROOT, target_is_directory=True)
        config = os.path.join("spaktok", "pyproject.toml")
        command = [sys.executable, "-m", "mypy", "--config-file", config, *argv]
        with subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.PIPE, text=True) as mypy:
            assert mypy.stdout is not None
            for line in mypy.stdout:
                sys.stdout.write(line.removeprefix(PREFIX))
                sys.stdout.flush()
        return mypy.returncode


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # `bin/typecheck.py | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
