"""Risk kernels against NumPy / pandas / SciPy references.

Tolerances: historical VaR/CVaR at horizon 1 are bit-identical to ``np.quantile`` and a
boolean-mask mean (for a (T, k) panel the CVaR within 1e-15 relative); parametric VaR/CVaR equal SciPy closed forms within 1e-10 (absolute, on
returns of order 1e-2) and numerical integrals within 1e-9; Monte Carlo VaR lies within three
standard errors of the parametric value; drawdown, beta, Sharpe, Sortino equal pandas/SciPy
within 1e-12; NumPy and PyTorch agree within 1e-12.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.finance import risk


@pytest.fixture
def panel(rng):
    return rng.standard_t(5, size=(750, 4)) * 0.01 + 0.0003


def _np_hist(r, c, method="linear"):
    q = np.quantile(r, 1 - c, method=method)
    return -q, -r[r <= q].mean()


# ----------------------------------------------------------------------------- quantile / historical


@pytest.mark.parametrize("method", risk.QUANTILE_METHODS)
@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
def test_quantile_bit_identical_to_numpy(rng, method, n):
    x = rng.normal(size=(n, 3))
    for q in (0.0, 0.01, 0.05, 0.1, 0.5, 0.9, 0.975, 1.0):
        np.testing.assert_array_equal(
            risk.quantile(x, q, method), np.quantile(x, q, axis=0, method=method)
        )


@pytest.mark.parametrize("method", ["linear", "lower", "inverted_cdf"])
@pytest.mark.parametrize("c", [0.9, 0.95, 0.99])
def test_historical_var_cvar_exact(panel, method, c):
    r = panel[:, 0]
    v, cv = risk.historical_var_cvar(r, c, method=method)
    rv, rcv = _np_hist(r, c, method)
    assert float(v) == rv
    assert float(cv) == rcv
    # panel (T, k): VaR exact, CVaR a vectorised masked mean (rounding only)
    V, CV = risk.historical_var_cvar(panel, c, method=method)
    for j in range(panel.shape[1]):
        rv, rcv = _np_hist(panel[:, j], c, method)
        assert V[j] == rv and abs(CV[j] - rcv) <= 1e-15 * abs(rcv)


def test_historical_horizon_uses_overlapping_sums(panel):
    r = panel[:, 1]
    h = 10
    sums = np.lib.stride_tricks.sliding_window_view(r, h).sum(axis=1)
    rv, rcv = _np_hist(sums, 0.95)
    v, cv = risk.historical_var_cvar(r, 0.95, horizon=h)
    # cumulative-sum differences vs direct window sums: rounding only
    assert abs(float(v) - rv) < 1e-14 and abs(float(cv) - rcv) < 1e-14


def test_historical_one_period():
    v, cv = risk.historical_var_cvar(np.array([-0.02]), 0.95)
    assert float(v) == 0.02 and float(cv) == 0.02


# ----------------------------------------------------------------------------- parametric


@pytest.mark.parametrize("c", [0.9, 0.95, 0.99, 0.999])
@pytest.mark.parametrize("h", [1, 10])
def test_normal_matches_scipy(c, h):
    mu, sigma = 0.0004, 0.012
    loc, scale = h * mu, math.sqrt(h) * sigma
    v, cv = risk.normal_var_cvar(mu, sigma, c, h)
    assert abs(v + stats.norm.ppf(1 - c, loc, scale)) < 1e-10
    z = stats.norm.ppf(c)
    assert abs(cv - (-loc + scale * stats.norm.pdf(z) / (1 - c))) < 1e-10
    q = stats.norm.ppf(1 - c, loc, scale)
    tail, _ = integrate.quad(lambda x: x * stats.norm.pdf(x, loc, scale), -np.inf, q, epsabs=1e-14)
    assert abs(cv + tail / (1 - c)) < 1e-9


@pytest.mark.parametrize("dof", [3.0, 4.5, 10.0])
@pytest.mark.parametrize("c", [0.95, 0.99])
def test_student_t_matches_scipy(dof, c):
    loc, scale, h = 0.0002, 0.008, 5
    v, cv = risk.student_t_var_cvar(loc, scale, dof, c, h)
    L, S = h * loc, math.sqrt(h) * scale
    assert abs(v + stats.t.ppf(1 - c, dof, L, S)) < 1e-10
    q = stats.t.ppf(1 - c, dof, L, S)
    tail, _ = integrate.quad(
        lambda x: x * stats.t.pdf(x, dof, L, S), -np.inf, q, epsabs=1e-14, limit=200
    )
    assert abs(cv + tail / (1 - c)) < 1e-9


def test_parametric_from_returns_and_fitted_t(panel):
    r = panel[:, 2]
    out = risk.parametric_var_cvar(r, 0.99, 1)
    assert abs(float(out["var"]) + stats.norm.ppf(0.01, r.mean(), r.std(ddof=1))) < 1e-10
    t = risk.parametric_var_cvar(r, 0.99, 1, distribution="t")
    dof, loc, scale = stats.t.fit(r)
    assert abs(t["dof"] - dof) < 1e-12
    assert abs(float(t["var"]) + stats.t.ppf(0.01, dof, loc, scale)) < 1e-10
    # given dof: the t is scaled to the sample standard deviation
    g = risk.parametric_var_cvar(r, 0.99, 1, distribution="student_t", dof=6)
    sd = r.std(ddof=1)
    assert abs(float(g["var"]) + stats.t.ppf(0.01, 6, r.mean(), sd * math.sqrt(4 / 6))) < 1e-10
    # fat tails: t VaR above normal VaR at 99.9 %
    n999 = risk.parametric_var_cvar(r, 0.999, distribution="normal")["var"]
    t999 = risk.parametric_var_cvar(r, 0.999, distribution="t", dof=4)["var"]
    assert float(t999) > float(n999)
    # panel: per column
    tp = risk.parametric_var_cvar(panel, 0.99, distribution="t")
    assert tp["var"].shape == (4,)
    assert abs(tp["var"][2] - float(t["var"])) < 1e-12


# ----------------------------------------------------------------------------- Monte Carlo


def _cov(rng, n):
    A = rng.normal(size=(n, n)) * 0.01
    return A @ A.T / n + np.diag(rng.uniform(1e-5, 4e-5, n))


@pytest.mark.parametrize("h,compound", [(1, True), (5, False)])
def test_monte_carlo_within_three_standard_errors(rng, h, compound):
    n, N, c = 6, 200_000, 0.99
    cov = _cov(rng, n)
    mu = rng.normal(0.0003, 0.0002, n)
    w = rng.dirichlet(np.ones(n))
    mc = risk.monte_carlo_var(w, mu, cov, c, h, n_paths=N, seed=7, compound=compound)
    m, s = h * w @ mu, math.sqrt(h * w @ cov @ w)
    pv, pcv = risk.normal_var_cvar(w @ mu, math.sqrt(w @ cov @ w), c, h)
    p = 1 - c
    se = math.sqrt(p * (1 - p) / N) / (stats.norm.pdf(stats.norm.ppf(p)) / s)
    assert abs(float(mc.var) - pv) < 3 * se
    # the reported (order-statistic) standard error agrees with the theoretical one within 20 %
    assert abs(float(mc.standard_error) / se - 1) < 0.2
    assert abs(float(mc.cvar) / pcv - 1) < 0.01
    assert float(mc.var_interval[0]) <= float(mc.var) <= float(mc.var_interval[1])
    del m


def test_monte_carlo_student_t_matches_parametric_t(rng):
    n, N, c, dof = 4, 200_000, 0.99, 5.0
    cov = _cov(rng, n)
    mu = np.zeros(n)
    w = np.full(n, 0.25)
    mc = risk.monte_carlo_var(w, mu, cov, c, 1, n_paths=N, seed=3, distribution="t", dof=dof)
    sd = math.sqrt(w @ cov @ w)
    scale = sd * math.sqrt((dof - 2) / dof)
    pv, _ = risk.student_t_var_cvar(0.0, scale, dof, c, 1)
    p = 1 - c
    se = math.sqrt(p * (1 - p) / N) / stats.t.pdf(stats.t.ppf(p, dof), dof, 0, scale)
    assert abs(float(mc.var) - pv) < 3 * se


def test_monte_carlo_seeded_chunk_invariant_and_batched(rng):
    n = 5
    cov = _cov(rng, n)
    mu = np.full(n, 1e-4)
    W = rng.dirichlet(np.ones(n), size=3)
    a = risk.monte_carlo_var(W, mu, cov, 0.95, n_paths=50_000, seed=11)
    b = risk.monte_carlo_var(W, mu, cov, 0.95, n_paths=50_000, seed=11, chunk_size=4096)
    np.testing.assert_allclose(a.var, b.var, rtol=0, atol=1e-15)  # same stream, chunked
    np.testing.assert_allclose(a.cvar, b.cvar, rtol=1e-13)
    one = risk.monte_carlo_var(W[1], mu, cov, 0.95, n_paths=50_000, seed=11)
    assert abs(float(one.var) - a.var[1]) < 1e-15
    other = risk.monte_carlo_var(W, mu, cov, 0.95, n_paths=50_000, seed=12)
    assert not np.allclose(a.var, other.var, rtol=0, atol=1e-12)


def test_monte_carlo_singular_covariance(rng):
    x = rng.normal(size=(3,)) * 0.01
    cov = np.outer(x, x)  # rank one
    w = np.array([0.2, 0.3, 0.5])
    mc = risk.monte_carlo_var(w, np.zeros(3), cov, 0.95, n_paths=20_000, seed=0)
    pv, _ = risk.normal_var_cvar(0.0, math.sqrt(w @ cov @ w), 0.95)
    assert abs(float(mc.var) / pv - 1) < 0.05


# ----------------------------------------------------------------------------- drawdown, beta, ratios


def _pd_max_drawdown(r):
    w = pd.concat([pd.Series([1.0]), (1 + pd.Series(r)).cumprod()], ignore_index=True)
    dd = w / w.cummax() - 1
    trough = int(dd.idxmin())
    peak = int(w.iloc[: trough + 1].idxmax())
    return -dd.min(), peak, trough, dd


def test_max_drawdown_vs_pandas(panel):
    for j in range(panel.shape[1]):
        r = panel[:, j] * 3
        ref, peak, trough, dd = _pd_max_drawdown(r)
        md = risk.max_drawdown(r)
        assert abs(float(md.value) - ref) < 1e-12
        assert (md.peak_index, md.trough_index) == (peak, trough)
        np.testing.assert_allclose(risk.drawdown_series(risk.wealth(r)), dd.to_numpy(), atol=1e-12)
        if md.recovery_index is not None:
            w = np.r_[1.0, np.cumprod(1 + r)]
            assert w[md.recovery_index] >= w[peak] and np.all(
                w[trough : md.recovery_index] < w[peak]
            )
    batch = risk.max_drawdown(panel * 3)
    assert np.allclose(
        batch.value, [_pd_max_drawdown(panel[:, j] * 3)[0] for j in range(4)], atol=1e-12
    )


def test_max_drawdown_dates_and_known_path():
    r = np.array([0.10, -0.20, -0.10, 0.05, 0.40, -0.01])
    dates = pd.bdate_range("2024-01-01", periods=6)
    md = risk.max_drawdown(r, dates=dates)
    # path: 1, 1.1, 0.88, 0.792, 0.8316, 1.16424, 1.1526 -> peak 1.1 at 1, trough at 3
    assert md.peak_index == 1 and md.trough_index == 3 and md.recovery_index == 5
    assert abs(md.value - (1 - 0.792 / 1.1)) < 1e-15
    assert md.peak_date == dates[0] and md.trough_date == dates[2] and md.recovery_date == dates[4]
    prices = np.array([100.0, 120.0, 90.0, 95.0])
    assert abs(float(risk.max_drawdown(prices=prices).value) - 0.25) < 1e-15
    up = risk.max_drawdown(np.array([0.01, 0.02]))
    assert float(up.value) == 0.0


def test_cummax_scan_matches_numpy(rng):
    x = rng.normal(size=(1000, 3))
    for T in (1, 2, 3, 7, 64, 1000):
        np.testing.assert_array_equal(
            risk._cummax_scan(risk.get_namespace(x), x[:T]), np.maximum.accumulate(x[:T])
        )


def test_beta_sharpe_sortino_volatility(panel, rng):
    bench = panel.mean(axis=1)
    b = risk.beta(panel, bench)
    for j in range(4):
        assert abs(b[j] - stats.linregress(bench, panel[:, j]).slope) < 1e-12
    s = pd.Series(panel[:, 0])
    assert abs(float(risk.volatility(s, 252)) - s.std() * math.sqrt(252)) < 1e-12
    rf = 0.0001
    assert (
        abs(float(risk.sharpe_ratio(s, rf, 252)) - (s - rf).mean() / s.std() * math.sqrt(252))
        < 1e-12
    )
    down = np.minimum(s - rf, 0)
    ref_sortino = (s - rf).mean() / math.sqrt((down**2).mean()) * math.sqrt(252)
    assert abs(float(risk.sortino_ratio(s, rf, 252)) - ref_sortino) < 1e-12
    assert math.isinf(float(risk.sortino_ratio(np.array([0.01, 0.02]))))


# ----------------------------------------------------------------------------- component VaR


def test_component_var_sums_and_is_euler_gradient(rng):
    n = 6
    cov = _cov(rng, n)
    mu = rng.normal(0.0003, 0.0002, n)
    w = rng.dirichlet(np.ones(n))
    cv = risk.component_var(w, cov, 0.99, 10, mu=mu)

    def var(wv):
        return risk.normal_var_cvar(wv @ mu, math.sqrt(wv @ cov @ wv), 0.99, 10)[0]

    assert abs(float(cv.var) - var(w)) < 1e-14
    assert abs(float(np.sum(cv.component)) - var(w)) < 1e-14
    assert abs(float(np.sum(cv.percent)) - 1) < 1e-12
    eps = 1e-7
    grad = np.array([(var(w + eps * e) - var(w - eps * e)) / (2 * eps) for e in np.eye(n)])
    np.testing.assert_allclose(cv.marginal, grad, rtol=1e-6, atol=1e-10)
    W = rng.dirichlet(np.ones(n), size=4)
    cb = risk.component_var(W, cov, 0.95, distribution="t", dof=5)
    for i in range(4):
        ci = risk.component_var(W[i], cov, 0.95, distribution="t", dof=5)
        np.testing.assert_allclose(cb.component[i], ci.component, rtol=1e-13)
        k = stats.t.ppf(0.95, 5) * math.sqrt(3 / 5)
        assert abs(float(np.sum(ci.component)) - k * math.sqrt(W[i] @ cov @ W[i])) < 1e-14


# ----------------------------------------------------------------------------- report


def test_risk_report_consistent_and_json(panel):
    w = np.array([0.4, 0.3, 0.2, 0.1])
    df = pd.DataFrame(
        panel, columns=list("ABCD"), index=pd.bdate_range("2020-01-01", periods=len(panel))
    )
    rep = risk.risk_report(w, df, confidence=0.99, horizon=5, notional=1e6, mc_paths=20_000)
    json.dumps(rep, allow_nan=False)
    rp = panel @ w
    hv, hc = risk.historical_var_cvar(rp, 0.99, 5)
    # the DataFrame's column-major copy may take another BLAS path than panel @ w: 1 ulp
    assert rep["var"]["historical"] == pytest.approx(float(hv), rel=1e-14)
    assert rep["cvar"]["historical"] == pytest.approx(float(hc), rel=1e-14)
    assert abs(rep["var_amount"]["historical"] - 1e6 * float(hv)) < 1e-6
    pv = risk.normal_var_cvar(rp.mean(), rp.std(ddof=1), 0.99, 5)[0]
    assert abs(rep["var"]["parametric_normal"] - pv) < 1e-12
    assert abs(sum(rep["component_var"]) - rep["var"]["parametric_normal"]) < 1e-12
    assert abs(rep["max_drawdown"]["value"] - _pd_max_drawdown(rp)[0]) < 1e-12
    assert rep["max_drawdown"]["trough_date"] is not None
    assert abs(rep["beta"] - stats.linregress(panel.mean(axis=1), rp).slope) < 1e-12
    np.testing.assert_allclose(rep["correlation_matrix"], np.corrcoef(panel.T), atol=1e-12)
    assert rep["asset_names"] == list("ABCD")
    assert rep["monte_carlo"]["paths"] == 20_000
    # covariance-only report: history figures are absent, not invented
    cov = np.cov(panel.T)
    rc = risk.risk_report(w, cov=cov, mc_paths=0, dof=5)
    assert rc["var"]["historical"] is None and rc["max_drawdown"] is None and rc["beta"] is None
    assert rc["var"]["parametric_t"] is not None
    json.dumps(rc, allow_nan=False)


# ----------------------------------------------------------------------------- backends


def test_numpy_and_torch_agree(xp, to_xp, panel, rng):
    R = to_xp(panel)
    w = np.array([0.4, 0.3, 0.2, 0.1])
    for got, ref in [
        (risk.historical_var_cvar(R, 0.95, 3), risk.historical_var_cvar(panel, 0.95, 3)),
        (risk.parametric_var_cvar(R, 0.99)["var"], risk.parametric_var_cvar(panel, 0.99)["var"]),
        (risk.volatility(R, 252), risk.volatility(panel, 252)),
        (risk.beta(R, to_xp(panel[:, 0])), risk.beta(panel, panel[:, 0])),
        (risk.sharpe_ratio(R, 0.0, 252), risk.sharpe_ratio(panel, 0.0, 252)),
        (risk.sortino_ratio(R), risk.sortino_ratio(panel)),
        (risk.drawdown_series(risk.wealth(R)), risk.drawdown_series(risk.wealth(panel))),
        (
            risk.component_var(to_xp(w), to_xp(np.cov(panel.T)), 0.99).component,
            risk.component_var(w, np.cov(panel.T), 0.99).component,
        ),
    ]:
        got = [got] if not isinstance(got, tuple) else got
        ref = [ref] if not isinstance(ref, tuple) else ref
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(to_numpy(g), r, rtol=1e-12, atol=1e-15)
    md = risk.max_drawdown(R[:, 0])
    ref = risk.max_drawdown(panel[:, 0])
    assert abs(float(md.value) - float(ref.value)) < 1e-12 and md.trough_index == ref.trough_index
    cov = np.cov(panel.T)
    mc = risk.monte_carlo_var(
        to_xp(w), to_xp(panel.mean(0)), to_xp(cov), 0.99, n_paths=100_000, seed=1
    )
    pv, _ = risk.normal_var_cvar(panel.mean(0) @ w, math.sqrt(w @ cov @ w), 0.99)
    s = math.sqrt(w @ cov @ w)
    se = math.sqrt(0.01 * 0.99 / 100_000) / (stats.norm.pdf(stats.norm.ppf(0.01)) / s)
    assert abs(float(mc.var) - pv) < 3 * se


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize(
    "call,field",
    [
        (lambda: risk.historical_var(np.array([])), "returns"),
        (lambda: risk.historical_var(np.array([0.01, np.nan])), "returns"),
        (lambda: risk.historical_var(np.array([0.01, np.inf])), "returns"),
        (lambda: risk.historical_var(np.zeros((3, 2, 2))), "returns"),
        (lambda: risk.historical_var(np.zeros(5), confidence=1.2), "confidence"),
        (lambda: risk.historical_var(np.zeros(5), confidence=0), "confidence"),
        (lambda: risk.historical_var(np.zeros(5), horizon=0), "horizon"),
        (lambda: risk.historical_var(np.zeros(5), horizon=2.5), "horizon"),
        (lambda: risk.historical_var(np.zeros(5), horizon=6), "horizon"),
        (lambda: risk.historical_var(np.zeros(5), method="bogus"), "method"),
        (lambda: risk.volatility(np.array([0.01])), "returns"),
        (lambda: risk.beta(np.zeros(5), np.ones(4)), "benchmark"),
        (lambda: risk.beta(np.arange(5.0), np.ones(5)), "benchmark"),
        (lambda: risk.parametric_var_cvar(np.arange(5.0), distribution="cauchy"), "distribution"),
        (lambda: risk.parametric_var_cvar(np.arange(5.0), distribution="t", dof=2), "dof"),
        (lambda: risk.monte_carlo_var(np.ones(2) / 2, np.zeros(2), np.eye(3)), "mu"),
        (lambda: risk.monte_carlo_var(np.ones(3) / 3, np.zeros(2), np.eye(2)), "weights"),
        (lambda: risk.monte_carlo_var(np.ones(2) / 2, np.zeros(2), np.ones((2, 3))), "cov"),
        (lambda: risk.monte_carlo_var(np.ones(2) / 2, np.zeros(2), -np.eye(2)), "cov"),
        (
            lambda: risk.monte_carlo_var(np.ones(2) / 2, np.zeros(2), np.eye(2), n_paths=10),
            "n_paths",
        ),
        (lambda: risk.component_var(np.ones(3), np.eye(2)), "weights"),
        (lambda: risk.component_var(np.zeros(2), np.eye(2)), "weights"),
        (lambda: risk.risk_report(np.ones(3) / 3, np.zeros((10, 4))), "weights"),
        (lambda: risk.risk_report(np.ones(2) / 2), "returns"),
        (lambda: risk.max_drawdown(prices=np.array([1.0, -1.0])), "values"),
        (lambda: risk.max_drawdown(), "returns"),
    ],
)
def test_invalid_inputs_name_the_field(call, field):
    with pytest.raises(InvalidInput) as e:
        call()
    assert e.value.field == field


@pytest.mark.parametrize("seed", [-1, 2**64, 0.5])
def test_monte_carlo_bad_seed_is_invalid_input(seed):
    cov = np.array([[0.0004, 0.0], [0.0, 0.0009]])
    with pytest.raises(InvalidInput) as e:
        risk.monte_carlo_var(np.array([0.5, 0.5]), np.zeros(2), cov, n_paths=1000, seed=seed)
    assert e.value.field == "seed"
