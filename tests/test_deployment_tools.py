"""The image, Compose file and Kubernetes manifests checked by the tools operators trust:
hadolint, checkov and kubernetes-validate (from `tools/deploy-checks`, an environment of their
own), and promtool for the scrape job."""

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from settings import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
TOOLS = ROOT / "tools" / "deploy-checks" / ".venv" / "bin"
# The Kubernetes release the manifests are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.33.0"
INSTALL = "uv sync --locked --project tools/deploy-checks (.ci/run does)"


def tool(name: str) -> str:
    path = TOOLS / name
    assert path.exists(), f"{name} is missing: {INSTALL}"
    return str(path)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=300
    )


def manifests() -> list[Path]:
    return sorted(path for path in KUBERNETES.glob("*.yaml") if path.name != "kustomization.yaml")


def documents() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in manifests():
        for document in yaml.safe_load_all(path.read_text()):
            found[f"{document['kind']}/{document['metadata']['name']}"] = document
    return found


def checkov_reports(*arguments: str) -> dict[str, dict[str, Any]]:
    """An offline checkov run: its report per framework (none when nothing applied)."""
    result = run(tool("checkov"), *arguments, "--output", "json", "--skip-download")
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return {report["check_type"]: report for report in reports if "check_type" in report}


@pytest.fixture(scope="module")
def checkov() -> dict[str, dict[str, Any]]:
    """Two runs (checkov takes a minute to start here; `-d` and `-f` do not mix)."""
    image = checkov_reports(
        *("--file", "Dockerfile", "--file", "docker-compose.yml"),
        *("--framework", "dockerfile", "--framework", "secrets"),
    )
    kubernetes = checkov_reports("--directory", str(KUBERNETES), "--framework", "kubernetes")
    return image | kubernetes


