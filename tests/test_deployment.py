"""The deployment files (``deployment/``) name only what the app has.

Nothing here starts a container or a cluster (CI has neither): each file is parsed and every
name in it is checked against the app's own configuration, read from its source or built:

- environment variables: each one a PRISM container is given is read by ``prism_kernels`` or
  ``widgets`` (a string constant in a module that reads the environment), or is a listed
  variable of other software (Python, pip, BLAS, numba, the NVIDIA runtime); the values are
  accepted by :meth:`widgets.server.config.Settings.from_env` and take effect;
- ports: the server's default (``Settings().port``), the Dockerfile's ``EXPOSE``, the command
  flags, container ports, Services, probes and scrape annotations agree;
- HTTP paths: probes, the scrape path, the image's health check and every Ingress path are
  routes of a real server built by :func:`widgets.server.app.build_server` (its Tornado route
  table, dashboards included), and every route of that table but ``/metrics`` is reachable
  through the Ingresses, the dashboards' with cookie affinity and nothing else with it;
- commands: ``prism ...`` is parsed by :func:`widgets.cli.build_parser`, ``dask scheduler``
  and ``dask worker`` by distributed's own command-line parsers;
- references: URLs name compose services / Kubernetes Services and their ports, selectors
  match pod labels, named ports exist, Secret keys exist in ``secret.example.yaml``, and the
  manifests carry the fields Kubernetes requires;
- live (slow): ``prism serve`` started with the pod's command and environment, on real
  PostgreSQL and Redis servers, answers the probe, scrape, API and dashboard paths.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.pgserver import postgres_db_url  # noqa: F401
from tests.redisserver import redis_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deployment"
K8S = DEPLOY / "k8s"
PRISM_IMAGE = re.compile(r"^prism(:[\w.\-]+)?$")
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")

#: Variables of other software a PRISM container may be given, with what reads them.
OTHER_SOFTWARE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "the Python interpreter",
    "PYTHONUNBUFFERED": "the Python interpreter",
    "PIP_NO_CACHE_DIR": "pip (--no-cache-dir), at build time",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip (--disable-pip-version-check), at build time",
    "OPENBLAS_NUM_THREADS": "OpenBLAS",
    "OMP_NUM_THREADS": "OpenMP",
    "MKL_NUM_THREADS": "MKL",
    "NUMBA_CACHE_DIR": "numba (its on-disk cache of compiled kernels)",
    "NVIDIA_DRIVER_CAPABILITIES": "the NVIDIA container runtime",
    "MALLOC_TRIM_THRESHOLD_": "glibc's allocator (Dask workers: see docker-compose.yml)",
    "MALLOC_MMAP_THRESHOLD_": "glibc's allocator (Dask workers: see docker-compose.yml)",
}
#: Variables the official images of the other services document.
IMAGE_ENV = {
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PGDATA"},
    "redis": set(),
}
#: Default ports of the other services' images.
IMAGE_PORTS = {"postgres": 5432, "redis": 6379}


# ---------------------------------------------------------------- reading the files


@cache
def k8s_docs() -> list[dict[str, Any]]:
    """Every manifest document of ``deployment/k8s`` (a local ``secret.yaml`` excluded)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "secret.yaml"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append({**doc, "_file": path.name})
    return docs


def k8s(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d
        for d in k8s_docs()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def workloads() -> list[dict[str, Any]]:
    return [d for d in k8s_docs() if d["kind"] in ("Deployment", "StatefulSet")]


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]


def prism_containers() -> list[dict[str, Any]]:
    """Containers of the PRISM image that run the server (not ``dask``)."""
    return [
        c
        for w in workloads()
        for c in pod_containers(w)
        if PRISM_IMAGE.match(c["image"]) and c.get("command", ["prism"])[0] == "prism"
    ]


