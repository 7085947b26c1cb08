"""``python -m benchmarks [name ...] [--quick] [--json FILE]``: run benchmarks, print one table."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import traceback
from pathlib import Path

from benchmarks.harness import Case, format_table

NOT_BENCHMARKS = {"harness", "load", "__main__"}


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name not in NOT_BENCHMARKS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(available())})"
    )
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    names = args.names or available()
    unknown = set(names) - set(available())
    if unknown:
        p.error(
            f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(available())}"
        )
    from prism_kernels.backend import tune_host_allocator

    # The same process-wide allocator setting for ours and the peers (see its docstring).
    tuned = tune_host_allocator()
    print(f"host allocator tuned: {tuned}", file=sys.stderr)
    cases: list[Case] = []
    failed = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            mod = importlib.import_module(f"benchmarks.{name}")
            cases.extend(mod.run(quick=args.quick))
        except Exception:
            failed.append(name)
            traceback.print_exc()
    print(format_table(cases))
    if args.json:
        args.json.write_text(json.dumps([c.as_dict() for c in cases], indent=2))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
