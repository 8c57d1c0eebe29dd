"""The signing package a frontend installs (`clients/typescript`, `@backoffice/signing`).

Its README's commands run as written: it builds, type-checks, reproduces every shared signing
vector, and its example program does what the frontend does against a live server, with both
signature versions. `npm pack` gives a tarball that installs into an empty project, imports from
Node as ESM, and type-checks the README's code with the types openapi-typescript generates. The
frontend commands of the documentation's Clients page (docs/clients.md: pack, install beside a
clone, generate) run as written too.
"""

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from settings import ROOT
from tests.conftest import TEST_KEY
from tests.node_packages import npm_ci
from tests.signature_support import VECTORS_FILE

CLIENT = ROOT / "clients" / "typescript"
README = CLIENT / "README.md"
CLIENTS_PAGE = ROOT / "docs/clients.md"
FRONTEND_SECTION = "## The frontend: a typed, signed client in a browser app"
NODE_SECONDS = 240


def run(
    command: str | list[str | Path], cwd: Path = CLIENT, env: dict[str, str] | None = None
) -> str:
    """Run a command (a string goes through the shell, as typed); fail with its output."""
    result = subprocess.run(
        command,
        cwd=cwd,
        shell=isinstance(command, str),
        capture_output=True,
        text=True,
        timeout=NODE_SECONDS,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def fenced_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def command_lines(block: str) -> list[str]:
    """Each line of a bash block as typed, without its trailing comment."""
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def readme_commands() -> dict[str, str]:
    """The 'Developing it' block's commands, each keyed by its npm script (or `pack`, `ci`)."""
    section = README.read_text(encoding="utf-8").split("## Developing it", 1)[1]
    (block,) = fenced_blocks(section, "bash")
    commands: dict[str, str] = {}
    for line in block.splitlines():
        command = line.split("  #", 1)[0].strip()
        words = shlex.split(command)
        npm = words.index("npm")
        commands[words[-1] if words[npm + 1] == "run" else words[npm + 1]] = command
    return commands


@pytest.fixture(scope="module")
def commands() -> dict[str, str]:
    """The README's commands, after its `npm ci` (run when node_modules is not current)."""
    found = readme_commands()
    assert found["ci"] == "npm ci"
    npm_ci(CLIENT)
    run(found["generate"])
    return found


def test_the_readme_lists_the_commands_a_developer_needs() -> None:
    assert list(readme_commands()) == [
        "ci",
        "build",
        "pack",
        "generate",
        "typecheck",
        "test",
        "example",
    ]


def test_the_generated_types_the_tests_and_the_example_type_check(
    commands: dict[str, str],
) -> None:
    run(commands["typecheck"])

    types = (CLIENT / "example" / "schema.d.ts").read_text()
    assert '"/api/heroes/{hero_id}"' in types
    assert "getTeamHeroes" in types


def test_the_build_ships_an_esm_module_with_its_type_declarations(
    commands: dict[str, str],
) -> None:
    shutil.rmtree(CLIENT / "dist", ignore_errors=True)

    run(commands["build"])

    assert sorted(p.name for p in (CLIENT / "dist").iterdir()) == [
        "index.d.ts",
        "index.js",
        "signing.d.ts",
        "signing.js",
    ]
    manifest = json.loads((CLIENT / "package.json").read_text())
    assert manifest["type"] == "module"
    assert manifest["exports"]["."] == {"types": "./dist/index.d.ts", "import": "./dist/index.js"}
    assert "private" not in manifest
    assert manifest.get("dependencies", {}) == {}


def test_the_middleware_reproduces_every_shared_signing_vector(commands: dict[str, str]) -> None:
    vectors = json.loads(VECTORS_FILE.read_text())["vectors"]

    output = run(commands["test"], env={"SIGNING_VECTORS": str(VECTORS_FILE)})

    # Per vector: the signed string and signature, and the headers the middleware sets; plus
    # one check that both versions are present, one that the must-not-verify case does not
    # verify, and one through a real openapi-fetch client.
    assert f"# pass {2 * len(vectors) + 3}\n" in output
    assert "# fail 0\n" in output


@pytest.mark.parametrize("version", ["1", "2"])
def test_the_example_program_works_end_to_end_with_real_signatures(
    commands: dict[str, str], live_api: str, version: str
) -> None:
    example = commands["example"]
    assert example.startswith("BACKOFFICE_URL=http://127.0.0.1:8000 APP_SECRET_KEY=... ")
    # Run as written, with this test's server and key for the README's placeholders.
    written = example.replace("http://127.0.0.1:8000", live_api).replace("=...", f"={TEST_KEY}")

    output = run(written, env={"BACKOFFICE_SIGNATURE_VERSION": version})

    steps = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert steps == [
        {"step": "create team", "status": 201},
        {"step": "create hero", "status": 201},
        {"step": "list the team's heroes", "status": 200},
        {"step": "rename hero", "status": 200},
        {"step": "delete with a stale ETag", "status": 412},
        {"step": "delete hero", "status": 204},
        {"step": "read the deleted hero", "status": 404},
    ]


@pytest.fixture(scope="module")
def tarball(commands: dict[str, str]) -> Path:
    """`npm pack` as the README says: the tarball a frontend installs."""
    manifest = json.loads((CLIENT / "package.json").read_text())
    packed = CLIENT / f"backoffice-signing-{manifest['version']}.tgz"
    packed.unlink(missing_ok=True)
    run(commands["pack"])
    assert packed.exists()
    return packed


def test_the_tarball_holds_the_built_module_its_types_and_the_readme(tarball: Path) -> None:
    listing = run(["tar", "-tzf", tarball]).split()

    assert sorted(listing) == [
        "package/README.md",
        "package/dist/index.d.ts",
        "package/dist/index.js",
        "package/dist/signing.d.ts",
        "package/dist/signing.js",
        "package/package.json",
    ]


IMPORTED = """\
import * as signing from "@backoffice/signing";
const request = await signing.signRequest(
  new Request("http://127.0.0.1:8000/api/heroes?limit=1"),
  { key: process.argv[2], now: () => 1764158400000, nonce: () => undefined },
);
console.log(JSON.stringify({
  exports: Object.keys(signing).sort(),
  signatureInput: request.headers.get("signature-input"),
}));
"""

# What Vite's `vite/client` types declare, for the README's `import.meta.env`.
VITE_ENV = """\
interface ImportMeta {
  readonly env: { readonly VITE_API_URL: string; readonly VITE_SIGNING_KEY: string };
}
"""

# The declarations are real types, not `any`: a wrong option is an error.
TYPED_FOR_REAL = """
export { data, error };
// @ts-expect-error: there is no version 3
signingMiddleware({ key: "k", version: 3 });
"""

OFFLINE = {"npm_config_prefer_offline": "true", "npm_config_audit": "false"}

TSCONFIG = {
    "compilerOptions": {
        "target": "ES2022",
        "module": "ESNext",
        "moduleResolution": "Bundler",
        "lib": ["ES2022", "DOM"],
        "strict": True,
        "noEmit": True,
        "skipLibCheck": False,
    },
    "include": ["src"],
}


def test_the_tarball_installs_imports_and_type_checks_in_an_empty_project(
    tarball: Path, tmp_path: Path
) -> None:
    project = tmp_path / "frontend"
    (project / "src").mkdir(parents=True)
    (project / "package.json").write_text('{"name": "frontend", "private": true, "type": "module"}')
    shutil.copy(tarball, project / tarball.name)
    install = package_readme_code()[0]
    assert install == f"npm install ./{tarball.name}"

    run(install, cwd=project, env=OFFLINE)
    run("npm install openapi-fetch@0.17.0", cwd=project, env=OFFLINE)
    (project / "imported.mjs").write_text(IMPORTED)
    imported = json.loads(run(["node", "imported.mjs", TEST_KEY], cwd=project))
    binaries = CLIENT / "node_modules" / ".bin"
    run([binaries / "openapi-typescript", ROOT / "openapi.yaml", "-o", "src/schema.d.ts"], project)
    checked = type_check_the_readme_code(project, binaries / "tsc")

    assert imported == {
        "exports": [
            "BOUND_HEADERS",
            "contentDigest",
            "keyId",
            "sign",
            "signRequest",
            "signatureBase",
            "signedBytes",
            "signingMiddleware",
            "version2Headers",
        ],
        "signatureInput": 'sig1=("@method" "@path" "@query");created=1764158400'
        f';keyid="{hashlib.sha256(TEST_KEY.encode()).hexdigest()[:16]}";alg="hmac-sha256"',
    }
    assert (checked.returncode, checked.stdout) == (0, "")
    dependency = json.loads((project / "package.json").read_text())["dependencies"]
    assert dependency["@backoffice/signing"] == f"file:{tarball.name}"


def package_readme_code() -> tuple[str, str, str]:
    """The package README's install line, its two-line use and its whole example."""
    blocks = fenced_blocks(README.read_text(encoding="utf-8"), "(?:bash|ts)")
    install, short, full = (block.strip() for block in blocks[:3])
    return install, short, full


def type_check_the_readme_code(project: Path, tsc: Path) -> subprocess.CompletedProcess[str]:
    """The package README's example as the app's src/main.ts, checked as a Vite app would be."""
    (project / "src" / "main.ts").write_text(package_readme_code()[2] + TYPED_FOR_REAL)
    (project / "src" / "vite-env.d.ts").write_text(VITE_ENV)
    (project / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    return subprocess.run(
        [tsc, "--project", project / "tsconfig.json"],
        capture_output=True,
        text=True,
        timeout=NODE_SECONDS,
        check=False,
    )


def frontend_blocks() -> list[list[str]]:
    """The command lines of the Clients page's frontend section, block by block."""
    text = CLIENTS_PAGE.read_text(encoding="utf-8")
    section = text.split(FRONTEND_SECTION, 1)[1].split("\n## ", 1)[0]
    return [command_lines(block) for block in fenced_blocks(section, "bash")]


def test_the_clients_page_frontend_commands_work_as_written(tmp_path: Path) -> None:
    (pack,), install = frontend_blocks()
    (tmp_path / "backoffice").symlink_to(ROOT)
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "package.json").write_text('{"name": "app", "private": true, "type": "module"}')

    run(pack, cwd=tmp_path / "backoffice")
    for command in install:
        run(command, cwd=app, env=OFFLINE)
    checked = type_check_the_readme_code(app, app / "node_modules" / ".bin" / "tsc")

    manifest = json.loads((app / "package.json").read_text())
    assert manifest["dependencies"] == {
        "@backoffice/signing": "file:../backoffice/clients/typescript/backoffice-signing-1.0.0.tgz",
        "openapi-fetch": "^0.17.0",
    }
    assert manifest["devDependencies"] == {"openapi-typescript": "^7.13.0", "typescript": "^5.9.3"}
    assert '"/api/heroes/{hero_id}"' in (app / "src" / "schema.d.ts").read_text()
    assert (checked.returncode, checked.stdout) == (0, "")


def test_the_generator_table_row_for_openapi_typescript_works_as_written() -> None:
    row = next(
        line
        for line in CLIENTS_PAGE.read_text(encoding="utf-8").splitlines()
        if line.startswith("| [openapi-typescript]")
    )
    command = row.split("`")[1]
    assert command.startswith("npm ci --prefix clients/typescript && "), command
    # From the repository's root, as the table says (npm refuses a root reached by a symlink).
    generated = ROOT / "schema.d.ts"
    assert not generated.exists()
    try:
        run(command, cwd=ROOT)
        types = generated.read_text()
    finally:
        generated.unlink(missing_ok=True)

    assert '"/api/teams/{team_id}/heroes"' in types
