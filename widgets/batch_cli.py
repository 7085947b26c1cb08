"""``prism batch``: run a notebook over parameters on Dask (the work is in :mod:`prism_kernels.batch`).

::

    prism batch notebooks/01_quickstart.ipynb -p size 128 --grid grid.yaml --workers 2 --out runs/
    prism batch notebooks/01_quickstart.ipynb --grid grid.yaml --scheduler tcp://127.0.0.1:8786
    PRISM_DASK_SCHEDULER=tcp://127.0.0.1:8786 prism batch notebooks/01_quickstart.ipynb --grid grid.yaml

Exit status: 0 when every run succeeded, 1 when one or more failed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def add_batch_parser(
    subparsers: argparse._SubParsersAction, handler: Callable
) -> argparse.ArgumentParser:
    """Add the ``batch`` sub-command to ``prism``'s parser; ``handler(args)`` runs it."""
    b = subparsers.add_parser(
        "batch",
        help="run a notebook over parameters (papermill executions on Dask)",
        description="Run NOTEBOOK once per parameter point as Dask tasks, keep every output notebook "
        "and write one table (results.csv, results.parquet) of parameters and recorded values.",
    )
    b.add_argument("notebook", help="the notebook template (first code cell tagged 'parameters')")
    b.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter for every run; VALUE is read as YAML (3, 0.5, true, [1, 2])",
    )
    b.add_argument(
        "--grid",
        help="YAML/JSON grid: name -> list of values (every combination), or a list of runs",
    )
    b.add_argument(
        "--scheduler",
        help="address of a running Dask scheduler, e.g. tcp://127.0.0.1:8786 "
        "(default: $PRISM_DASK_SCHEDULER when set, else a local cluster)",
    )
    b.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local cluster worker processes (default: min(4, runs))",
    )
    b.add_argument(
        "--out",
        default="batch-runs",
        help="folder for output notebooks and the table (default batch-runs)",
    )
    b.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    b.add_argument(
        "--cell-timeout", type=float, default=600.0, help="seconds a cell may run (default 600)"
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=handler)
    return b


def run_batch_cli(args: argparse.Namespace) -> int:
    """Parse, run :func:`prism_kernels.batch.run_batch`, print the table and the failures."""
    from prism_kernels.batch import load_grid, parse_value, run_batch

    if args.workers is not None and args.workers < 1:
        print("prism batch: --workers must be at least 1", file=sys.stderr)
        return 2
    if not Path(args.notebook).is_file():
        print(f"prism batch: no notebook at {args.notebook}", file=sys.stderr)
        return 2
    params = {name: parse_value(value) for name, value in args.parameter}
    grid = None
    if args.grid:
        try:
            grid = load_grid(args.grid)
        except (OSError, ValueError) as exc:
            print(f"prism batch: {exc}", file=sys.stderr)
            return 2
    try:
        result = run_batch(
            args.notebook,
            parameters=params,
            grid=grid,
            out_dir=args.out,
            scheduler=args.scheduler,
            workers=args.workers,
            kernel_name=args.kernel,
            cell_timeout=args.cell_timeout,
            progress=not args.no_progress,
        )
    except (OSError, TimeoutError) as exc:
        print(f"prism batch: {exc}", file=sys.stderr)
        return 2
    import pandas as pd

    shown = result.table.drop(columns=["output"])
    with pd.option_context(
        "display.max_columns", 30, "display.width", 160, "display.max_colwidth", 40
    ):
        print(shown.to_string(index=False))
    print(f"\n{len(result.succeeded)} of {len(result.runs)} run(s) succeeded on {result.scheduler}")
    print(
        f"output notebooks and table in {result.out_dir}/ ({result.csv_path.name}, {result.parquet_path.name})"
    )
    for r in result.failed:
        print(
            f"FAILED run {r.index} {r.parameters}: {r.error}\n    see {r.output_path}",
            file=sys.stderr,
        )
    return 1 if result.failed else 0
