"""Takes the picture of /docs that the README and docs/swagger-ui.md show:
`uv run python -m tests.swagger_screenshot`.

A `backoffice dev`-style server (APP_DEBUG, no APP_SECRET_KEY, the demo data) in Chromium:
the page with the development key filled in, after "Try it out" and "Execute" on the heroes.
`tests/test_swagger_ui_browser.py` takes it again and compares it with the committed one.
"""

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw

from settings import ROOT
from tests.swagger_ui_browser import demo_server, run_browser

PICTURE = ROOT / "docs" / "swagger-ui.png"
REGENERATE = "uv run python -m tests.swagger_screenshot"
# A pixel counts as changed when its difference, as luminance, is above this (of 255): the
# faint edges of anti-aliased text may move by less between two renderings of the same page.
CHANGED_ABOVE = 48
HEIGHT_SLACK = 2


@dataclass(frozen=True)
class Comparison:
    """How a picture taken now differs from the committed one, outside the boxes that vary."""

    same_size: bool
    changed: int
    compared: int


def take_picture(path: Path) -> dict[str, Any]:
    """The page under `backoffice dev`'s settings, written to `path`; the browser's report."""
    development = {"APP_DEBUG": "true", "APP_SECRET_KEY": ""}
    with (
        tempfile.TemporaryDirectory(prefix="swagger-screenshot-") as directory,
        demo_server(development, Path(directory)) as server,
    ):
        return run_browser({"url": server.url, "screenshot": str(path)})


def compare(committed: Path, taken: Path, volatile: list[dict[str, float]]) -> Comparison:
    """Both pictures with the boxes that vary from run to run painted over, pixel by pixel."""
    pictures = [Image.open(path).convert("RGB") for path in (committed, taken)]
    (width, height), (other_width, other_height) = (picture.size for picture in pictures)
    # The picture ends a fixed distance below the response, whose place has a fraction of a
    # pixel that rounds either way from run to run; a changed layout moves it much further.
    if width != other_width or abs(height - other_height) > HEIGHT_SLACK:
        return Comparison(same_size=False, changed=0, compared=0)
    height = min(height, other_height)
    pictures = [picture.crop((0, 0, width, height)) for picture in pictures]
    for picture in pictures:
        draw = ImageDraw.Draw(picture)
        for box in volatile:
            corner = (box["x"] + box["width"], box["y"] + box["height"])
            draw.rectangle([(box["x"], box["y"]), corner], fill="black")
    difference = ImageChops.difference(*pictures).convert("L")
    changed_or_not = [255 if value > CHANGED_ABOVE else 0 for value in range(256)]
    changed = difference.point(changed_or_not).histogram()[255]
    return Comparison(same_size=True, changed=changed, compared=width * height)


def main() -> None:
    report = take_picture(PICTURE)
    if "error" in report:
        sys.exit(f"no picture taken: {report['error']}")
    print(f"{PICTURE.relative_to(ROOT)}: {report['steps']}")


if __name__ == "__main__":
    main()
