"""Takes the README's picture of /docs: `uv run python -m tests.swagger_screenshot`.

A `backoffice dev`-style server (APP_DEBUG, no APP_SECRET_KEY, the demo data) in Chromium:
the page with the development key filled in, after "Try it out" and "Execute" on the heroes.
"""

import sys
import tempfile
from pathlib import Path

from settings import ROOT
from tests.swagger_ui_browser import demo_server, run_browser

PICTURE = ROOT / "docs" / "swagger-ui.png"


def main() -> None:
    development = {"APP_DEBUG": "true", "APP_SECRET_KEY": ""}
    with (
        tempfile.TemporaryDirectory(prefix="swagger-screenshot-") as directory,
        demo_server(development, Path(directory)) as server,
    ):
        report = run_browser({"url": server.url, "screenshot": str(PICTURE)})
    if "error" in report:
        sys.exit(f"no picture taken: {report['error']}")
    print(f"{PICTURE.relative_to(ROOT)}: {report['steps']}")


if __name__ == "__main__":
    main()