def secret_example() -> dict[str, dict[str, str]]:
    """``{secret name: {key: value}}`` of ``secret.example.yaml``."""
    return {
        d["metadata"]["name"]: dict(d.get("stringData") or {})
        for d in k8s("Secret")
        if d["_file"] == "secret.example.yaml"
    }


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    """``deployment/env.example``: the values compose interpolates."""
    out = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?message}``."""

    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = values.get(name)
        if op in (":?", "?") and not value:
            raise AssertionError(f"compose needs {name}: {arg}")
        if op in (":-", "-") and not value:
            return arg
        return value or ""

    return INTERPOLATION.sub(one, text)


def compose_env(service: str, values: dict[str, str] | None = None) -> dict[str, str]:
    env = compose()["services"][service].get("environment") or {}
    assert isinstance(env, dict), f"compose service {service}: environment as a mapping"
    values = env_example() if values is None else values
    return {k: interpolate(str(v), values) for k, v in env.items()}


def prism_compose_services() -> list[str]:
    return [
        name
        for name, svc in compose()["services"].items()
        if PRISM_IMAGE.match(svc.get("image", "")) and "command" not in svc
    ]


@cache
def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined."""
    lines, buf = [], ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        if raw.lstrip().startswith("#"):  # a comment, also between continued lines
            continue
        buf += raw.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        if buf.strip():
            word, _, rest = buf.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
        buf = ""
    return lines


def docker(instruction: str) -> list[str]:
    return [rest for word, rest in dockerfile() if word == instruction]


def docker_env() -> dict[str, str]:
    env = {}
    for rest in docker("ENV"):
        for item in shlex.split(rest):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def docker_args() -> dict[str, str]:
    out = {}
    for rest in docker("ARG"):
        name, _, value = rest.partition("=")
        out[name] = shlex.split(value)[0] if value else ""
    return out


# ---------------------------------------------------------------- what the app has


@cache
def env_read_by_app() -> dict[str, set[str]]:
    """``{NAME: modules}``: environment variables ``prism_kernels`` and ``widgets`` read.

    A name counts when it is a string constant (not a docstring) in a module that reads the
    environment (``os.environ``/``getenv``): ``env.get("PRISM_X")``, ``_positive_int(env,
    "PRISM_X", ...)``, a tuple of names looped over, a provider's ``api_key`` variable.
    """
    found: dict[str, set[str]] = {}
    for package in ("prism_kernels", "widgets"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            if "environ" not in text and "getenv" not in text:
                continue
            tree = ast.parse(text)
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(
                    node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
                )
                and node.body
                and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)
            }
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and ENV_NAME.match(node.value)
                    and id(node) not in docstrings
                ):
                    found.setdefault(node.value, set()).add(str(path.relative_to(ROOT)))
    return found


ROUTE_TABLE_SCRIPT = """
import json, sys
from widgets.server.app import build_server
from widgets.server.config import Settings

settings = Settings.from_env(
    {"PRISM_API_KEYS": "deployment-test-key:admin"}, address="127.0.0.1", port=0
)
app, server = build_server(settings, verbose=False)
# a rule's first item is its path pattern, or a matcher of one (WholeBodyPath)
rules = [(getattr(r[0], "regex", r[0]), r[1].__name__) for r in app.tornado_routes()]
rules = [(p if isinstance(p, str) else p.pattern, name) for p, name in rules]
for rule in server._tornado.wildcard_router.rules:
    regex = getattr(rule.matcher, "regex", None)
    if regex is not None:
        rules.append((regex.pattern, getattr(rule.target, "__name__", str(rule.target))))
server.stop()
app.stop()
from widgets.registry import dashboards

json.dump({"rules": rules, "slugs": [d.slug for d in dashboards()]}, sys.stdout)
"""