def failed_and_skipped(*reports: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    skipped = [
        check for report in reports for check in report.get("results", {}).get("skipped_checks", [])
    ]
    return failed, skipped


class TestTheImage:
    def test_hadolint_finds_nothing_in_the_dockerfile(self) -> None:
        result = run(tool("hadolint"), "Dockerfile")

        assert (result.returncode, result.stdout + result.stderr) == (0, "")

    def test_checkov_passes_every_dockerfile_check(self, checkov: dict[str, Any]) -> None:
        report = checkov["dockerfile"]

        assert report["summary"]["passed"] > 50
        assert failed_and_skipped(report) == ([], [])

    def test_checkov_finds_no_secret_in_the_compose_file_or_the_dockerfile(
        self, checkov: dict[str, Any]
    ) -> None:
        # checkov has no policies for Compose itself; its secrets scan is what applies. With
        # nothing found it reports an empty summary, or no report at all.
        report = checkov.get("secrets", {})

        assert failed_and_skipped(report) == ([], [])


class TestKubernetesManifests:
    def test_every_manifest_validates_strictly_against_the_pinned_kubernetes(self) -> None:
        result = run(
            tool("kubernetes-validate"),
            "--strict",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            *(str(path) for path in manifests()),
        )

        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(" passed for resource ") == len(documents())

    def test_checkov_passes_every_check_and_each_skip_says_why(
        self, checkov: dict[str, Any]
    ) -> None:
        report = checkov["kubernetes"]

        failed, skipped = failed_and_skipped(report)
        assert report["summary"]["passed"] > 100
        assert failed == []
        assert {check["check_id"] for check in skipped} == {"CKV_K8S_43"}
        for check in skipped:
            assert len(check["check_result"]["suppress_comment"]) > 20, check

    def test_kustomization_lists_every_manifest_and_no_secret_is_committed(self) -> None:
        kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())

        assert sorted(kustomization["resources"]) == sorted(path.name for path in manifests())
        assert not [name for name in documents() if name.startswith("Secret/")]

    def test_the_pods_stop_gracefully_and_probe_the_right_endpoints(self) -> None:
        found = documents()
        settings = found["ConfigMap/backoffice-settings"]["data"]
        pod = found["Deployment/backoffice"]["spec"]["template"]["spec"]
        [container] = pod["containers"]

        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        needed = (
            pause
            + float(settings["APP_SHUTDOWN_LAME_DUCK_SECONDS"])
            + float(settings["APP_SHUTDOWN_GRACE_SECONDS"])
        )
        assert pod["terminationGracePeriodSeconds"] > needed
        assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"

    def test_the_readiness_probe_leaves_the_hysteresis_to_the_service_and_acts_within_the_lame_duck(
        self,
    ) -> None:
        found = documents()
        settings = found["ConfigMap/backoffice-settings"]["data"]
        [container] = found["Deployment/backoffice"]["spec"]["template"]["spec"]["containers"]
        probe = container["readinessProbe"]

        # The service turns unready after 3 failed checks of its own, and answers from them at
        # once: one failed probe is a verdict, not a blip, and needs no long timeout.
        assert (probe["failureThreshold"], probe.get("successThreshold", 1)) == (1, 1)
        assert probe["timeoutSeconds"] <= probe["periodSeconds"]
        # A SIGTERMed pod is out of the Service's endpoints before its listener closes.
        lame_duck = float(settings["APP_SHUTDOWN_LAME_DUCK_SECONDS"])
        assert probe["periodSeconds"] * probe["failureThreshold"] < lame_duck
        # A request ends (503 at the latest) before the pod's own grace for requests does.
        assert float(settings["APP_REQUEST_TIMEOUT_SECONDS"]) <= float(
            settings["APP_SHUTDOWN_GRACE_SECONDS"]
        )

    def test_the_pods_run_as_the_images_user_with_a_read_only_root_and_secrets_as_files(
        self,
    ) -> None:
        found = documents()
        settings = found["ConfigMap/backoffice-settings"]["data"]
        [user] = re.findall(r"^USER (\d+):", (ROOT / "Dockerfile").read_text(), re.M)
        for name in ("Deployment/backoffice", "Job/backoffice-migrate"):
            pod = found[name]["spec"]["template"]["spec"]
            [container] = pod["containers"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert str(pod["securityContext"]["runAsUser"]) == user
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert "env" not in container or not any(
                "secretKeyRef" in str(variable) for variable in container["env"]
            )
            mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
            [secrets] = [volume for volume in pod["volumes"] if "secret" in volume]
            assert secrets["secret"]["secretName"] == "backoffice-secrets"
            directory = mounts[secrets["name"]]
            for variable in ("APP_SECRET_KEY_FILE", "APP_DB_PASSWORD_FILE"):
                assert settings[variable].startswith(f"{directory}/")

    def test_the_network_policy_lets_in_only_the_app_port_and_out_only_postgresql_and_dns(
        self,
    ) -> None:
        policy = documents()["NetworkPolicy/backoffice"]["spec"]

        [ingress] = policy["ingress"]
        assert ingress["ports"] == [{"port": 8000, "protocol": "TCP"}]
        ports = {
            (port["port"], port["protocol"]) for rule in policy["egress"] for port in rule["ports"]
        }
        assert ports == {(5432, "TCP"), (6432, "TCP"), (53, "UDP"), (53, "TCP")}

    def test_the_scrape_job_keeps_annotated_pods_and_scrapes_each_on_its_own_address(
        self,
    ) -> None:
        # Not promtool: Debian builds Prometheus without Kubernetes service discovery.
        scrape = documents()["ConfigMap/backoffice-prometheus-scrape"]
        [job] = yaml.safe_load(scrape["data"]["prometheus.yml"])["scrape_configs"]
        pod = documents()["Deployment/backoffice"]["spec"]["template"]["metadata"]

        assert job["kubernetes_sd_configs"] == [
            {"role": "pod", "namespaces": {"names": ["backoffice"]}}
        ]
        keep, address, path, name = job["relabel_configs"]
        assert keep["action"] == "keep"
        assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
        assert address["target_label"] == "__address__"
        assert address["source_labels"][0] == "__meta_kubernetes_pod_ip"
        assert path["target_label"] == "__metrics_path__"
        assert name["target_label"] == "pod"
        assert pod["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "8000",
            "prometheus.io/path": "/metrics",
        }
