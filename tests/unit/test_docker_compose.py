"""docker-compose.yml and the Dockerfile hold what a Docker user needs, in step with the local services."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _pom_kafka_version() -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(ROOT / "services" / "kafka" / "pom.xml").find("m:properties/m:kafka.version", ns)
    assert version is not None and version.text
    return version.text.strip()


def test_services(compose: dict[str, Any]) -> None:
    assert {"kafka", "postgres", "worker", "api"} <= set(compose["services"])


def test_kafka_image_matches_the_pom(compose: dict[str, Any]) -> None:
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{_pom_kafka_version()}"


def test_kafka_is_a_single_kraft_node(compose: dict[str, Any]) -> None:
    env = _env(compose["services"]["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://:9092" in env["KAFKA_LISTENERS"].split(",")
    assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"].split(",")
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env[key] == "1", key
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"


def test_postgres(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:17"
    env = _env(postgres)
    assert env["POSTGRES_DB"] == "galleryflow"
    assert env["POSTGRES_PASSWORD"] == "postgres"


@pytest.mark.parametrize("name", ["worker", "api"])
def test_app_services(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["build"] in (".", {"context": "."})
    env = _env(service)
    assert env["GALLERYFLOW_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["GALLERYFLOW_DATABASE_URL"] == "postgresql://postgres:postgres@postgres:5432/galleryflow"
    assert env["GALLERYFLOW_SECRET_KEY"].startswith("${GALLERYFLOW_SECRET_KEY")
    assert service["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }


def test_commands_and_ports(compose: dict[str, Any]) -> None:
    assert compose["services"]["worker"]["command"] == ["galleryflow", "run"]
    api = compose["services"]["api"]
    assert api["command"] == ["galleryflow", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert "8000:8000" in api["ports"]


@pytest.mark.parametrize("name", ["kafka", "postgres", "api"])
def test_healthchecks(compose: dict[str, Any], name: str) -> None:
    assert compose["services"][name]["healthcheck"]["test"]


def test_advertised_listener_is_what_the_apps_use(compose: dict[str, Any]) -> None:
    advertised = _env(compose["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"].split(",")
    bootstrap = _env(compose["services"]["worker"])["GALLERYFLOW_KAFKA_BOOTSTRAP_SERVERS"]
    assert f"PLAINTEXT://{bootstrap}" in advertised


def test_dockerfile() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert "FROM python:3.11-slim" in lines
    assert any(line.startswith("RUN pip install .") for line in lines)
    assert 'CMD ["galleryflow", "run"]' in lines
