"""GARCH(1,1) on many symbols: ours in one batched call against ``arch`` looped, same data.

Data: seeded GARCH(1,1) processes with normal errors and known parameters drawn per symbol
(``mu`` in [-0.05, 0.05], ``omega`` in [0.01, 0.1], ``alpha`` in [0.03, 0.15], ``beta`` so that
``alpha + beta`` is in [0.85, 0.98]), in percent-return units, 500 symbols x 1,000 days
(``--quick``: 50 x 500); and GJR-GARCH(1,1,1) (``gamma`` in [0.05, 0.15]) on 100 x 1,000
(``--quick``: 20 x 500).

Ours: :func:`prism_kernels.timeseries.volatility.garch_fit` on the whole ``(B, n)`` batch
(compiled likelihood with its analytic gradient, SciPy SLSQP per symbol, arch's backcast,
bounds, constraints and starting values). Peer: ``arch_model(y, vol="GARCH", p=1, o=0, q=1,
mean="Constant", dist="normal", rescale=False).fit(disp="off")`` in a Python loop, arch's
defaults, which also compute robust standard errors (ours does not: the note says so).
``extra``: the largest absolute parameter difference over all symbols and parameters, how
many symbols differ by more than 1e-3, and the largest log-likelihood difference
(positive: ours higher) and on how many symbols arch's likelihood is higher. Where the two
differ by more than 1e-3, arch has stopped on a boundary (``alpha`` or ``beta`` = 0) at a lower
likelihood; ours restarts there (see :func:`~prism_kernels.timeseries.volatility.garch_fit`).

Both are timed once after a warm-up on a few symbols (numba compiled, arch imported), on one
BLAS thread.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from benchmarks.harness import Case
from prism_kernels.timeseries.volatility import garch_fit


def simulate_batch(
    B: int, n: int, seed: int = 2026, burn: int = 500, o: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded GARCH(1,1) (``o=1``: GJR-GARCH(1,1,1), ``gamma`` in [0.05, 0.15]) returns
    (B, n) and their true parameters (B, 4 + o): mu, omega, alpha, (gamma,) beta."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(-0.05, 0.05, B)
    omega = rng.uniform(0.01, 0.1, B)
    alpha = rng.uniform(0.03, 0.15, B)
    gamma = rng.uniform(0.05, 0.15, B) if o else np.zeros(B)
    beta = rng.uniform(0.85, 0.98, B) - alpha - gamma / 2.0
    z = rng.standard_normal((B, n + burn))
    s = omega / (1.0 - alpha - gamma / 2.0 - beta)
    e = np.empty((B, n + burn))
    for t in range(n + burn):
        e[:, t] = np.sqrt(s) * z[:, t]
        s = omega + (alpha + gamma * (e[:, t] < 0)) * e[:, t] ** 2 + beta * s
    cols = [mu, omega, alpha] + ([gamma] if o else []) + [beta]
    return mu[:, None] + e[:, burn:], np.stack(cols, axis=1)


def _arch_loop(Y: np.ndarray, o: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from arch import arch_model

    P = np.empty((Y.shape[0], 4 + o))
    ll = np.empty(Y.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(Y.shape[0]):
            res = arch_model(
                Y[i], vol="GARCH", p=1, o=o, q=1, mean="Constant", dist="normal", rescale=False
            ).fit(disp="off")
            P[i] = res.params.values
            ll[i] = res.loglikelihood
    return P, ll


def _case(B: int, n: int, o: int = 0) -> list[Case]:
    Y, _ = simulate_batch(B, n, o=o)
    garch_fit(Y[:2], o=o)  # warm-up: compile / load the numba kernels
    _arch_loop(Y[:2], o)
    t0 = time.perf_counter()
    fit = garch_fit(Y, o=o)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    P, ll = _arch_loop(Y, o)
    peer = time.perf_counter() - t0
    d = np.abs(np.asarray(fit.params) - P)
    return [
        Case(
            "timeseries_garch",
            f"{'GJR-GARCH(1,1,1)' if o else 'GARCH(1,1)'} MLE, {B} symbols x {n} days",
            ours,
            "arch (looped)",
            peer,
            note="one batched call vs a loop of arch fits (arch also computes standard errors)",
            extra={
                "max_param_diff": float(d.max()),
                "symbols_over_1e-3": int((d.max(axis=1) > 1e-3).sum()),
                "max_loglik_diff": float(np.max(np.asarray(fit.loglik) - ll)),
                "min_loglik_diff": float(np.min(np.asarray(fit.loglik) - ll)),
                "symbols_arch_higher_1e-6": int((ll - np.asarray(fit.loglik) > 1e-6).sum()),
                "converged": int(np.asarray(fit.converged).sum()),
            },
        )
    ]


def run(quick: bool = False) -> list[Case]:
    import threadpoolctl

    threads = int(os.environ.get("PRISM_BENCH_BLAS_THREADS", "1"))
    with threadpoolctl.threadpool_limits(threads):
        if quick:
            return _case(50, 500) + _case(20, 500, o=1)
        return _case(500, 1000) + _case(100, 1000, o=1)


if __name__ == "__main__":  # pragma: no cover
    from benchmarks.harness import format_table

    print(format_table(run(quick=bool(os.environ.get("QUICK")))))
