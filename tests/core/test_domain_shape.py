"""Every domain has the same shape (CONTRIBUTING.md, "The shape of a domain").

Checked here for every route module that declares a service, without naming the domains, so
a new domain is held to the same rules the day its routes exist:

- its handlers make one call to their service (request models adapt the input, response
  models shape the output; no kernel is called from a handler);
- every route has a response model, applied, that refuses undeclared fields;
- its service is a ``DomainService`` whose stored kinds are ``Collection`` s (newest-first
  lists, ``NotFound``) and which reports time under the one ``TIMING_KEY``;
- its dashboard is discovered under the same slug;
- every POST route carries a request example that its request model accepts.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, RootModel

import prism_kernels
import widgets.server.routes as routes_pkg
from prism_kernels.service import TIMING_KEY, DomainService
from widgets.registry import dashboards
from widgets.server.routing import RouteGroup

PLATFORM_GROUPS = {"gpu"}  # platform routes: no domain service, no dashboard of their own


def _groups() -> list[tuple[str, object, RouteGroup]]:
    out = []
    for m in sorted(pkgutil.iter_modules(routes_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{routes_pkg.__name__}.{m.name}")
        group = getattr(module, "ROUTES", None)
        if isinstance(group, RouteGroup):
            out.append((m.name, module, group))
    return out


DOMAINS = [(n, mod, g) for n, mod, g in _groups() if n not in PLATFORM_GROUPS]
IDS = [n for n, _, _ in DOMAINS]


def test_there_are_domains_to_check():
    assert len(DOMAINS) >= 3


@pytest.mark.parametrize("name,module,group", DOMAINS, ids=IDS)
def test_domain_declares_its_service(name, module, group):
    assert group.service is not None, f"RouteGroup({name!r}) must name its service"
    assert issubclass(group.service, DomainService)
    assert group.service.domain == name
    health = [r for r in group.routes if r.path.endswith(f"/{name}/health")]
    assert len(health) == 1, "the domain's /health comes from RouteGroup(service=...)"


def _calls(fn) -> tuple[list[ast.Call], ast.FunctionDef | ast.AsyncFunctionDef]:
    src = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(src)
    fdef = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    # The body only: the ``@ROUTES.post(...)`` decorator is a declaration, not a call it makes.
    calls = [n for stmt in fdef.body for n in ast.walk(stmt) if isinstance(n, ast.Call)]
    return calls, fdef


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript, ast.Await)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def _is_service_lookup(call: ast.AST) -> bool:
    """``req.service(Svc)``, or ``await req.aservice(Svc)`` in an ``async def`` handler."""
    if isinstance(call, ast.Await):
        call = call.value
    if not isinstance(call, ast.Call):
        return False
    f = call.func
    return (
        isinstance(f, ast.Attribute)
        and f.attr in ("service", "aservice")
        and _root(f) is not None
        and (isinstance(_root(f), ast.Name) and _root(f).id == "req")
    )


@pytest.mark.parametrize("name,module,group", DOMAINS, ids=IDS)
def test_handlers_only_call_their_service(name, module, group):
    """One service method call per handler; other calls only on ``req`` (its body's adapters)
    or on the module's response models."""
    problems = []
    for route in group.routes:
        if route.handler.__module__ != module.__name__:
            continue  # the declared /health
        calls, fdef = _calls(route.handler)
        service_calls = 0
        for c in calls:
            if _is_service_lookup(c):
                continue
            f = c.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, (ast.Call, ast.Await)):
                if _is_service_lookup(f.value):
                    service_calls += 1
                    continue
            root = _root(f)
            if isinstance(root, ast.Name) and root.id == "req":
                continue  # req.body.kernel_args(), req.path[...]
            if isinstance(root, ast.Name):
                obj = getattr(module, root.id, None)
                if inspect.isclass(obj) and issubclass(obj, BaseModel):
                    continue  # shaping the answer through a response model
                if obj in (dict, list, str, int, float, len):
                    continue
            problems.append(f"{route.name}: calls {ast.unparse(f)}")
        if service_calls != 1:
            problems.append(f"{route.name}: {service_calls} service calls (want exactly one)")
    assert not problems, "\n".join(problems)


def _models(tp) -> list[type[BaseModel]]:
    """Every pydantic model reachable from a type annotation."""
    out = []
    if inspect.isclass(tp) and issubclass(tp, BaseModel):
        out.append(tp)
        for f in tp.model_fields.values():
            out += _models(f.annotation)
    for arg in typing.get_args(tp):
        out += _models(arg)
    return out


@pytest.mark.parametrize("name,module,group", DOMAINS, ids=IDS)
def test_response_models_are_declared_and_strict(name, module, group):
    problems = []
    for route in group.routes:
        if route.response is None:
            problems.append(f"{route.name}: no response model")
            continue
        for m in _models(route.response):
            if issubclass(m, RootModel):
                continue
            if m.model_config.get("extra") != "forbid":
                problems.append(f"{route.name}: {m.__name__} allows undeclared fields")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name,module,group", DOMAINS, ids=IDS)
def test_post_routes_have_an_example_their_model_accepts(name, module, group):
    for route in group.routes:
        if route.method != "POST":
            continue
        assert route.example is not None, f"{route.name}: no request example"
        route.request.model_validate(route.example)


def _service_source(service: type) -> str:
    return Path(inspect.getsourcefile(service)).read_text()


@pytest.mark.parametrize("name,module,group", DOMAINS, ids=IDS)
def test_service_keeps_state_through_collections(name, module, group):
    """No direct store access (lists newest first and NotFound come from ``Collection``),
    and no timing key but ``TIMING_KEY``."""
    src = _service_source(group.service)
    assert not re.search(r"self\.store\.(put|get|list|delete|get_arrays|exists)\(", src), (
        "use a Collection, not the store directly"
    )
    keys = set(re.findall(r"[\"'](\w+_time_ms)[\"']", src)) - {TIMING_KEY}
    assert not keys, f"timing keys other than {TIMING_KEY}: {sorted(keys)}"


def test_service_modules_hold_no_module_level_kernels():
    """A service module defines its service class and constants, not functions."""
    root = Path(prism_kernels.__file__).parent
    problems = []
    for path in sorted(root.glob("*/service.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef)
            ) and not node.name.startswith("_"):
                problems.append(f"{path.parent.name}/service.py: def {node.name}")
    assert not problems, "move kernels to kernel modules:\n" + "\n".join(problems)


@pytest.mark.parametrize("name,module,group", DOMAINS, ids=IDS)
def test_dashboard_is_discovered(name, module, group):
    slugs = {d.slug for d in dashboards()}
    assert name in slugs, f"no Viewer with slug {name!r} in widgets/"
