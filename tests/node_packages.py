"""The npm packages a test needs, installed from the lock file (as `.ci/run` does) when missing."""

import shutil
import subprocess
from pathlib import Path

INSTALL_SECONDS = 300


def npm_ci(directory: Path) -> Path:
    """`npm ci` in `directory` unless its node_modules already matches the lock; returns .bin."""
    lock = directory / "package-lock.json"
    installed = directory / "node_modules" / ".package-lock.json"
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed (Node.js 20 or later)"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            check=True,
            capture_output=True,
            timeout=INSTALL_SECONDS,
        )
    return directory / "node_modules" / ".bin"


def after_npm_ci(command: str, directory: Path) -> str:
    """A documented `npm ci && ...` line, its install done as `npm_ci` does it: what remains.

    `npm ci` itself would delete node_modules under the other tests that use it.
    """
    if command.startswith("npm ci && "):
        npm_ci(directory)
        return command.removeprefix("npm ci && ")
    return command
