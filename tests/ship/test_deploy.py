"""The deployment files in deploy/: the Compose file (the gateway with PostgreSQL, Redis and S3) and the systemd unit
for the single binary, read as compose and systemd read them, and checked by those tools where they are installed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.services import ROOT

COMPOSE = ROOT / "deploy" / "compose.yaml"
UNIT = ROOT / "deploy" / "hapta.service"
SECRETS = ("HAPTA_JWT_SECRET", "HAPTA_ANON_KEY", "HAPTA_ADMIN_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD",
           "S3_ACCESS_KEY", "S3_SECRET_KEY")
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]*\}")   # ${NAME:?message}: compose refuses to start while NAME is unset
SECRET_NAME = re.compile(r"SECRET|PASSWORD|_KEY$|_AUTH$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_every_service_checks_its_health_and_the_gateway_waits_for_the_others(compose):
    services = compose["services"]
    assert set(services) == {"gateway", "postgres", "redis", "minio"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["postgres"]["image"].startswith(("postgres:16", "postgres:15"))
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    gateway = services["gateway"]
    assert gateway["depends_on"] == {name: {"condition": "service_healthy"} for name in ("postgres", "redis", "minio")}
    assert "/health" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["build"]["dockerfile"] == "Dockerfile" and (COMPOSE.parent / gateway["build"]["context"]
                                                               / "Dockerfile").is_file()
    assert gateway["command"][:1] == ["serve"] and "--workers" in gateway["command"]   # the image's ENTRYPOINT: hapta
    # longer than the gateway's drain on SIGTERM (10 s), or compose kills it mid-drain
    assert int(gateway["stop_grace_period"].removesuffix("s")) > 10


def test_the_gateway_is_configured_for_production_by_the_documented_settings(compose):
    env = environment(compose["services"]["gateway"])
    assert env["HAPTA_ENV"] == "production"
    for name in ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET",
                 "HAPTA_JWT_SECRET", "HAPTA_ANON_KEY", "HAPTA_ADMIN_KEY"):
        assert env.get(name), name
    assert env["DATABASE_URL"].split("@")[1].startswith("postgres:5432/")
    assert env["REDIS_URL"].split("@")[1].startswith("redis:6379/")
    assert env["S3_ENDPOINT"] == "http://minio:9000"


def test_no_secret_is_written_in_the_file(compose):
    """Every secret is a ${NAME:?...} from deploy/.env or the environment: never a value, never a default."""
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert REQUIRED.fullmatch(str(value)), f"{name}: {key} is not ${{...:?...}}: {value!r}"
    for url in ("DATABASE_URL", "REDIS_URL"):   # the password inside a URL too
        password = environment(compose["services"]["gateway"])[url].split("//", 1)[1].split("@")[0].split(":", 1)[1]
        assert REQUIRED.fullmatch(password), url
    text = COMPOSE.read_text()
    assert not re.search(r":-[^}]*(secret|password|key)", text, re.IGNORECASE)   # no fallback value for one
    assert set(REQUIRED.findall(text)) == set(SECRETS)
    example = dict(line.split("=", 1) for line in (COMPOSE.parent / "env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert set(SECRETS) <= set(example) and not any(example[name] for name in SECRETS)   # names, no values


def test_what_lasts_lives_in_named_volumes(compose):
    declared = set(compose["volumes"])
    used = {mount.split(":", 1)[0] for service in compose["services"].values() for mount in service.get("volumes", [])}
    assert used == declared and {"postgres-data", "minio-data", "hapta-data"} <= declared
    assert "/var/lib/postgresql/data" in " ".join(compose["services"]["postgres"]["volumes"])


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_compose_accepts_the_file_and_refuses_it_without_secrets(tmp_path):
    command = _compose_command()
    if command is None:
        pytest.skip("no `docker compose` (nor docker-compose) here to validate deploy/compose.yaml with")
    # another project directory, so that a developer's deploy/.env does not fill in what this test leaves unset
    base = [*command, "--project-directory", str(tmp_path), "-f", str(COMPOSE), "config", "-q"]
    clean = {key: value for key, value in os.environ.items() if key not in SECRETS}
    refused = subprocess.run(base, env=clean, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "deploy/.env" in refused.stdout + refused.stderr
    filled = {**clean, **{name: f"test-{name.lower()}-" + "x" * 32 for name in SECRETS}}
    accepted = subprocess.run(base, env=filled, capture_output=True, text=True, timeout=60)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as systemd reads it: [Section], Key=value lines (a key may repeat), # and ; comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, value = line.split("=", 1)
        assert current is not None, f"{key} outside a section"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_systemd_unit_runs_the_binary_hardened():
    unit = unit_sections(UNIT.read_text())
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["ExecStart"] == ("/usr/local/bin/hapta serve --config /etc/hapta/config.py --host 0.0.0.0 "
                                    "--workers 2")
    assert service["EnvironmentFile"] == "/etc/hapta/env" and service["User"] == "hapta"
    assert service["Restart"] == "on-failure"
    assert int(service["LimitNOFILE"]) >= 1048576   # one descriptor per socket (docs/operations.md)
    assert 10 < int(service["TimeoutStopSec"]) <= 30   # past the gateway's 10 s drain, yet no long hang
    # SIGTERM to the gateway alone, which stops its workers itself (control-group, the default, signals them all)
    assert service["KillMode"] == "mixed"
    assert service["NoNewPrivileges"] == "true" and service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "true"
    # the one folder it may write is the one it keeps its data in
    assert service["Environment"] == "HAPTA_DATA_DIR=/var/lib/hapta" and service["ReadWritePaths"] == "/var/lib/hapta"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze here to verify deploy/hapta.service with")
    # verify also asks that ExecStart's program exist: a stand-in where the binary would be installed
    stand_in = tmp_path / "hapta"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    copy = tmp_path / "hapta.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/hapta", str(stand_in)))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # a directive systemd cannot read is only a warning (exit 0): any output at all fails the test
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr



def test_the_image_builds_the_package_from_what_it_copies():
    """The Dockerfile's build stage installs the package from a few copied files: among them every file pyproject.toml
    names (its readme and license files), or the image would build without them or not at all."""
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    build_stage = (ROOT / "Dockerfile").read_text().split("\nFROM ")[1]   # [0]: the comments above it
    copied = {name for line in build_stage.splitlines() if line.startswith("COPY ")
              for name in line.split()[1:-1]}
    assert {project["readme"], *project["license-files"], "pyproject.toml", "hapta"} <= copied
