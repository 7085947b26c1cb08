"""binder/ stays in step with pyproject.toml, the Makefile's torch pin and the notebooks' imports."""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _binder_requirements() -> dict[str, Requirement]:
    reqs: dict[str, Requirement] = {}
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        r = Requirement(line)
        assert canonicalize_name(r.name) not in reqs, (
            f"{r.name} listed twice in binder/requirements.txt"
        )
        reqs[canonicalize_name(r.name)] = r
    return reqs


def test_binder_files_exist():
    assert (BINDER / "requirements.txt").is_file()
    post = BINDER / "postBuild"
    assert post.is_file() and os.access(post, os.X_OK), "binder/postBuild must be executable"
    assert re.search(r"pip install --no-deps -e \.", post.read_text()), (
        "postBuild must install the package"
    )
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"


def test_every_dependency_and_the_lab_extra_with_the_same_specifier():
    project = _pyproject()["project"]
    binder = _binder_requirements()
    wanted = [
        Requirement(d) for d in project["dependencies"] + project["optional-dependencies"]["lab"]
    ]
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in binder, (
            f"{req.name} (pyproject.toml) is missing from binder/requirements.txt"
        )
        assert binder[name].specifier == req.specifier, (
            f"{req.name}: pyproject.toml says {req.specifier}, binder/requirements.txt says {binder[name].specifier}"
        )
    allowed = (
        {
            canonicalize_name(Requirement(d).name)
            for extra in project["optional-dependencies"].values()
            for d in extra
        }
        | {canonicalize_name(r.name) for r in wanted}
        | {"torch"}
    )
    extra = set(binder) - allowed
    assert not extra, (
        f"binder/requirements.txt lists packages pyproject.toml does not: {sorted(extra)}"
    )


def test_cpu_torch_pinned_as_the_makefile_pins_it():
    """Binder gets the version ``make install`` pins, from PyTorch's CPU index (mybinder.org
    has no GPU; PyPI's Linux wheel is the multi-GB CUDA build)."""
    pin = re.search(r"^TORCH_PIN \?= (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert pin == "torch==2.13.0"
    text = (BINDER / "requirements.txt").read_text()
    assert str(_binder_requirements()["torch"]) == pin
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text, (
        "torch must come from the CPU index"
    )


def _notebook_imports(path: Path) -> set[str]:
    nb = json.loads(path.read_text())
    mods: set[str] = set()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        src = "\n".join(
            line for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        try:
            tree = ast.parse(src)
        except SyntaxError:  # top-level await is valid in a notebook
            tree = ast.parse(re.sub(r"\bawait\b", "", src))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods.add(node.module.split(".")[0])
    return mods


def test_notebook_imports_are_installed_by_binder():
    binder = set(_binder_requirements())
    dists = packages_distributions()
    ours = {"prism_kernels", "widgets", "benchmarks", "tests"}
    missing = {}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for mod in sorted(_notebook_imports(nb) - ours):
            if mod in sys.stdlib_module_names:
                continue
            names = {canonicalize_name(d) for d in dists.get(mod, [])}
            assert names, f"{nb.name} imports {mod}, which no installed distribution provides"
            # A distribution pulled in by a listed one (ipython by ipykernel...) counts as installed.
            if not names & binder and not _is_dependency_of(names, binder):
                missing.setdefault(nb.name, []).append(mod)
    assert not missing, f"notebook imports binder/requirements.txt does not install: {missing}"


def _is_dependency_of(names: set[str], roots: set[str]) -> bool:
    from importlib.metadata import PackageNotFoundError, requires

    seen: set[str] = set()
    to_visit = list(roots)
    while to_visit:
        name = to_visit.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in reqs:
            r = Requirement(line)
            if r.marker is not None and not r.marker.evaluate({"extra": ""}):
                continue
            to_visit.append(canonicalize_name(r.name))
    return bool(names & seen)