@cache
def real_server() -> dict[str, Any]:
    """The Tornado route table of a real server (every dashboard) and the dashboards' slugs
    (:func:`widgets.registry.dashboards`). Built in a child process: a server sets
    process-wide state (the runtime) that other tests in this process must not inherit."""
    import sys

    out = subprocess.run(
        [sys.executable, "-c", ROUTE_TABLE_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def server_routes() -> list[tuple[re.Pattern, str]]:
    """(regex, handler name) in the order Tornado tries them."""
    return [(re.compile(pattern), handler) for pattern, handler in real_server()["rules"]]


def route_of(path: str) -> str | None:
    """The handler the server would use for ``path`` (first match wins, as in Tornado)."""
    for regex, handler in server_routes():
        m = regex.match(path)  # Tornado's PathMatches: anchored at both ends ("$")
        if m and m.end() == len(path):
            return handler
    return None


def dashboard_slugs() -> list[str]:
    return real_server()["slugs"]


def default_port() -> int:
    from widgets.server.config import Settings

    return Settings().port


# ---------------------------------------------------------------- manifests are well formed

REQUIRED = {
    ("apps/v1", "Deployment"): ["spec.selector.matchLabels", "spec.template.spec.containers"],
    ("apps/v1", "StatefulSet"): [
        "spec.selector.matchLabels",
        "spec.serviceName",
        "spec.template.spec.containers",
    ],
    ("v1", "Service"): ["spec.ports", "spec.selector"],
    ("v1", "Secret"): [],
    ("networking.k8s.io/v1", "Ingress"): ["spec.rules"],
    ("autoscaling/v2", "HorizontalPodAutoscaler"): [
        "spec.scaleTargetRef.name",
        "spec.maxReplicas",
        "spec.metrics",
    ],
    ("policy/v1", "PodDisruptionBudget"): ["spec.selector.matchLabels"],
}


def dig(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"missing {dotted}"
        node = node[part]
    return node


def test_manifests_are_well_formed_and_reference_each_other():
    docs = k8s_docs()
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "a kind and name used twice"
    for d in docs:
        where = f"{d['_file']}: {d.get('kind')} {d.get('metadata', {}).get('name')}"
        assert (d.get("apiVersion"), d.get("kind")) in REQUIRED, f"{where}: unknown kind"
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"]), where
        for field in REQUIRED[(d["apiVersion"], d["kind"])]:
            assert dig(d, field) not in (None, [], {}), f"{where}: empty {field}"

    services = {s["metadata"]["name"]: s for s in k8s("Service")}
    for w in workloads():
        where = f"{w['kind']} {w['metadata']['name']}"
        pod = w["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert w["spec"]["selector"]["matchLabels"].items() <= labels.items(), where
        volumes = {v["name"] for v in pod["spec"].get("volumes", [])} | {
            t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])
        }
        for c in pod_containers(w):
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            assert all(len(n) <= 15 for n in ports), f"{where}: port names are <= 15 chars"
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                check = c.get(probe, {}).get("httpGet") or c.get(probe, {}).get("tcpSocket")
                if check and isinstance(check["port"], str):
                    assert check["port"] in ports, f"{where}: {probe} names no port"
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes, f"{where}: mount {m['name']} has no volume"
        if w["kind"] == "StatefulSet":
            governing = services[w["spec"]["serviceName"]]
            assert governing["spec"].get("clusterIP") == "None", f"{where}: headless Service"

    for name, svc in services.items():
        pods = [
            w
            for w in workloads()
            if svc["spec"]["selector"].items()
            <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert pods, f"Service {name} selects no pods"
        named = {p["name"] for w in pods for c in pod_containers(w) for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str):
                assert target in named, f"Service {name}: targetPort {target} is no pod port"

    for ing in k8s("Ingress"):
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                backend = p["backend"]["service"]
                svc_ports = services[backend["name"]]["spec"]["ports"]
                port = backend["port"]
                known = {q.get("name") for q in svc_ports} | {q["port"] for q in svc_ports}
                assert port.get("name", port.get("number")) in known, ing["metadata"]["name"]
                assert p["pathType"] in ("Exact", "Prefix"), p

    for hpa in k8s("HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert k8s(ref["kind"], ref["name"]), f"HPA targets a missing {ref}"
        assert 1 <= hpa["spec"].get("minReplicas", 1) <= hpa["spec"]["maxReplicas"]
    for pdb in k8s("PodDisruptionBudget"):
        sel = pdb["spec"]["selector"]["matchLabels"]
        assert any(
            sel.items() <= w["spec"]["template"]["metadata"]["labels"].items() for w in workloads()
        )


def test_kustomization_lists_every_manifest_and_builds():
    kz = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {
        p.name
        for p in K8S.glob("*.yaml")
        if p.name not in ("kustomization.yaml", "secret.example.yaml", "secret.yaml")
    }
    assert set(kz["resources"]) == manifests
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the manifests were checked structurally above")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(built) == sum(1 for d in k8s_docs() if d["_file"] in manifests)


def test_secret_keys_referenced_exist_in_the_example():
    secrets = secret_example()
    refs = []
    for w in workloads():
        for c in pod_containers(w):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.append((ref["name"], ref["key"], e["name"]))
                    assert ref["key"] in secrets.get(ref["name"], {}), (
                        f"{w['metadata']['name']}: {ref} is not in secret.example.yaml"
                    )
    assert refs
    used = {(n, k) for n, k, _ in refs}
    for name, keys in secrets.items():
        for key in keys:
            assert (name, key) in used, f"secret.example.yaml: {name}/{key} is used by no pod"


# ---------------------------------------------------------------- environment variables


def container_env_names() -> dict[str, list[tuple[str, set[str]]]]:
    """``{"prism": [(where, names)], "postgres": ..., "redis": ...}`` over every file."""
    out: dict[str, list[tuple[str, set[str]]]] = {"prism": [], "postgres": [], "redis": []}
    out["prism"].append(("Dockerfile ENV", set(docker_env())))
    for w in workloads():
        for c in pod_containers(w):
            image = c["image"].split(":")[0]
            kind = "prism" if PRISM_IMAGE.match(c["image"]) else image
            out[kind].append(
                (f"k8s {w['metadata']['name']}", {e["name"] for e in c.get("env", [])})
            )
    for name, svc in compose()["services"].items():
        image = svc.get("image", "").split(":")[0]
        kind = "prism" if PRISM_IMAGE.match(svc.get("image", "")) else image
        out[kind].append((f"compose {name}", set(svc.get("environment") or {})))
    # Every key of a Secret a PRISM pod reads becomes one of its variables by name.
    out["prism"].append(
        ("secret.example.yaml prism-secrets", set(secret_example()["prism-secrets"]))
    )
    return out


def test_every_variable_a_prism_container_gets_is_read_by_the_app():
    read = env_read_by_app()
    unknown = []
    for where, names in container_env_names()["prism"]:
        for name in sorted(names):
            if name not in read and name not in OTHER_SOFTWARE_ENV:
                unknown.append(f"{where}: {name}")
    assert not unknown, (
        "variables the app never reads (prism_kernels/widgets have no such name):\n  "
        + "\n  ".join(unknown)
    )


def test_the_scale_out_variables_are_read_by_the_app():
    """The shared set-up hangs on these: each one must be read somewhere in the app."""
    read = env_read_by_app()
    missing = [
        n
        for n in ("PRISM_STORE_URL", "PRISM_REDIS_URL", "PRISM_WORKERS", "PRISM_DASK_SCHEDULER")
        if n not in read
    ]
    assert not missing, f"the deployment sets {missing}, which nothing in the app reads yet"


def test_other_services_get_only_their_images_variables():
    names = container_env_names()
    for image, allowed in IMAGE_ENV.items():
        for where, got in names[image]:
            assert got <= allowed, f"{where}: {got - allowed} is not a {image} image variable"


def test_readme_names_only_variables_the_app_reads():
    text = (DEPLOY / "README.md").read_text()
    read = env_read_by_app()
    named = set(re.findall(r"\b((?:PRISM|OPENAI|ANTHROPIC|GEMINI)_[A-Z0-9_]+)\b", text))
    assert named, "the README names the variables"
    assert named <= set(read), f"README names {named - set(read)}, which the app never reads"


def test_compose_interpolation_is_documented_in_env_example():
    text = (DEPLOY / "docker-compose.yml").read_text()
    used = {m.group(1) for m in INTERPOLATION.finditer(text)}
    example = env_example()
    assert used == set(example), (
        f"in compose, not in env.example: {used - set(example)}; "
        f"in env.example, unused: {set(example) - used}"
    )
    gitignore = (DEPLOY / ".gitignore").read_text().split()
    assert ".env" in gitignore and "k8s/secret.yaml" in gitignore


def k8s_prism_env() -> dict[str, str]:
    """The server container's environment, Secret values taken from the example."""
    (container,) = [
        c for c in pod_containers(k8s("Deployment", "prism")[0]) if c["name"] == "prism"
    ]
    secrets = secret_example()
    env = {}
    for e in container["env"]:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        env[e["name"]] = secrets[ref["name"]][ref["key"]] if ref else str(e.get("value", ""))
    return env


def test_values_are_accepted_by_the_app_and_take_effect():
    from prism_kernels.llm.config import load_config
    from widgets.server.config import Settings

    env = k8s_prism_env()
    s = Settings.from_env(env)
    assert s.processes == 1 and s.store_url == env["PRISM_STORE_URL"]
    assert s.redis_url == env["PRISM_REDIS_URL"]
    assert s.cookie_secret == env["PRISM_COOKIE_SECRET"], "one cookie secret for every pod"
    assert not s.login_link and s.generated_key is None and len(s.api_keys) == 2
    assert s.rate_limit == float(env["PRISM_RATE_LIMIT"]) and s.metrics_key is None
    assert not load_config(env).endpoints, "empty provider keys mean: no provider"

    for service in prism_compose_services():
        cenv = {**docker_env(), **compose_env(service)}
        s = Settings.from_env(cenv)
        assert s.processes >= 2, f"compose {service}: several server processes"
        assert s.store_url.startswith("postgresql://") and s.redis_url.startswith("redis://")
        assert s.cookie_secret == cenv["PRISM_COOKIE_SECRET"]
        assert s.backend == "auto"
        load_config(cenv)
        with pytest.raises(AssertionError, match="PRISM_API_KEYS"):
            compose_env(service, {k: v for k, v in env_example().items() if k != "PRISM_API_KEYS"})


# ---------------------------------------------------------------- commands and ports


def parse_prism(argv: list[str]):
    from widgets.cli import build_parser

    assert argv[0] == "prism", argv
    return build_parser().parse_args(argv[1:])


def test_commands_parse_and_ports_agree():
    port = default_port()
    assert port == 5006
    assert docker("EXPOSE") == [str(port)]
    cmd = parse_prism(json.loads(docker("CMD")[0]))
    assert cmd.command == "serve" and cmd.port == port and cmd.address == "0.0.0.0"
    health = json.loads(docker("HEALTHCHECK")[0].split(" CMD ", 1)[1])
    url = re.search(r"http://[^'\"]+", " ".join(health)).group(0)
    assert urlsplit(url).port == port

    user = docker("USER")[-1].split(":")[0]
    assert user not in ("", "0", "root"), "the image runs as a non-root user"

    for c in prism_containers():
        args = parse_prism(c["command"])
        assert args.command == "serve" and args.address == "0.0.0.0"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"http": port} and (args.port or port) == port
    for w in workloads():
        ann = w["spec"]["template"]["metadata"].get("annotations", {})
        if any(
            PRISM_IMAGE.match(c["image"]) and c in prism_containers() for c in pod_containers(w)
        ):
            assert ann["prometheus.io/scrape"] == "true"
            assert int(ann["prometheus.io/port"]) == port

    for name, svc in compose()["services"].items():
        for mapping in svc.get("ports", []):
            host_ip, host_port, container_port = mapping.split(":")
            assert host_ip == "127.0.0.1", f"compose {name}: published on loopback only"
            if name in prism_compose_services():
                assert int(container_port) == port


def dask_params(argv: list[str]) -> tuple[str, dict[str, Any]]:
    from distributed.cli import dask_scheduler, dask_worker

    assert argv[0] == "dask" and argv[1] in ("scheduler", "worker"), argv
    main = dask_scheduler.main if argv[1] == "scheduler" else dask_worker.main
    return argv[1], main.make_context(f"dask {argv[1]}", list(argv[2:])).params


def dask_health_port(params: dict[str, Any]) -> int:
    """The port of a scheduler's or worker's HTTP server, which serves ``/health``."""
    import dask

    role = "scheduler" if "worker_class" not in params else "worker"
    assert "distributed.http.health" in dask.config.get(f"distributed.{role}.http.routes")
    return int(params["dashboard_address"].rsplit(":", 1)[1])


def test_dask_commands_parse_and_match_services():
    scheduler_urls = set()
    # compose
    for name, svc in compose()["services"].items():
        if "command" not in svc or svc["command"][0] != "dask":
            continue
        assert PRISM_IMAGE.match(svc["image"]), "Dask runs the PRISM image (kernels importable)"
        role, params = dask_params(svc["command"])
        probe = " ".join(svc["healthcheck"]["test"])
        assert f":{dask_health_port(params)}/health" in probe, name
        if role == "scheduler":
            scheduler_urls.add(f"tcp://{name}:{params['port']}")
        else:
            assert params["scheduler"] in scheduler_urls, name
    for service in prism_compose_services():
        assert compose_env(service)["PRISM_DASK_SCHEDULER"] in scheduler_urls
    # Kubernetes
    services = {s["metadata"]["name"]: s for s in k8s("Service")}
    for w in workloads():
        for c in pod_containers(w):
            if c.get("command", [""])[0] != "dask":
                continue
            role, params = dask_params(c["command"])
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports[c["readinessProbe"]["httpGet"]["port"]] == dask_health_port(params)
            if role == "scheduler":
                assert ports["comm"] == int(params["port"])
            else:
                host, port = (
                    urlsplit(params["scheduler"]).hostname,
                    urlsplit(params["scheduler"]).port,
                )
                assert port in {p["port"] for p in services[host]["spec"]["ports"]}
    k8s_url = k8s_prism_env()["PRISM_DASK_SCHEDULER"]
    svc = services[urlsplit(k8s_url).hostname]
    assert urlsplit(k8s_url).port in {p["port"] for p in svc["spec"]["ports"]}


def compose_scheduler_port() -> int:
    _, params = dask_params(compose()["services"]["dask-scheduler"]["command"])
    return int(params["port"])


def test_service_urls_name_services_and_their_ports():
    # compose: the URL's host is a service and the port is the one that service listens on
    services = compose()["services"]
    for name in prism_compose_services():
        env = compose_env(name)
        for var in ("PRISM_STORE_URL", "PRISM_REDIS_URL", "PRISM_DASK_SCHEDULER"):
            u = urlsplit(env[var])
            assert u.hostname in services, f"compose {name}: {var} names no service"
            target = services[u.hostname]
            image = target.get("image", "").split(":")[0]
            want = compose_scheduler_port() if var == "PRISM_DASK_SCHEDULER" else IMAGE_PORTS[image]
            assert u.port == want, f"compose {name}: {var} port"
            assert u.hostname in (services[name].get("depends_on") or {})
        store = urlsplit(env["PRISM_STORE_URL"])
        pg = compose_env(store.hostname)
        assert (store.username, store.password, store.path.lstrip("/")) == (
            pg["POSTGRES_USER"],
            pg["POSTGRES_PASSWORD"],
            pg["POSTGRES_DB"],
        )
    # Kubernetes: the same against Services, and the store URL against the PostgreSQL pod
    ksvc = {s["metadata"]["name"]: s for s in k8s("Service")}
    env = k8s_prism_env()
    for var in ("PRISM_STORE_URL", "PRISM_REDIS_URL"):
        u = urlsplit(env[var])
        assert u.port in {p["port"] for p in ksvc[u.hostname]["spec"]["ports"]}, var
    store = urlsplit(env["PRISM_STORE_URL"])
    (pg,) = pod_containers(k8s("StatefulSet", "postgres")[0])
    pg_env = {e["name"]: e for e in pg["env"]}
    ref = pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert store.password == secret_example()[ref["name"]][ref["key"]]
    assert store.username == pg_env["POSTGRES_USER"]["value"]
    assert store.path.lstrip("/") == pg_env["POSTGRES_DB"]["value"]


def test_the_shared_setup_scales_out():
    (prism,) = k8s("Deployment", "prism")
    assert prism["spec"]["replicas"] >= 2 and "volumeClaimTemplates" not in prism["spec"]
    env = k8s_prism_env()
    assert env["PRISM_STORE_URL"].startswith("postgresql://")
    assert env["PRISM_REDIS_URL"].startswith("redis://")
    (container,) = prism_containers()
    cookie = next(e for e in container["env"] if e["name"] == "PRISM_COOKIE_SECRET")
    assert not cookie["valueFrom"]["secretKeyRef"].get("optional"), "every pod needs the secret"
    (hpa,) = k8s("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "prism" and hpa["spec"]["minReplicas"] >= 2
    (pg,) = k8s("StatefulSet", "postgres")
    assert pg["spec"]["volumeClaimTemplates"], "PostgreSQL keeps its data on a volume"


def test_build_context_sends_what_the_image_copies():
    """``Dockerfile.dockerignore`` (BuildKit's per-Dockerfile ignore file) lets through every
    path a ``COPY`` names, and nothing else from the repository root."""
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for rest in docker("COPY"):
        *sources, _dest = shlex.split(rest)
        copied |= {s.rstrip("/") for s in sources if not s.startswith("--")}
    assert copied == allowed
    assert all((ROOT / path).exists() for path in copied)


def test_image_pins_the_makefiles_torch():
    make = (ROOT / "Makefile").read_text()
    pin = re.search(r"^TORCH_PIN \?= (\S+)$", make, re.M).group(1)
    args = docker_args()
    assert args["TORCH_PIN"] == pin
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu"), "the CPU build by default"
    assert args["VARIANT"] == "cpu" and "cupy-cuda12x" in args["CUPY_PIN"]


# ---------------------------------------------------------------- HTTP paths


def ingress_route(path: str) -> str | None:
    """The Service the Ingresses send ``path`` to: an Exact path first, then the longest
    Prefix by whole path elements (as Kubernetes defines them)."""
    best: tuple[int, str] | None = None
    for ing in k8s("Ingress"):
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                service = p["backend"]["service"]["name"]
                if p["pathType"] == "Exact" and p["path"] == path:
                    return service
                prefix = p["path"].rstrip("/")
                if p["pathType"] == "Prefix" and (
                    path == prefix or path.startswith(prefix + "/") or prefix == ""
                ):
                    if best is None or len(prefix) > best[0]:
                        best = (len(prefix), service)
    return best[1] if best else None


def sample_path(pattern: str) -> str:
    """A concrete path a route's regular expression matches."""
    path = pattern.rstrip("$").replace("(/.*)?", "/v1/x").replace("/?", "")
    path = path.replace("(.*)", "x").replace(".*", "x").replace("\\.", ".")
    return path or "/"


@pytest.mark.slow  # builds a real server (about 10 s, once for the module)
def test_probe_scrape_and_health_paths_are_server_routes():
    paths = []
    for c in prism_containers():
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            paths.append((probe, c[probe]["httpGet"]["path"]))
    (prism,) = k8s("Deployment", "prism")
    paths.append(
        ("scrape", prism["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"])
    )
    health = docker("HEALTHCHECK")[0]
    paths.append(("HEALTHCHECK", urlsplit(re.search(r"http://[^'\"]+", health).group(0)).path))
    for what, path in paths:
        assert route_of(path) in ("HealthHandler", "MetricsHandler"), f"{what}: {path}"
    assert {p for _, p in paths} == {"/health", "/metrics"}


@pytest.mark.slow  # builds a real server (about 10 s, once for the module)
def test_ingress_paths_are_server_routes_and_reach_every_route():
    slugs = dashboard_slugs()
    # every Ingress path is something the server answers
    for ing in k8s("Ingress"):
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                probe = p["path"] if p["pathType"] == "Exact" else p["path"].rstrip("/") + "/x"
                ok = route_of(probe) or (p["pathType"] == "Prefix" and route_of(p["path"]))
                assert ok, f"Ingress {ing['metadata']['name']}: {p['path']} is no server route"
    # every route of the server (but /metrics) reaches a pod, dashboards with affinity
    affinity = {
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
        for ing in k8s("Ingress")
        if ing["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/affinity")
        == "cookie"
    }
    assert affinity == {"prism-dashboards"}
    for regex, handler in server_routes():
        path = sample_path(regex.pattern)
        assert route_of(path) is not None, f"sample {path} of {regex.pattern}"
        service = ingress_route(path)
        if path.rstrip("/") == "/metrics":
            assert service is None, "/metrics is scraped per pod, not published"
            continue
        is_dashboard = path.strip("/").split("/")[0] in slugs
        want = "prism-dashboards" if is_dashboard else "prism"
        assert service == want, f"{path} ({handler}) goes to {service}, not {want}"
    # one affinity path per dashboard, no more
    dash_paths = {
        p["path"].strip("/")
        for ing in k8s("Ingress")
        for rule in ing["spec"]["rules"]
        for p in rule["http"]["paths"]
        if p["backend"]["service"]["name"] == "prism-dashboards"
    }
    assert dash_paths == set(slugs)


def test_ingress_keeps_websockets_open_and_bodies_the_server_takes():
    from widgets.server.config import Settings

    for ing in k8s("Ingress"):
        ann = ing["metadata"]["annotations"]
        assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
        assert int(ann["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
        body = ann["nginx.ingress.kubernetes.io/proxy-body-size"]
        assert int(body.rstrip("m")) >= Settings().max_body_mb


@pytest.mark.skipif(
    subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0
    if shutil.which("docker")
    else True,
    reason="docker compose is not installed: the compose file was checked by parsing",
)
def test_compose_config_validates(tmp_path):
    env = tmp_path / "env"
    env.write_text((DEPLOY / "env.example").read_text())
    out = subprocess.run(
        [
            "docker",
            "compose",
            "--env-file",
            str(env),
            "-f",
            str(DEPLOY / "docker-compose.yml"),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------- the pod's configuration, live


@pytest.mark.slow
def test_a_server_started_as_the_pod_answers_its_probes(
    postgres_db_url,  # noqa: F811
    redis_server,  # noqa: F811
    tmp_path,
):
    """``prism serve`` with the Deployment's command and environment (Secret values from the
    example; PostgreSQL and Redis are real servers on loopback in place of the Services; no Dask
    scheduler, which is only reached by a batch) answers the probe, scrape, API and dashboard
    paths, stores in PostgreSQL and shares through Redis."""
    import os
    import sys
    import time

    import httpx
    import psycopg

    from tests.serverutil import LLM_ENV, free_port

    (container,) = prism_containers()
    port = free_port()
    argv = list(container["command"])
    argv[argv.index("--address") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    pod_env = k8s_prism_env()
    pod_env["PRISM_STORE_URL"] = postgres_db_url
    pod_env["PRISM_REDIS_URL"] = redis_server.url
    del pod_env["PRISM_DASK_SCHEDULER"]
    image_env = {k: v for k, v in docker_env().items() if k not in ("NUMBA_CACHE_DIR",)}
    image_env["PRISM_DATA_DIR"] = str(tmp_path)
    inherited = {
        k: v for k, v in os.environ.items() if k not in LLM_ENV and not k.startswith("PRISM_")
    }
    env = {**inherited, **image_env, **pod_env}
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "widgets.cli", *argv[1:]],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        startup = container["startupProbe"]
        deadline = time.time() + startup["periodSeconds"] * startup["failureThreshold"]
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if httpx.get(base + startup["httpGet"]["path"], timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "the startup probe would have failed"
            time.sleep(0.5)
        with httpx.Client(base_url=base, timeout=30) as c:
            for probe in ("readinessProbe", "livenessProbe"):
                assert c.get(container[probe]["httpGet"]["path"]).status_code == 200
            annotations = k8s("Deployment", "prism")[0]["spec"]["template"]["metadata"]
            metrics = c.get(annotations["annotations"]["prometheus.io/path"])
            assert metrics.status_code == 200  # the example's PRISM_METRICS_KEY is empty
            assert re.search(r"^prism_redis_up\S* 1(\.0)?$", metrics.text, re.M), "Redis shared"
            admin_key = pod_env["PRISM_API_KEYS"].split(",")[0].split(":")[0]
            who = c.get("/api/v1/whoami", headers={"Authorization": f"Bearer {admin_key}"})
            assert who.status_code == 200 and who.json()["data"]["role"] == "admin"
            slug = dashboard_slugs()[0]
            page = c.get(f"/{slug}", follow_redirects=False)
            assert page.status_code == 302 and page.headers["Location"].startswith("/login")
        with psycopg.connect(postgres_db_url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()[0]
        assert tables > 0, "the store was opened in PostgreSQL"
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)
        log.close()
