"""Every notebook under ``notebooks/`` runs top to bottom (nbmake's runner) with its defaults.

New notebooks are picked up without editing this file. Each must also follow the contract of
``CONTRIBUTING.md``: no stored outputs, and a first code cell tagged ``parameters`` (papermill).
The executed copies are kept under ``test-artifacts/notebooks/`` for inspection.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from nbmake.nb_run import NotebookRun

from prism_kernels.batch import records_from_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if not p.name.startswith("_"))
ARTIFACTS = ROOT / "test-artifacts" / "notebooks"
CELL_TIMEOUT_S = 300


def test_there_are_notebooks():
    assert any(p.name == "01_quickstart.ipynb" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_contract(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    assert "parameters" in code[0].metadata.get("tags", []), (
        "the first code cell must be tagged 'parameters'"
    )
    stored = [i for i, c in enumerate(code) if c.get("outputs")]
    assert not stored, f"outputs are stored in code cells {stored}: clear them before committing"


@pytest.mark.timeout(CELL_TIMEOUT_S + 120)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    t0 = time.perf_counter()
    result = NotebookRun(path, CELL_TIMEOUT_S).execute()
    elapsed = time.perf_counter() - t0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nbformat.write(result.nb, ARTIFACTS / path.name)
    records = records_from_notebook(result.nb)
    print(f"{path.name}: {elapsed:.1f} s, records: {sorted(records)}")
    if result.error is not None:
        pytest.fail(
            f"{path.name} failed in cell {result.error.failing_cell_index}:\n{result.error.trace[-4000:]}",
            pytrace=False,
        )
    json.dumps({k: str(v) for k, v in records.items()})  # the records are readable back
