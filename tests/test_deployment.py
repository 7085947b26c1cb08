"""The deployment files parse and point at what the server serves."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_k8s_manifests_parse_and_probe_health():
    docs = list(yaml.safe_load_all((ROOT / "deployment/k8s/deployment.yaml").read_text()))
    kinds = [d["kind"] for d in docs]
    assert kinds == ["StatefulSet", "Service", "Service"]
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert (
        docs[0]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    )
    assert {e["name"] for e in container["env"]} >= {"PRISM_API_KEYS", "PRISM_DATA_DIR"}


def test_compose_and_dockerfile_agree_on_port():
    compose = yaml.safe_load((ROOT / "deployment/docker-compose.yml").read_text())
    assert compose["services"]["prism"]["ports"] == ["127.0.0.1:5006:5006"]
    assert "EXPOSE 5006" in (ROOT / "deployment/Dockerfile").read_text()
