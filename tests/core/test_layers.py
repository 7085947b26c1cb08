"""The layering rule: prism_kernels imports no web or UI library (it must run on a Dask worker)."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import prism_kernels

FORBIDDEN = {"panel", "bokeh", "holoviews", "hvplot", "tornado", "param", "ipywidgets", "widgets"}
ROOT = Path(prism_kernels.__file__).parent


def test_no_forbidden_import_statements():
    offenders = []
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN
            ]
    assert not offenders, offenders


def test_importing_every_module_loads_no_ui_library():
    modules = [
        m.name
        for m in pkgutil.walk_packages([str(ROOT)], "prism_kernels.")
        if not m.name.endswith("__main__")
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {sorted(FORBIDDEN)!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"UI/web modules loaded by prism_kernels: {out.stdout.strip()}"
