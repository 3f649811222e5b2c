"""What cannot run here (containers, a cluster) is checked as far as it can be: the image, compose and Helm
files parse, start only the roles `tds roles` knows (the ones the deployed-shape test runs), set only settings
TDS or Dagster read, and repeat dagster.yaml's run limits faithfully."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from tds_pipelines.cli import build_parser
from tds_pipelines.roles import ROLES
from tds_pipelines.webhooks import create_app

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
ROLE_NAMES = {name for name, _ in ROLES}


def read_settings() -> str:
    """Every text TDS's settings are read from: its code and its Dagster files."""
    sources = [*(REPO / "tds_pipelines").rglob("*.py"), REPO / "dagster.yaml", DEPLOY / "workspace.yaml"]
    return "\n".join(path.read_text() for path in sources)


def test_the_image_runs_a_role_and_copies_what_exists():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["tds", "role"]' in dockerfile
    [default] = re.findall(r'^CMD \["([^"]+)"\]$', dockerfile, re.MULTILINE)
    assert default in ROLE_NAMES
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE):
        for source in line.split()[:-1]:
            assert (REPO / source).exists(), source


def test_compose_starts_the_roles_and_sets_only_settings_that_are_read():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    roles = {name: service["command"] for name, service in services.items() if service.get("command")}
    assert {command[0] for command in roles.values()} == ROLE_NAMES
    assert services["migrate"]["entrypoint"] == ["tds", "db", "upgrade"]
    build_parser().parse_args(["db", "upgrade"])  # a command that exists
    read = read_settings()
    for name in compose["x-tds"]["environment"]:
        assert name in read, f"{name} is set by compose but read nowhere"
    init = (DEPLOY / "postgres-init.sql").read_text()
    assert compose["x-tds"]["environment"]["DAGSTER_PG_DB"] in init


def test_the_helm_values_serve_the_code_location_and_repeat_the_instance_limits():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    instance = yaml.safe_load((REPO / "dagster.yaml").read_text())
    module = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"] == ["-m", module]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    daemon = values["dagsterDaemon"]
    queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["maxConcurrentRuns"] == instance["run_queue"]["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == instance["run_queue"]["tag_concurrency_limits"]
    retries = instance["run_retries"]
    assert daemon["runRetries"] == {
        "enabled": retries["enabled"],
        "maxRetries": retries["max_retries"],
        "retryOnAssetOrOpFailure": retries["retry_on_asset_or_op_failure"],
    }
    assert daemon["runMonitoring"]["startTimeoutSeconds"] == instance["run_monitoring"]["start_timeout_seconds"]


def test_the_receivers_manifest_runs_the_receiver_role_and_probes_a_real_route():
    deployment, service = yaml.safe_load_all((DEPLOY / "helm" / "receiver.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["receiver"]
    port = container["ports"][0]["containerPort"]
    assert f"${{TDS_WEBHOOK_PORT:-{port}}}" in dict(ROLES)["receiver"]
    assert service["spec"]["ports"][0]["targetPort"] == port
    routes = {route.path for route in create_app(database_url="sqlite://", token="t").routes}
    assert container["readinessProbe"]["httpGet"]["path"] in routes
