"""Portfolio optimiser against cvxpy (Clarabel, tight tolerances) on seeded random problems.

Tolerance: max |w_ours - w_cvxpy| <= 1e-4 (the brief's figure; the polished solutions
usually agree to ~1e-8). NumPy and PyTorch (CPU) results agree within 1e-8.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import threadpoolctl

from prism_kernels.backend import to_numpy
from prism_kernels.errors import Infeasible, InvalidInput
from prism_kernels.finance.optimize import efficient_frontier, optimize, solve_qp

TOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    # the machines are shared: one BLAS thread avoids oversubscription stalls
    with threadpoolctl.threadpool_limits(1):
        yield


def problem(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    T = 2 * n + 60
    k = max(2, n // 10)
    F = rng.normal(0, 0.01, size=(T, k)) @ rng.normal(0, 1, size=(k, n))
    R = F + rng.normal(0, 0.012, size=(T, n))
    return rng.normal(0.08, 0.06, n), np.cov(R, rowvar=False) * 252


def clarabel(prob: cp.Problem, tol: float = 1e-11) -> None:
    prob.solve(solver="CLARABEL", tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol, tol_ktratio=1e-9)
    assert prob.status == "optimal", prob.status


def ref(obj: str, mu, S, lb, ub, **kw) -> np.ndarray:
    n = mu.size
    Sw = cp.psd_wrap(S)
    if obj == "max_sharpe":
        y, k = cp.Variable(n), cp.Variable()
        cons = [(mu - kw.get("rf", 0.0)) @ y == 1, cp.sum(y) == k, y >= lb * k, y <= ub * k, k >= 0]
        clarabel(cp.Problem(cp.Minimize(cp.quad_form(y, Sw)), cons))
        return y.value / k.value
    w = cp.Variable(n)
    cons = [cp.sum(w) == 1, w >= lb, w <= ub]
    if obj == "min_volatility":
        f = cp.quad_form(w, Sw)
    elif obj == "target_return":
        f = cp.quad_form(w, Sw)
        cons.append(mu @ w >= kw["target_return"])
    elif obj == "max_quadratic_utility":
        f = 0.5 * kw["risk_aversion"] * cp.quad_form(w, Sw) - mu @ w
    elif obj == "target_volatility":
        f = -mu @ w
        cons.append(cp.quad_form(w, Sw) <= kw["target_volatility"] ** 2)
        clarabel(cp.Problem(cp.Minimize(f), cons), tol=1e-9)  # a cone program: looser gap
        return w.value
    clarabel(cp.Problem(cp.Minimize(f), cons))
    return w.value


def bounds_for(n: int) -> tuple[float, float]:
    return 0.0, min(1.0, 4.0 / n) if n > 4 else 1.0


def objective_kwargs(obj: str, mu: np.ndarray, ub: float) -> dict:
    if obj == "target_return":
        top = np.sort(mu)[::-1][: int(np.ceil(1 / ub))].mean()
        return {"target_return": 0.5 * (mu.mean() + top)}
    if obj == "max_quadratic_utility":
        return {"risk_aversion": 3.0}
    return {}


OBJS = ["min_volatility", "target_return", "max_quadratic_utility", "max_sharpe"]


def _check(obj: str, n: int, seed: int) -> None:
    mu, S = problem(n, seed)
    lo, hi = bounds_for(n)
    kw = objective_kwargs(obj, mu, hi)
    res = optimize(mu, S, obj, {"lower": lo, "upper": hi}, **kw)
    w_ref = ref(obj, mu, S, lo, hi, **kw)
    assert res.converged
    assert np.max(np.abs(res.weights - w_ref)) <= TOL
    assert abs(res.weights.sum() - 1) < 1e-9
    assert res.weights.min() >= lo - 1e-9 and res.weights.max() <= hi + 1e-9
    # reported statistics are consistent with the weights
    np.testing.assert_allclose(res.volatility, np.sqrt(res.weights @ S @ res.weights), rtol=1e-12)
    np.testing.assert_allclose(res.expected_return, mu @ res.weights, rtol=1e-12)
    np.testing.assert_allclose(res.sharpe, res.expected_return / res.volatility, rtol=1e-12)
    np.testing.assert_allclose(res.risk_contributions.sum(), res.volatility, rtol=1e-10)


@pytest.mark.parametrize("obj", OBJS)
@pytest.mark.parametrize("n", [10, 50, 200])
def test_matches_cvxpy(obj, n):
    _check(obj, n, seed=n)


@pytest.mark.slow
@pytest.mark.parametrize("obj", OBJS)
def test_matches_cvxpy_500(obj):
    _check(obj, 500, seed=500)


def test_long_short_and_risk_free_rate():
    mu, S = problem(30, 3)
    lo, hi = -0.1, 0.2
    res = optimize(mu, S, "max_sharpe", {"lower": lo, "upper": hi}, risk_free_rate=0.02)
    w_ref = ref("max_sharpe", mu, S, lo, hi, rf=0.02)
    assert np.max(np.abs(res.weights - w_ref)) <= TOL
    assert res.weights.min() < 0
    np.testing.assert_allclose(res.sharpe, (res.expected_return - 0.02) / res.volatility)
    res = optimize(mu, S, "min_volatility", {"lower": lo, "upper": hi})
    assert np.max(np.abs(res.weights - ref("min_volatility", mu, S, lo, hi))) <= TOL


def test_per_asset_bounds_and_sectors():
    n = 24
    mu, S = problem(n, 4)
    rng = np.random.default_rng(4)
    lo = rng.uniform(0, 0.02, n)
    hi = rng.uniform(0.08, 0.2, n)
    sectors = [f"s{i % 4}" for i in range(n)]
    slo, shi = {"s0": 0.3}, {"s1": 0.1, "s2": 0.2}
    cons = {"lower": lo, "upper": hi, "sectors": sectors, "sector_lower": slo, "sector_upper": shi}
    mask = {s: np.array([x == s for x in sectors]) for s in set(sectors)}
    for obj in ("min_volatility", "max_sharpe", "max_quadratic_utility"):
        res = optimize(mu, S, obj, cons, risk_aversion=2.0)
        if obj == "max_sharpe":
            y, k = cp.Variable(n), cp.Variable()
            c = [mu @ y == 1, cp.sum(y) == k, y >= lo * k, y <= hi * k, k >= 0]
            c += [
                cp.sum(y[mask["s0"]]) >= 0.3 * k,
                cp.sum(y[mask["s1"]]) <= 0.1 * k,
                cp.sum(y[mask["s2"]]) <= 0.2 * k,
            ]
            clarabel(cp.Problem(cp.Minimize(cp.quad_form(y, cp.psd_wrap(S))), c))
            w_ref = y.value / k.value
        else:
            w = cp.Variable(n)
            c = [cp.sum(w) == 1, w >= lo, w <= hi]
            c += [
                cp.sum(w[mask["s0"]]) >= 0.3,
                cp.sum(w[mask["s1"]]) <= 0.1,
                cp.sum(w[mask["s2"]]) <= 0.2,
            ]
            f = cp.quad_form(w, cp.psd_wrap(S))
            f = f if obj == "min_volatility" else f - mu @ w
            clarabel(cp.Problem(cp.Minimize(f), c))
            w_ref = w.value
        assert np.max(np.abs(res.weights - w_ref)) <= TOL, obj
        assert res.weights[mask["s0"]].sum() >= 0.3 - 1e-9
        assert res.weights[mask["s1"]].sum() <= 0.1 + 1e-9


def test_sector_mapper_by_name():
    mu, S = problem(6, 5)
    names = list("ABCDEF")
    cons = {
        "sector_mapper": dict(zip(names, "xxyyzz", strict=True)),
        "assets": names,
        "sector_upper": {"x": 0.05},
    }
    res = optimize(mu, S, "min_volatility", cons)
    assert res.weights[:2].sum() <= 0.05 + 1e-9


def test_turnover_limit():
    n = 20
    mu, S = problem(n, 6)
    w0 = np.zeros(n)
    w0[:4] = 0.25
    tau = 0.6
    res = optimize(mu, S, "min_volatility", {"upper": 0.3, "turnover": tau, "current_weights": w0})
    w = cp.Variable(n)
    clarabel(
        cp.Problem(
            cp.Minimize(cp.quad_form(w, cp.psd_wrap(S))),
            [cp.sum(w) == 1, w >= 0, w <= 0.3, cp.norm1(w - w0) <= tau],
        )
    )
    assert np.max(np.abs(res.weights - w.value)) <= TOL
    assert np.abs(res.weights - w0).sum() <= tau + 1e-8
    res = optimize(mu, S, "max_sharpe", {"upper": 0.3, "turnover": tau, "current_weights": w0})
    assert np.abs(res.weights - w0).sum() <= tau + 1e-8


def test_target_volatility_and_risk_cap():
    n = 30
    mu, S = problem(n, 7)
    mv = optimize(mu, S, "min_volatility", {"upper": 0.2})
    sigma = mv.volatility * 1.3
    res = optimize(mu, S, "target_volatility", {"upper": 0.2}, target_volatility=sigma)
    w_ref = ref("target_volatility", mu, S, 0.0, 0.2, target_volatility=sigma)
    assert np.max(np.abs(res.weights - w_ref)) <= TOL
    assert res.volatility <= sigma * (1 + 1e-8)
    # max_total_risk caps return-seeking objectives at the frontier point with that volatility
    ms = optimize(mu, S, "max_sharpe", {"upper": 0.2})
    cap = 0.5 * (ms.volatility + mv.volatility)
    capped = optimize(mu, S, "max_sharpe", {"upper": 0.2, "max_total_risk": cap})
    assert capped.volatility <= cap * (1 + 1e-8)
    assert (
        np.max(
            np.abs(
                capped.weights - ref("target_volatility", mu, S, 0.0, 0.2, target_volatility=cap)
            )
        )
        <= TOL
    )
    with pytest.raises(Infeasible) as e:
        optimize(mu, S, "min_volatility", {"upper": 0.2, "max_total_risk": 0.5 * mv.volatility})
    assert e.value.field == "constraints.max_total_risk"


def test_efficient_frontier_one_call():
    n = 40
    mu, S = problem(n, 8)
    f = efficient_frontier(mu, S, points=25, constraints={"upper": 0.15})
    w = to_numpy(f.weights)
    assert w.shape == (25, n) and bool(np.all(to_numpy(f.converged)))
    vols = to_numpy(f.volatilities)
    rets = to_numpy(f.returns)
    assert np.all(np.diff(vols) >= -1e-10) and np.all(np.diff(rets) > 0)
    for i in (0, 12, 24):
        w_ref = ref("target_return", mu, S, 0.0, 0.15, target_return=rets[i])
        assert np.max(np.abs(w[i] - w_ref)) <= TOL


def test_batch_equals_individual():
    mu, S = problem(15, 9)
    rng = np.random.default_rng(9)
    mus = mu + rng.normal(0, 0.02, size=(6, 15))
    batch = optimize(mus, S, "max_sharpe", {"upper": 0.3})
    assert batch.weights.shape == (6, 15)
    for b in range(6):
        single = optimize(mus[b], S, "max_sharpe", {"upper": 0.3})
        assert np.max(np.abs(batch.weights[b] - single.weights)) < 1e-8
    ra = np.array([0.5, 1.0, 5.0, 20.0])
    util = optimize(mu, S, "max_quadratic_utility", {"upper": 0.3}, risk_aversion=ra)
    for b, d in enumerate(ra):
        assert (
            np.max(
                np.abs(
                    util.weights[b] - ref("max_quadratic_utility", mu, S, 0.0, 0.3, risk_aversion=d)
                )
            )
            <= TOL
        )


def test_min_cvar_matches_cvxpy():
    rng = np.random.default_rng(10)
    R = rng.normal(0.0005, 0.01, size=(300, 8)) + rng.standard_t(3, size=(300, 1)) * 0.005
    res = optimize(None, None, "min_cvar", {"upper": 0.4}, scenarios=R, beta=0.95)
    w, a = cp.Variable(8), cp.Variable()
    loss = -R @ w
    f = a + cp.sum(cp.pos(loss - a)) / (0.05 * 300)
    clarabel(cp.Problem(cp.Minimize(f), [cp.sum(w) == 1, w >= 0, w <= 0.4]))
    assert abs(res.info["cvar"] - f.value) < 1e-7
    r = res.to_dict()
    assert abs(r["cvar"] - f.value) < 1e-7 and len(r["weights"]) == 8


def test_numpy_and_torch_agree(xp_name, to_xp):
    mu, S = problem(25, 11)
    cons = {"upper": 0.2, "sectors": ["a", "b"] * 12 + ["c"], "sector_upper": {"a": 0.4}}
    for obj, kw in [
        ("max_sharpe", {}),
        ("min_volatility", {}),
        ("target_return", {"target_return": float(np.median(mu))}),
        ("max_quadratic_utility", {"risk_aversion": 2.0}),
    ]:
        a = optimize(mu, S, obj, cons, **kw)
        b = optimize(to_xp(mu), to_xp(S), obj, cons, **kw)
        assert np.max(np.abs(to_numpy(b.weights) - a.weights)) < 1e-8, obj
        assert abs(float(b.sharpe) - float(a.sharpe)) < 1e-8
    fa = efficient_frontier(mu, S, points=10, constraints={"upper": 0.2})
    fb = efficient_frontier(to_xp(mu), to_xp(S), points=10, constraints={"upper": 0.2})
    assert np.max(np.abs(to_numpy(fb.weights) - to_numpy(fa.weights))) < 1e-8
    ra = optimize(None, S, "risk_parity")
    rb = optimize(None, to_xp(S), "risk_parity")
    assert np.max(np.abs(to_numpy(rb.weights) - ra.weights)) < 1e-10


def test_qp_solver_direct_box_problem():
    # a box-constrained QP with a closed-form solution: min 0.5|x - c|^2, 0 <= x <= 1
    c = np.array([[-1.0, 0.3, 2.0], [0.5, 1.5, -0.2]])
    sol = solve_qp(np.eye(3), -c, np.zeros(3), np.ones(3))
    np.testing.assert_allclose(sol.x, np.clip(c, 0, 1), atol=1e-10)
    assert bool(np.all(sol.polished))


# ----------------------------------------------------------------------------- infeasible / edge


def test_infeasible_inputs_name_the_field():
    mu, S = problem(10, 12)
    cases = [
        ({"upper": 0.05}, {}, "constraints.upper"),
        ({"lower": 0.2}, {}, "constraints.lower"),
        ({"lower": 0.3, "upper": 0.2}, {}, "constraints.lower"),
        (
            {"sectors": ["a"] * 5 + ["b"] * 5, "sector_upper": {"a": 0.3, "b": 0.3}},
            {},
            "constraints.sector_limits",
        ),
        (
            {
                "sectors": ["a"] * 5 + ["b"] * 5,
                "sector_lower": {"a": 0.5},
                "sector_upper": {"a": 0.4},
            },
            {},
            "constraints.sector_limits.a",
        ),
        (
            {"lower": 0.05, "sectors": ["a"] * 5 + ["b"] * 5, "sector_upper": {"a": 0.2}},
            {},
            "constraints.sector_limits.a",
        ),
        (
            {"upper": 0.3, "turnover": 0.1, "current_weights": np.eye(10)[0]},
            {},
            "constraints.turnover",
        ),
    ]
    for cons, kw, field in cases:
        with pytest.raises(Infeasible) as e:
            optimize(mu, S, "min_volatility", cons, **kw)
        assert e.value.field.startswith(field), (cons, e.value.field)
    with pytest.raises(Infeasible) as e:
        optimize(mu, S, "target_return", {"upper": 0.2}, target_return=float(mu.max()) + 0.01)
    assert e.value.field == "target_return"
    with pytest.raises(Infeasible) as e:
        optimize(-np.abs(mu) - 0.01, S, "max_sharpe")
    assert e.value.field == "expected_returns"
    with pytest.raises(Infeasible) as e:
        optimize(mu, S, "max_sharpe", risk_free_rate=float(mu.max()) + 0.01)
    assert e.value.field == "expected_returns"
    with pytest.raises(Infeasible) as e:
        optimize(mu, S, "target_volatility", target_volatility=1e-4)
    assert e.value.field == "target_volatility"


def test_one_asset():
    res = optimize(np.array([0.07]), np.array([[0.04]]), "max_sharpe")
    assert res.weights.shape == (1,) and abs(res.weights[0] - 1) < 1e-12
    assert abs(res.volatility - 0.2) < 1e-12 and abs(res.sharpe - 0.35) < 1e-12
    for obj in ("min_volatility", "max_quadratic_utility", "risk_parity"):
        assert abs(optimize(np.array([0.07]), np.array([[0.04]]), obj).weights[0] - 1) < 1e-10


def test_singular_covariance_is_rejected_naming_the_field():
    """One rule for a singular covariance (estimators.check_covariance): rejected, never
    silently regularised; the same rule the REST layer applies to a given covariance."""
    rng = np.random.default_rng(13)
    R = rng.normal(0, 0.01, size=(5, 10))  # 5 observations of 10 assets: rank 4
    S = np.cov(R, rowvar=False) * 252
    mu = rng.normal(0.08, 0.03, 10)
    for obj in ("min_volatility", "max_sharpe", "risk_parity"):
        with pytest.raises(InvalidInput, match="singular") as e:
            optimize(mu, S, obj, None if obj == "risk_parity" else {"upper": 0.3})
        assert e.value.field == "cov"
    with pytest.raises(InvalidInput, match="singular"):
        efficient_frontier(mu, S, 5)
    # a batch is rejected when any of its matrices is singular
    good = np.cov(rng.normal(0, 0.01, size=(60, 10)), rowvar=False) * 252
    with pytest.raises(InvalidInput, match="singular"):
        optimize(np.stack([mu, mu]), np.stack([good, S]), "min_volatility")
    assert optimize(mu, good, "min_volatility").converged


def test_max_return_matches_linprog():
    """max_return: the highest mu'w under bounds, budget and sectors (scipy's HiGHS LP on the
    same problem), batched over several return vectors."""
    from scipy.optimize import linprog

    mu, S = problem(8, 21)
    cons = {"lower": 0.02, "upper": 0.3, "sectors": list("aabbccdd"), "sector_upper": {"a": 0.35}}
    res = optimize(mu, S, "max_return", cons)
    A_ub = np.array([[1, 1, 0, 0, 0, 0, 0, 0]], float)
    ref = linprog(
        -mu, A_ub=A_ub, b_ub=[0.35], A_eq=np.ones((1, 8)), b_eq=[1], bounds=[(0.02, 0.3)] * 8
    )
    assert ref.status == 0
    assert float(res.expected_return) == pytest.approx(-ref.fun, abs=1e-10)
    assert res.objective == "max_return" and abs(res.weights.sum() - 1) < 1e-10
    batch = optimize(np.stack([mu, -mu]), S, "max_return", {"upper": 0.5})
    top = np.sort(mu)[::-1][:2].sum() * 0.5
    assert batch.expected_return[0] == pytest.approx(top, abs=1e-10)
    with pytest.raises(InvalidInput) as e:
        optimize(mu, S, "max_return", {"lower": -np.inf, "upper": np.inf})
    assert e.value.field == "constraints"


def test_invalid_inputs():
    mu, S = problem(5, 14)
    bad_mu = mu.copy()
    bad_mu[2] = np.nan
    checks = [
        (lambda: optimize(bad_mu, S, "max_sharpe"), "expected_returns"),
        (lambda: optimize(mu[:4], S, "max_sharpe"), "expected_returns"),
        (lambda: optimize(mu, S[:4], "max_sharpe"), "cov"),
        (lambda: optimize(mu, S + np.triu(np.ones((5, 5)), 1), "max_sharpe"), "cov"),
        (lambda: optimize(mu, -S, "min_volatility"), "cov"),
        (lambda: optimize(mu, np.where(np.eye(5) > 0, np.nan, S), "min_volatility"), "cov"),
        (lambda: optimize(mu, S, "magic"), "objective"),
        (lambda: optimize(mu, S, "target_return"), "target_return"),
        (lambda: optimize(mu, S, "max_quadratic_utility", risk_aversion=-1.0), "risk_aversion"),
        (lambda: optimize(mu, S, "min_volatility", {"upper": [0.5] * 4}), "constraints.upper"),
        (lambda: optimize(mu, S, "min_volatility", {"leverage": 2}), "constraints.leverage"),
        (
            lambda: optimize(mu, S, "min_volatility", {"turnover": 0.1}),
            "constraints.current_weights",
        ),
        (lambda: optimize(mu, S, "risk_parity", budgets=[1, 1, 1, 1, -1]), "budgets"),
        (lambda: efficient_frontier(mu, S, points=1), "points"),
    ]
    for fn, field in checks:
        with pytest.raises(InvalidInput) as e:
            fn()
        assert e.value.field == field, (field, e.value.field)


def test_objective_spellings_and_the_kernels_own_constraints():
    """The optimiser takes its own names (in snake_case or PascalCase) and its own constraint
    fields; the REST spellings (maximize_sharpe, min_position_size, sector_limits) are the
    request models' to translate (tests/finance/test_requests.py)."""
    mu, S = problem(6, 15)
    a = optimize(mu, S, "MaxSharpe", {"lower": 0.05, "upper": 0.4})
    b = optimize(mu, S, "max_sharpe", {"lower": 0.05, "upper": 0.4})
    np.testing.assert_allclose(a.weights, b.weights)
    c = optimize(mu, S, "MinVolatility", {"sectors": list("xxyyzz"), "sector_upper": {"x": 0.2}})
    assert c.objective == "min_volatility" and c.weights[:2].sum() <= 0.2 + 1e-9
    d = b.to_dict(symbols=list("ABCDEF"))
    assert set(d["weights_by_symbol"]) == set("ABCDEF") and isinstance(d["sharpe"], float)
    for name in ("maximize_sharpe", "minimize_risk", "custom"):
        with pytest.raises(InvalidInput) as e:
            optimize(mu, S, name)
        assert e.value.field == "objective"
    with pytest.raises(InvalidInput) as e:
        optimize(mu, S, "min_volatility", {"min_position_size": 0.05})
    assert e.value.field == "constraints.min_position_size"
