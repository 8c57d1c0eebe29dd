"""Debian's Chromium on /docs of a live `backoffice serve` with the demo data.

Shared by the browser test and by `python -m tests.swagger_screenshot` (the picture of /docs):
the server binds 127.0.0.1 and stops itself (`timeout`), and the browser is the one Debian
installs, driven by npm's playwright-core from the lock file, never a downloaded build.
"""

import contextlib
import json
import shutil
import subprocess
from collections.abc import Generator
from pathlib import Path
from typing import Any

from settings import ROOT
from tests.backoffice_process import BACKOFFICE, BackofficeServer
from tests.node_packages import npm_ci

SCRIPT = Path(__file__).with_name("swagger_ui_browser.js")
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_SECONDS = 240
SERVER_SECONDS = 300


def browser_tools() -> tuple[str, Path]:
    """Node and Chromium, or an assertion that says how to install them."""
    node = shutil.which("node")
    assert node is not None, "the browser test needs Node.js: apt-get install nodejs"
    assert CHROMIUM.exists(), (
        f"the browser test needs Debian's Chromium at {CHROMIUM}: "
        "apt-get update && apt-get install -y chromium (.ci/run does)"
    )
    npm_ci(ROOT)
    return node, CHROMIUM


@contextlib.contextmanager
def demo_server(environment: dict[str, str], directory: Path) -> Generator[BackofficeServer]:
    """`backoffice serve` on a fresh SQLite file, seeded with the demo data."""
    environment = {"APP_SQLITE_PATH": str(directory / "backoffice.db"), **environment}
    log = directory / "server.log"
    with BackofficeServer(environment, log, lifetime_seconds=SERVER_SECONDS) as server:
        subprocess.run(
            [BACKOFFICE, "seed"],
            cwd=ROOT,
            env=server.environment,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield server


def run_browser(task: dict[str, Any]) -> dict[str, Any]:
    node, chromium = browser_tools()
    run = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps({"chromium": str(chromium), **task}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=BROWSER_SECONDS,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)
