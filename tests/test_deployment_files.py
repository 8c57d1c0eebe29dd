"""The Dockerfile, docker-compose.yml and deploy/ checked without a Docker engine."""

import json
import re
import shutil
import subprocess
import tomllib
from fnmatch import fnmatch
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import signing
from app import SPEC
from settings import ROOT, Settings
from tests.signed_client import SignedClient

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "backoffice.json"
APP_VARIABLE = re.compile(r"\bAPP_[A-Z0-9_]+\b")
URL = re.compile(r"https?://[^\s'\"]+")
# PromQL words that are not metric names; functions are recognised by their `(`.
PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
    | {"and", "or", "unless"}
)


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def spec_paths() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())["paths"]


def healthcheck_paths() -> dict[str, str]:
    """Where each healthcheck (the image's and each compose service's) sends its request."""
    found: dict[str, str] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "HEALTHCHECK":
            [url] = URL.findall(arguments)
            found["Dockerfile"] = urlparse(url).path
    for name, service in services().items():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        for url in URL.findall(test):
            found[f"compose {name}"] = urlparse(url).path
    return found


def promql_metric_names(expression: str, namespace: str) -> set[str]:
    expression = expression.replace("${namespace}", namespace).replace("$namespace", namespace)
    expression = re.sub(r'"[^"]*"', "", expression)
    expression = re.sub(r"\{[^}]*\}", "", expression)
    expression = re.sub(r"\[[^\]]*\]", "", expression)
    expression = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expression)
    expression = re.sub(r"\b\d+(\.\d+)?([smhdwy]+)?\b", "", expression)  # numbers, durations
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expression):
        followed_by = expression[match.end() :].lstrip()[:1]
        if followed_by != "(" and match[0] not in PROMQL_KEYWORDS:
            names.add(match[0])
    return names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


