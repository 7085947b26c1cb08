"""Portfolio optimisation: ours (batched ADMM + active-set polish) against PyPortfolioOpt and cvxpy.

(a) max-Sharpe, long-only, at 50 / 200 / 500 assets: ours vs ``EfficientFrontier.max_sharpe``
    and vs the homogenised problem written in cvxpy directly (default solver). ``extra`` holds
    the max weight difference against cvxpy.
(b) a 100-point efficient frontier at 200 assets: ours in one call vs
    ``EfficientFrontier.efficient_return`` in a loop over the same target returns.

Data: 1000 synthetic daily returns from a factor model, Ledoit-Wolf covariance, annualised.
BLAS runs on ``PRISM_BENCH_BLAS_THREADS`` threads (default 1) for ours and the peers alike:
on a shared machine multi-threaded OpenBLAS stalls under oversubscription and the timings
stop meaning anything.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from benchmarks.harness import Case, timeit
from prism_kernels.finance.estimators import ledoit_wolf
from prism_kernels.finance.optimize import efficient_frontier, optimize


def _data(n: int, T: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = max(3, n // 20)
    F = rng.normal(0.0002, 0.01, size=(T, k)) @ rng.normal(0.5, 1.0, size=(k, n)) / np.sqrt(k)
    R = F + rng.normal(0.0003, 0.015, size=(T, n))
    mu = rng.normal(0.10, 0.08, n)  # annual expected returns (views), some below zero
    cov, _ = ledoit_wolf(R)
    return mu, cov


def _cvxpy_max_sharpe(mu: np.ndarray, S: np.ndarray) -> np.ndarray:
    import cvxpy as cp

    y, k = cp.Variable(mu.size), cp.Variable()
    prob = cp.Problem(
        cp.Minimize(cp.quad_form(y, cp.psd_wrap(S))), [mu @ y == 1, cp.sum(y) == k, y >= 0, k >= 0]
    )
    prob.solve()
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"cvxpy status {prob.status}")
    return y.value / k.value


def _pypfopt_max_sharpe(mu: np.ndarray, S: np.ndarray) -> np.ndarray:
    from pypfopt import EfficientFrontier

    ef = EfficientFrontier(mu, S)
    ef.max_sharpe(risk_free_rate=0.0)
    return np.asarray(list(ef.clean_weights(cutoff=0, rounding=None).values()))


def _peer(fn, repeat: int):
    """(seconds, result, error) for a peer call; a failing peer is reported, not raised."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn()
            return timeit(fn, repeat=repeat, warmup=0), out, ""
    except Exception as exc:  # noqa: BLE001 - the peer's failure is the result
        return (
            None,
            None,
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}",
        )


def run(quick: bool = False) -> list[Case]:
    import threadpoolctl

    threads = int(os.environ.get("PRISM_BENCH_BLAS_THREADS", "1"))
    with threadpoolctl.threadpool_limits(threads):
        return _run(quick, threads)


def _run(quick: bool, threads: int) -> list[Case]:
    cases: list[Case] = []
    sizes = [20] if quick else [50, 200, 500]
    repeat = 2 if quick else 3
    tag = f"BLAS threads={threads}"
    for n in sizes:
        mu, S = _data(n, seed=n)
        res = optimize(mu, S, "max_sharpe")
        ours = timeit(lambda mu=mu, S=S: optimize(mu, S, "max_sharpe"), repeat=repeat, warmup=0)
        cv_s, w_cv, cv_err = _peer(lambda mu=mu, S=S: _cvxpy_max_sharpe(mu, S), repeat)
        pf_s, w_pf, pf_err = _peer(lambda mu=mu, S=S: _pypfopt_max_sharpe(mu, S), repeat)
        extra = {"n": n, "converged": bool(res.converged), "sharpe": float(res.sharpe)}
        if w_cv is not None:
            extra["max_dw_vs_cvxpy"] = float(np.max(np.abs(res.weights - w_cv)))
        cases.append(
            Case(
                "finance_opt", f"max_sharpe n={n}", ours, "cvxpy", cv_s, cv_err or tag, dict(extra)
            )
        )
        extra_pf = dict(extra)
        if w_pf is not None:
            extra_pf["max_dw_vs_pypfopt"] = float(np.max(np.abs(res.weights - w_pf)))
        cases.append(
            Case(
                "finance_opt",
                f"max_sharpe n={n}",
                ours,
                "PyPortfolioOpt",
                pf_s,
                pf_err or tag,
                extra_pf,
            )
        )

    # (b) frontier in one call vs a loop of efficient_return
    n, points = (30, 10) if quick else (200, 100)
    mu, S = _data(n, seed=1000 + n)
    mv = optimize(mu, S, "min_volatility")
    r0, r1 = float(mv.expected_return), float(mu.max())
    targets = np.linspace(
        r0, r0 + 0.95 * (r1 - r0), points
    )  # below max(mu), which PyPortfolioOpt refuses
    front = efficient_frontier(mu, S, target_returns=targets)
    ours = timeit(
        lambda: efficient_frontier(mu, S, target_returns=targets), repeat=repeat, warmup=0
    )

    failures: list[str] = []
    ok_times: list[float] = []

    def loop() -> np.ndarray:
        from pypfopt import EfficientFrontier

        failures.clear()
        ok_times.clear()
        out = []
        for r in targets:
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ef = EfficientFrontier(mu, S)
                    ef.efficient_return(float(r))
                    out.append(list(ef.clean_weights(cutoff=0, rounding=None).values()))
                ok_times.append(time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001 - counted and reported in the note
                failures.append(f"{type(exc).__name__}: {str(exc)[:80]}")
                out.append([np.nan] * n)
        return np.asarray(out)

    pf_s, W_pf, err = _peer(loop, 1)
    extra = {"n": n, "points": points, "converged": bool(np.all(front.converged))}
    if W_pf is not None:
        ok = ~np.isnan(W_pf).any(axis=1)
        if ok.any():
            extra["max_dw_vs_pypfopt"] = float(np.max(np.abs(front.weights[ok] - W_pf[ok])))
        extra["peer_failed_points"] = int((~ok).sum())
        # the peer's time on the points it solved, scaled to all points: a ratio free of failures
        if ok_times:
            extra["ratio_ok_points_only"] = float(np.sum(ok_times) * points / len(ok_times) / ours)
        if failures:
            err = (
                f"peer failed at {len(failures)}/{points} points (timed anyway), e.g. {failures[0]}"
            )
    cases.append(
        Case(
            "finance_opt",
            f"frontier {points} pts n={n}",
            ours,
            "PyPortfolioOpt efficient_return loop",
            pf_s,
            err or tag,
            extra,
        )
    )
    return cases


if __name__ == "__main__":
    from benchmarks.harness import format_table

    print(format_table(run(quick=True)))
