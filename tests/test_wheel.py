"""The wheel `uv build` makes holds the service and nothing else."""

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from settings import ROOT

# The entry points, the contract and configuration, and one folder per kind of service code.
SERVICE = {
    "alembic.ini",
    "app.py",
    "cli.py",
    "contract",
    "handlers",
    "middleware",
    "migrations",
    "observability",
    "openapi.yaml",
    "persistence",
    "server",
    "settings.py",
    "signing.py",
    "swagger",
}
NOT_THE_SERVICE = {"bench", "clients", "deploy", "tests", "tools", "spec_diff.py", "node_modules"}


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [uv, "build", "--wheel", "--quiet", "-o", str(out)], cwd=ROOT, check=True, timeout=300
    )
    [wheel] = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_the_service_and_nothing_else(wheel_files: list[str]) -> None:
    top = {name.split("/", 1)[0] for name in wheel_files if ".dist-info/" not in name}
    assert top == SERVICE
    assert not top & NOT_THE_SERVICE


def test_the_wheel_holds_no_compiled_or_cached_files(wheel_files: list[str]) -> None:
    assert [name for name in wheel_files if "__pycache__" in name or name.endswith(".pyc")] == []


def test_every_python_folder_of_the_service_is_a_package(wheel_files: list[str]) -> None:
    folders = {Path(name).parts[0] for name in wheel_files if name.endswith(".py") and "/" in name}
    for folder in folders - {"migrations"}:
        assert f"{folder}/__init__.py" in wheel_files, folder
