"""The production stack (docker-compose.yml): valid for Docker Compose, complete, and free of secrets.

No Docker engine runs here; `docker compose config` (or the v1 `docker-compose config`) validates
and interpolates the file without one, and is skipped with a reason when neither CLI exists. The
structural checks need only PyYAML and always run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker")


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_docker_compose_config_passes(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` (plugin) nor `docker-compose` is installed: cannot run `config`")
    proc = subprocess.run([*cli, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rendered = yaml.safe_load(proc.stdout)
    assert set(AIRFLOW_SERVICES) <= set(rendered["services"])
    # Without the .env values the file must refuse to render: no secret has a default.
    (tmp_path / "empty.env").write_text("")
    bare = subprocess.run([*cli, "--env-file", str(tmp_path / "empty.env"), "-f", str(COMPOSE), "config"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bare.returncode != 0 and "set " in (bare.stderr + bare.stdout)


def test_services_of_the_official_layout(compose):
    services = compose["services"]
    for name in (*AIRFLOW_SERVICES, "airflow-init", "postgres", "redis"):
        assert name in services, name
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:")
    for name in (*AIRFLOW_SERVICES, "postgres", "redis"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert services["airflow-worker"]["command"] == "celery worker"
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    # Two databases on one Postgres: Airflow metadata and the warehouse.
    assert "/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["WAREHOUSE_DSN"].endswith("/reform")
    init = (REPO / "docker" / "postgres-init.sh").read_text()
    assert "CREATE DATABASE airflow" in init and "CREATE DATABASE reform" in init
    # Landing folder as a volume; the init service must finish before Airflow starts.
    assert any(v.endswith(":/opt/reform/landing") for v in services["airflow-worker"]["volumes"])
    for name in AIRFLOW_SERVICES:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_no_secret_is_committed(compose):
    text = COMPOSE.read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert {"POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "WAREHOUSE_DB_PASSWORD", "AIRFLOW_FERNET_KEY",
            "AIRFLOW_JWT_SECRET", "REDIS_PASSWORD"} <= required
    example = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )
    missing = required - set(example)
    assert not missing, f".env.example lacks {sorted(missing)}"
    for key in required:
        assert example[key].startswith("change-me"), f"{key} in .env.example looks like a real secret"
    # Every password-like setting is interpolated, never written out.
    for service in compose["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|FERNET", key) and not key.endswith("_FILE"):
                assert "${" in str(value), f"{key} is hard-coded"
    ignored = (REPO / ".gitignore").read_text().split()
    assert ".env" in ignored


def test_image_builds_the_manifest_at_build_time():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert "ensure_manifest" in dockerfile
    assert "apache-airflow-providers-celery" in dockerfile


def test_superset_is_an_optional_bi_service_reading_as_bi_reader(compose):
    """Superset (profile `bi`): its own image (official + Postgres driver), connected as bi_reader, the
    marts registered as datasets with the warehouse's own descriptions, secrets checked at its start."""
    superset = compose["services"]["superset"]
    assert superset["profiles"] == ["bi"]
    assert all("profiles" not in compose["services"][name] for name in (*AIRFLOW_SERVICES, "postgres"))
    context = REPO / superset["build"]["context"]
    assert re.search(r"^FROM apache/superset:\$\{SUPERSET_VERSION\}", (context / "Dockerfile").read_text(), re.M)
    assert "psycopg2-binary" in (context / "Dockerfile").read_text()
    env = superset["environment"]
    assert env["BI_READER_PASSWORD"].startswith("${BI_READER_PASSWORD:?")
    assert env["WAREHOUSE_HOST"] == "postgres"
    assert superset["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    boot = (context / "bootstrap.sh").read_text()
    assert superset["command"] == ["/app/reform/bootstrap.sh"]
    for secret in ("SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD"):
        assert f'"${{{secret}:?set {secret} in .env}}"' in boot  # refused at start when unset
        assert env[secret] == f"${{{secret}:-}}"
    assert "register_marts.py" in boot and boot.rstrip().endswith("run-server.sh")
    script = (context / "register_marts.py").read_text()
    compile(script, "register_marts.py", "exec")
    assert "postgresql+psycopg2://bi_reader:" in script
    assert "relnamespace = 'marts'::regnamespace" in script and "SqlaTable" in script
    assert "col_description" in script and "obj_description" in script