class TestCompose:
    def test_the_services_and_the_debug_profile(self) -> None:
        found = services()
        assert set(found) == {"db", "migrate", "app", "prometheus", "grafana"}
        profiles = {name: service.get("profiles", []) for name, service in found.items()}
        assert profiles == {
            "db": [],
            "migrate": [],
            "app": [],
            "prometheus": ["debug"],
            "grafana": ["debug"],
        }

    def test_the_database_is_postgres_17_with_a_volume_and_a_readiness_check(self) -> None:
        db = services()["db"]
        assert db["image"] == "postgres:17"
        [volume] = db["volumes"]
        assert volume.split(":")[0] in compose()["volumes"]
        assert volume.split(":")[1] == "/var/lib/postgresql/data"
        assert "pg_isready" in " ".join(db["healthcheck"]["test"])

    def test_the_app_waits_for_a_healthy_database_and_a_completed_migration(self) -> None:
        found = services()
        assert found["migrate"]["command"] == ["alembic", "upgrade", "head"]
        assert found["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
        assert found["app"]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
        for name in ("migrate", "app"):
            assert found[name]["env_file"] == ".env"
            assert found[name]["build"] == "."

    def test_every_app_variable_compose_uses_is_a_setting_listed_in_the_env_example(self) -> None:
        used = set(APP_VARIABLE.findall(COMPOSE.read_text()))
        assert used
        settings = {f"APP_{name.upper()}" for name in Settings.model_fields}
        # A setting that is off by default is listed commented out.
        listed = (ROOT / ".env.example").read_text()
        example = set(re.findall(r"^(?:# )?(APP_[A-Z0-9_]+)=", listed, re.M))
        assert used <= settings
        assert used <= example

    def test_the_secrets_are_files_mounted_in_run_secrets_and_never_taken_from_env(
        self,
    ) -> None:
        found = services()
        declared = compose()["secrets"]
        assert declared == {
            name: {"file": f"./secrets/{name}"}
            for name in ("app_secret_key", "app_secret_key_previous", "db_password")
        }
        for name in ("migrate", "app"):
            environment = found[name]["environment"]
            assert set(found[name]["secrets"]) == set(declared)
            for secret in declared:
                variable = "APP_" + secret.removeprefix("app_").upper()
                assert environment[f"{variable}_FILE"] == f"/run/secrets/{secret}"
                assert environment[variable] == ""  # hides a value .env may hold
        assert found["db"]["secrets"] == ["db_password"]
        assert found["db"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
        assert "secrets/" in (ROOT / ".gitignore").read_text().splitlines()
        assert "secrets/" in (ROOT / ".dockerignore").read_text().splitlines()

    def test_prometheus_and_grafana_mount_files_that_exist(self) -> None:
        for name in ("prometheus", "grafana"):
            for volume in services()[name]["volumes"]:
                source = volume.split(":")[0]
                if source.startswith("./"):
                    assert (ROOT / source).exists(), volume


class TestHealthchecks:
    def test_each_healthcheck_calls_an_unsigned_probe_of_the_spec(self) -> None:
        found = healthcheck_paths()
        assert found == {"Dockerfile": "/health/live", "compose app": "/health/ready"}
        for path in found.values():
            assert spec_paths()[path]["get"]["security"] == []

    def test_the_probes_the_healthchecks_call_answer_200_on_a_live_app(
        self, pg_client: SignedClient
    ) -> None:
        for path in healthcheck_paths().values():
            assert pg_client.raw.get(path).status_code == 200, path


class TestDockerfile:
    def test_both_stages_are_python_313_slim_and_the_build_uses_the_lock(self) -> None:
        instructions = dockerfile_instructions()
        bases = [arguments.split()[0] for name, arguments in instructions if name == "FROM"]
        assert bases == ["python:3.13-slim", "python:3.13-slim"]
        runs = " ".join(arguments for name, arguments in instructions if name == "RUN")
        assert "uv sync --locked --no-dev" in runs
        env = " ".join(arguments for name, arguments in instructions if name == "ENV")
        assert "UV_COMPILE_BYTECODE=1" in env

    def test_the_image_gets_neither_the_docs_tools_nor_any_other_dev_group(self) -> None:
        syncs = [a for name, a in dockerfile_instructions() if name == "RUN" and "uv sync" in a]
        assert syncs
        assert all("--no-dev" in a and "--group docs" not in a for a in syncs)
        assert not any("--all-groups" in a or "--group dev" in a for a in syncs)
        groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
        # In dev, so that a plain `uv run mkdocs build --strict` has it, and --no-dev leaves it.
        assert {"include-group": "docs"} in groups["dev"]
        uv = shutil.which("uv")
        assert uv, "uv is needed: `pip install uv` (see the README's quick start)"
        image = subprocess.run(
            [uv, "export", "--locked", "--no-dev", "--group", "migrations", "--no-hashes"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert "\nuvicorn==" in image
        assert "mkdocs" not in image
        assert "pillow" not in image

    def test_the_service_runs_as_a_user_that_is_not_root(self) -> None:
        instructions = dockerfile_instructions()
        final_stage = instructions[
            max(i for i, (name, _) in enumerate(instructions) if name == "FROM") :
        ]
        users = [arguments for name, arguments in final_stage if name == "USER"]
        assert users
        assert users[-1] not in ("root", "0")
        names = [name for name, _ in final_stage]
        assert names.index("USER") < names.index("CMD")

    def test_the_command_is_exec_form_and_serves_on_every_interface(self) -> None:
        [command] = [json.loads(a) for name, a in dockerfile_instructions() if name == "CMD"]
        assert command[:4] == ["backoffice", "serve", "--host", "0.0.0.0"]  # noqa: S104
        [healthcheck] = [a for name, a in dockerfile_instructions() if name == "HEALTHCHECK"]
        json.loads(healthcheck.split("CMD", 1)[1])

    def test_the_image_gets_the_code_alembic_needs(self) -> None:
        ignored = [
            line.strip().rstrip("/")
            for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith(("#", "!"))
        ]
        needed = ["alembic.ini", "migrations", "openapi.yaml", "app.py", "cli.py", "uv.lock"]
        needed += ["pyproject.toml", "README.md", "contract", "handlers", "middleware"]
        needed += ["observability", "persistence"]
        for path in needed:
            assert (ROOT / path).exists(), path
            assert not any(fnmatch(path, pattern) for pattern in ignored), path
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
        include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["include"]
        for path in needed:
            if path not in ("pyproject.toml", "README.md", "uv.lock"):
                assert f"/{path}" in include or path.endswith(".py"), path


class TestPrometheus:
    def test_the_scrape_targets_the_app_service_metrics_endpoint(self) -> None:
        config = yaml.safe_load(PROMETHEUS.read_text())
        [job] = config["scrape_configs"]
        assert job["metrics_path"] == "/metrics"
        assert "/metrics" in spec_paths()
        [targets] = [static["targets"] for static in job["static_configs"]]
        assert targets == ["app:8000"]
        assert "8000:8000" in services()["app"]["ports"]

    def test_promtool_accepts_the_configuration(self) -> None:
        promtool = shutil.which("promtool")
        assert promtool, "promtool is missing: install Debian's prometheus package (.ci/run does)"
        result = subprocess.run(
            [promtool, "check", "config", str(PROMETHEUS)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr


class TestGrafana:
    def test_the_datasource_and_the_dashboard_provider_match_compose(self) -> None:
        datasources = yaml.safe_load(
            (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
        )
        [source] = datasources["datasources"]
        assert source["type"] == "prometheus"
        assert source["url"] == "http://prometheus:9090"
        providers = yaml.safe_load(
            (GRAFANA / "provisioning" / "dashboards" / "backoffice.yml").read_text()
        )
        [provider] = providers["providers"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services()["grafana"]["volumes"]}
        assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
        dashboard = json.loads(DASHBOARD.read_text())
        uids = {target["datasource"]["uid"] for p in dashboard["panels"] for target in p["targets"]}
        assert uids == {source["uid"]}

    def test_the_dashboard_has_the_panels_the_readme_describes(self) -> None:
        titles = [panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]]
        assert titles == [
            "Request rate by operation",
            "Error rate",
            "Latency p50 by operation",
            "Latency p95 by operation",
            "Latency p99 by operation",
            "Signature rejections by reason",
            "Database pool use",
            "Requests in flight",
            "Query latency p95 by statement",
            "Database errors by SQLSTATE class",
            "Requests stopped at the deadline",
        ]

    def test_every_metric_the_dashboard_queries_is_exported_by_a_live_app(
        self, pg_client: SignedClient
    ) -> None:
        pg_client.get("/api/teams")
        pg_client.get("/api/teams", timestamp=signing.now_ms() - 3_600_000)
        scrape = pg_client.raw.get("/metrics").text
        exported = {
            sample.name
            for family in text_string_to_metric_families(scrape)
            for sample in family.samples
        }
        namespace = Settings.model_fields["namespace"].default
        queried = set[str]()
        for expression in dashboard_expressions():
            queried |= promql_metric_names(expression, namespace)
        assert len(queried) >= 6
        assert queried <= exported, queried - exported


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ('sum by (operation) (rate(x_total{status=~"5.."}[5m]))', {"x_total"}),
        (
            "histogram_quantile(0.99, sum by (le) (rate(${namespace}_b_bucket[1m])))",
            {"ns_b_bucket"},
        ),
        ("sum(a) / sum(b) or c offset 5m", {"a", "b", "c"}),
    ],
)
def test_the_dashboard_check_finds_every_metric_name_in_a_query(
    expression: str, names: set[str]
) -> None:
    assert promql_metric_names(expression, "ns") == names
