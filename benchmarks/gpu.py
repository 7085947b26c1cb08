"""Ours on the GPU against ours on NumPy, same data, one process (``python -m benchmarks gpu``).

Every case runs on each accelerator library present, side by side (one row each, the
library and device in the note): CuPy when a CUDA device answers and PyTorch when it is
installed (on the GPU when it sees one, else its CPU path, and the note says so).
``PRISM_BACKEND=cupy`` or ``torch`` restricts the run to that one. Each row also reports
the largest difference from NumPy; with both libraries, PyTorch's rows add
``cupy_over_torch`` (CuPy's time over PyTorch's for the same call). With neither library
there is nothing to time: no rows, and a line on stderr says why. Needs no peer library, so
it runs on a bare GPU machine.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from benchmarks.harness import Case, timeit
from prism_kernels import backend as B


def _accelerators() -> list[str]:
    """The accelerator libraries to time, in table order (see the module docstring)."""
    name = os.environ.get("PRISM_BACKEND", "").lower()
    if name in ("cupy", "torch"):
        return [name]
    found = ["cupy"] if B._cupy_available() else []
    if "torch" in B.available_backends():
        found.append("torch")
    return found


def _case(label: str, fn, args_np: tuple, acc: str, t_np: float, repeat: int = 5) -> Case:
    args_acc = tuple(B.asarray(a, backend=acc) if isinstance(a, np.ndarray) else a for a in args_np)
    sync = lambda: B.synchronize(args_acc[0])  # noqa: E731
    t_acc = timeit(lambda: fn(*args_acc), repeat=repeat, sync=sync)
    out_np, out_acc = fn(*args_np), fn(*args_acc)
    diff = float(np.max(np.abs(B.to_numpy(out_acc) - B.to_numpy(out_np))))
    device = B.describe(acc)["device"]
    # Report the accelerator as "ours" and NumPy as the peer: ratio = speed-up over NumPy.
    return Case(
        "gpu",
        f"{label} [{acc}]",
        t_acc,
        "prism on numpy (cpu)",
        t_np,
        note=f"{acc} on {device}",
        extra={"max_abs_diff_vs_numpy": diff},
    )


def _cases(label: str, fn, args_np: tuple, accs: list[str], repeat: int = 5) -> list[Case]:
    """One row per accelerator library for the same call (NumPy timed once for all)."""
    t_np = timeit(lambda: fn(*args_np), repeat=repeat)
    rows = [_case(label, fn, args_np, acc, t_np, repeat) for acc in accs]
    by = {acc: row for acc, row in zip(accs, rows, strict=True)}
    if "cupy" in by and "torch" in by:
        by["torch"].extra["cupy_over_torch"] = by["cupy"].ours_s / by["torch"].ours_s
    return rows


def run(quick: bool = False) -> list[Case]:
    from prism_kernels.finance.optimize import efficient_frontier
    from prism_kernels.finance.risk import monte_carlo_var
    from prism_kernels.pwsa.kalman import kf_predict, kf_update
    from prism_kernels.pwsa.models import ConstantVelocity

    accs = _accelerators()
    if not accs:
        print(
            "gpu: neither CuPy (with a CUDA device) nor PyTorch here: nothing to time",
            file=sys.stderr,
        )
        return []
    rng = np.random.default_rng(0)
    cases: list[Case] = []

    n_tracks = 20_000 if quick else 1_000_000
    F, Q, _ = ConstantVelocity(5.0).matrices(1.0)
    H = np.eye(3, 6)
    R = np.broadcast_to(25 * np.eye(3), (n_tracks, 3, 3)).copy()
    x = rng.normal(size=(n_tracks, 6)) * 100
    P = np.broadcast_to(np.diag([100.0] * 3 + [25.0] * 3), (n_tracks, 6, 6)).copy()
    z = x[:, :3] + rng.normal(size=(n_tracks, 3))

    def kalman(x, P, F, Q, z, H, R):
        xp_, Pp = kf_predict(x, P, F, Q, validate=False)
        return kf_update(xp_, Pp, z, H, R, validate=False).x

    cases += _cases(
        f"kalman predict+update, {n_tracks} tracks", kalman, (x, P, F, Q, z, H, R), accs
    )

    n = 50 if quick else 500
    A = rng.normal(size=(n, n)) / np.sqrt(n)
    cov = 0.04 * (A @ A.T + 0.2 * np.eye(n))
    mu = rng.uniform(0.02, 0.15, n)
    points = 20 if quick else 100
    cases += _cases(
        f"efficient frontier, {points} points, {n} assets",
        lambda mu, cov: efficient_frontier(mu, cov, points=points).weights,
        (mu, cov),
        accs,
        repeat=3,
    )

    k = 20 if quick else 100
    paths = 100_000 if quick else 1_000_000
    Ak = rng.normal(size=(k, k)) / np.sqrt(k)
    covk = 1e-4 * (Ak @ Ak.T + 0.5 * np.eye(k))
    wk = np.full(k, 1.0 / k)
    var_rows = _cases(
        f"Monte Carlo VaR, {paths} paths, {k} assets",
        lambda w, m, c: monte_carlo_var(w, m, c, 0.99, 1, n_paths=paths, seed=1).var,
        (wk, np.zeros(k), covk),
        accs,
        repeat=3,
    )
    # Different random streams per backend: the VaR agrees within Monte Carlo error, not bitwise.
    for row in var_rows:
        row.extra["note"] = "different RNG streams per backend"
    return cases + var_rows
