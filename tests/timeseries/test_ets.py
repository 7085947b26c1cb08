"""ETS: the log-likelihood at given parameters against statsmodels ``ETSModel.loglike``
(1e-6 relative) and StatsForecast's R-ported recursion; the fitted optimum against
StatsForecast ``AutoETS`` for the same model; the automatic choice; the intervals (closed
form and coverage on seeded paths); PyTorch equal to NumPy; bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import norm
from statsforecast.ets import pegelsresid_C
from statsforecast.models import AutoETS
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import ets as E
from prism_kernels.timeseries.ets import Spec, ets, ets_loglike, fit_spec

AIRPASSENGERS = np.array(
    [
        112,
        118,
        132,
        129,
        121,
        135,
        148,
        148,
        136,
        119,
        104,
        118,
        115,
        126,
        141,
        135,
        125,
        149,
        170,
        170,
        158,
        133,
        114,
        140,
        145,
        150,
        178,
        163,
        172,
        178,
        199,
        199,
        184,
        162,
        146,
        166,
        171,
        180,
        193,
        181,
        183,
        218,
        230,
        242,
        209,
        191,
        172,
        194,
        196,
        196,
        236,
        235,
        229,
        243,
        264,
        272,
        237,
        211,
        180,
        201,
        204,
        188,
        235,
        227,
        234,
        264,
        302,
        293,
        259,
        229,
        203,
        229,
        242,
        233,
        267,
        269,
        270,
        315,
        364,
        347,
        312,
        274,
        237,
        278,
        284,
        277,
        317,
        313,
        318,
        374,
        413,
        405,
        355,
        306,
        271,
        306,
        315,
        301,
        356,
        348,
        355,
        422,
        465,
        467,
        404,
        347,
        305,
        336,
        340,
        318,
        362,
        348,
        363,
        435,
        491,
        505,
        404,
        359,
        310,
        337,
        360,
        342,
        406,
        396,
        420,
        472,
        548,
        559,
        463,
        407,
        362,
        405,
        417,
        391,
        419,
        461,
        472,
        535,
        622,
        606,
        508,
        461,
        390,
        432,
    ],
    dtype=float,
)  # Box & Jenkins (1976), series G


def _seasonal(rng, B, n, m=4):
    t = np.arange(n)
    return np.stack(
        [
            20 + 0.3 * t + 3 * np.sin(2 * np.pi * t / m + rng.uniform(0, 6)) + rng.normal(0, 1, n)
            for _ in range(B)
        ]
    )


def _kw(code, m, mult_season):
    trend = code[1] != "N"
    season = code[-1] != "N"
    s0 = np.array([1.05, 1.1, 0.95, 0.9]) if mult_season else np.array([1.0, 2.0, -1.0, -2.0])
    return dict(
        alpha=0.3,
        beta=0.1 if trend else None,
        gamma=0.2 if season else None,
        phi=0.9 if "d" in code else None,
        initial_level=19.0,
        initial_trend=0.25 if trend else None,
        initial_seasonal=s0 if season else None,
        season_length=m,
    )


ADDITIVE_SEASON_MODELS = [
    "ANN",
    "AAN",
    "AAdN",
    "ANA",
    "AAA",
    "AAdA",
    "MNN",
    "MAN",
    "MAdN",
    "MNA",
    "MAA",
    "MAdA",
]


@pytest.mark.parametrize("code", ADDITIVE_SEASON_MODELS)
def test_loglike_equals_statsmodels(rng, code):
    """At the same parameters our log-likelihood equals statsmodels ETSModel.loglike within
    1e-6 relative (observed ~1e-15) for every model without a multiplicative season."""
    y = _seasonal(rng, 3, 60)
    m = 4
    kw = _kw(code, m, False)
    ours = to_numpy(ets_loglike(y, code, **kw))
    for i in range(3):
        trend = "add" if code[1] == "A" else None
        season = "add" if code[-1] == "A" else None
        mod = ETSModel(
            y[i],
            error="add" if code[0] == "A" else "mul",
            trend=trend,
            damped_trend="d" in code,
            seasonal=season,
            seasonal_periods=m if season else None,
        )
        p = [kw["alpha"]]
        p += [kw["beta"]] if trend else []
        p += [kw["gamma"]] if season else []
        p += [kw["phi"]] if "d" in code else []
        p += [kw["initial_level"]]
        p += [kw["initial_trend"]] if trend else []
        p += list(kw["initial_seasonal"]) if season else []
        ref = mod.loglike(np.array(p))
        assert ours[i] == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("code", ["ANM", "AAM", "AAdM", "MNM", "MAM", "MAdM", "AAdA", "MNN"])
def test_loglike_equals_statsforecast_recursion(rng, code):
    """statsmodels' multiplicative season is the Holt-Winters component form (divides by the
    new level), not the Hyndman et al. state-space model; R's ets and StatsForecast's port of
    it are, and ours equals their likelihood within 1e-9 relative for every model."""
    y = _seasonal(rng, 2, 48)
    m = 4
    kw = _kw(code, m, code[-1] == "M")
    ours = to_numpy(ets_loglike(y, code, **kw))
    n = y.shape[1]
    for i in range(2):
        init = [kw["initial_level"]]
        init += [kw["initial_trend"]] if kw["initial_trend"] is not None else []
        init += list(kw["initial_seasonal"]) if kw["initial_seasonal"] is not None else []
        _, _, _, lik = pegelsresid_C(
            y[i],
            m if code[-1] != "N" else 1,
            np.array(init),
            code[0],
            code[1],
            code[-1],
            "d" in code,
            0.3,
            0.1,
            0.2,
            0.9,
            3,
        )
        ref = -0.5 * lik - 0.5 * n * (np.log(2 * np.pi / n) + 1)  # R's lik drops the constant
        assert ours[i] == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("code", ["AAdA", "MAdM", "MNN"])
def test_numba_kernel_and_torch_equal_array_api(rng, to_xp, code):
    y = _seasonal(rng, 4, 40)
    kw = _kw(code, 4, code[-1] == "M")
    ref = to_numpy(ets_loglike(y, code, **kw))
    np.testing.assert_allclose(to_numpy(ets_loglike(to_xp(y), code, **kw)), ref, rtol=1e-12)
    spec = Spec(code[0], code[1], "d" in code, code[-1], 4 if code[-1] != "N" else 1)
    cols = {
        "alpha": np.full(4, 0.3),
        "beta": np.full(4, 0.1),
        "gamma": np.full(4, 0.2),
        "phi": np.full(4, 0.9),
        "l0": np.full(4, 19.0),
        "b0": np.full(4, 0.25),
        "s0": np.tile(kw["initial_seasonal"], (4, 1)) if code[-1] != "N" else None,
    }
    if code[1] == "N":
        cols.pop("beta"), cols.pop("b0"), cols.pop("phi")
    if code[-1] == "N":
        cols.pop("gamma"), cols.pop("s0")
    np.testing.assert_allclose(E._loglik_host(y, cols, spec, True), ref, rtol=1e-12)
    np.testing.assert_allclose(E._loglik_host(y, cols, spec, False), ref, rtol=1e-12)


@pytest.mark.parametrize(
    "spec",
    [Spec("A", "A", True, "A", 4), Spec("M", "N", False, "M", 4), Spec("A", "N", False, "N", 1)],
)
def test_compiled_fit_equals_numpy_lockstep_fit(rng, spec):
    """The compiled per-series Nelder-Mead takes the same steps as the NumPy lock-step one:
    same iteration counts, log-likelihoods within 1e-9 relative."""
    y = _seasonal(rng, 5, 40)
    a = fit_spec(y, spec, maxiter=300, use_numba=True)
    b = fit_spec(y, spec, maxiter=300, use_numba=False)
    np.testing.assert_array_equal(a.iterations, b.iterations)
    np.testing.assert_allclose(a.loglik, b.loglik, rtol=1e-9)
    for k in a.cols:
        np.testing.assert_allclose(a.cols[k], b.cols[k], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "model,spec",
    [
        ("ANN", Spec("A", "N", False, "N", 1)),
        ("AAN", Spec("A", "A", False, "N", 1)),
        ("ANA", Spec("A", "N", False, "A", 12)),
        ("MAM", Spec("M", "A", False, "M", 12)),
    ],
)
def test_fit_at_least_as_good_as_statsforecast(model, spec):
    """For the same model our maximum likelihood is never below StatsForecast's (their
    Nelder-Mead stops earlier on seasonal models: ours is 5-120 log-lik units higher there);
    where both reach the same optimum (ANN, AAN) forecasts agree within 2e-3 relative."""
    rng = np.random.default_rng(1)
    n = 120
    t = np.arange(n)
    Y = np.stack(
        [
            50
            + 0.2 * t * rng.uniform(0, 1)
            + 5 * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 6))
            + np.cumsum(rng.normal(0, 1, n))
            for _ in range(6)
        ]
    )
    fit = fit_spec(Y, spec)
    f = ets(Y, 12, season_length=12, model=model, damped=False)
    const = n * (np.log(2 * np.pi / n) + 1)
    for i in range(Y.shape[0]):
        sf = AutoETS(season_length=12, model=model, damped=False).fit(Y[i])
        ll_sf = sf.model_["loglik"] - 0.5 * const
        assert fit.loglik[i] >= ll_sf - 1e-6
        assert f.models[i]["loglik"] == pytest.approx(fit.loglik[i], rel=1e-9)
        if model in ("ANN", "AAN"):
            p = sf.predict(12)["mean"]
            np.testing.assert_allclose(f.mean[i], p, rtol=2e-3)
            # smoothing parameters agree within 1e-3 (observed <= 7e-5); the initial level is
            # not compared: with alpha near 1 the likelihood is nearly flat in it
            par = sf.model_["par"]
            assert f.models[i]["params"]["alpha"] == pytest.approx(par[0], abs=1e-3)
            if model == "AAN":
                assert f.models[i]["params"]["beta"] == pytest.approx(par[1], abs=1e-3)


def test_auto_on_airpassengers():
    """ZZZ on AirPassengers (m = 12): the chosen model's AICc is no worse than that of the
    model StatsForecast AutoETS picks, refitted by us, and no worse than StatsForecast's own
    (on our scale, which keeps the 2 pi constant R drops)."""
    f = ets(AIRPASSENGERS, 12, season_length=12)
    mdl = f.models[0]
    n = AIRPASSENGERS.size
    sf = AutoETS(season_length=12).fit(AIRPASSENGERS)
    sf_aicc = sf.model_["aicc"] + n * (np.log(2 * np.pi / n) + 1)
    assert mdl["aicc"] <= sf_aicc + 1e-6
    code = sf.model_["method"][4:-1].replace(",", "")
    g = ets(AIRPASSENGERS, 12, season_length=12, model=code, damped="d" in code)
    assert mdl["aicc"] <= g.models[0]["aicc"] + 1e-9
    assert mdl["season"] in ("A", "M") and mdl["intervals"] in ("analytic", "simulated")
    # forecasts within 5 % of StatsForecast's on this series
    np.testing.assert_allclose(f.mean[0], sf.predict(12)["mean"], rtol=0.05)
    assert np.all(f.lower < f.mean) and np.all(f.mean < f.upper)


def test_additive_intervals_closed_form(rng):
    y = _seasonal(rng, 3, 48)
    f = ets(y, 9, level=0.9, season_length=4, model="AAdA")
    n = 48
    for i in range(3):
        p = f.models[i]["params"]
        K = 1 + 1 + 1 + 1 + 1 + 1 + 3 + 1  # alpha beta gamma phi l0 b0 3 seasonals + sigma
        e = f.residuals[i]
        sigma2 = np.sum(e**2) / (n - K)
        assert f.models[i]["sigma2"] == pytest.approx(sigma2, rel=1e-10)
        phi_j = np.cumsum(p["phi"] ** np.arange(1, 9))
        c = p["alpha"] + p["beta"] * phi_j + p["gamma"] * (np.arange(1, 9) % 4 == 0)
        var = sigma2 * np.concatenate([[1.0], 1.0 + np.cumsum(c**2)])
        np.testing.assert_allclose(f.upper[i] - f.mean[i], norm.ppf(0.95) * np.sqrt(var), rtol=1e-9)
        # point forecasts: (l + phi_h b) + s
        assert f.models[i]["name"] == "ETS(A,Ad,A)[4]"


def _simulate_ann(rng, B, n, alpha, sigma, l0, mult=False):
    y = np.empty((B, n))
    level = np.full(B, l0)
    for t in range(n):
        e = rng.normal(0, sigma, B)
        y[:, t] = level * (1 + e) if mult else level + e
        level = level + alpha * (y[:, t] - level)
    return y


def test_interval_coverage_ann():
    """95 % intervals of ETS(A,N,N) fitted to 800 seeded ETS(A,N,N) paths (alpha 0.4) cover
    93-97 % of the 4000 future values they did not see."""
    rng = np.random.default_rng(11)
    y = _simulate_ann(rng, 800, 85, 0.4, 1.0, 10.0)
    f = ets(y[:, :80], 5, model="ANN")
    inside = (y[:, 80:] >= f.lower) & (y[:, 80:] <= f.upper)
    assert 0.93 <= inside.mean() <= 0.97


def test_interval_coverage_mnn_simulated():
    """Simulated (nsim 1000) 95 % intervals of ETS(M,N,N) fitted to 400 seeded ETS(M,N,N)
    paths cover 93-97 % of the 2000 future values."""
    rng = np.random.default_rng(12)
    y = _simulate_ann(rng, 400, 85, 0.3, 0.05, 100.0, mult=True)
    f = ets(y[:, :80], 5, model="MNN", nsim=1000, seed=3)
    assert f.models[0]["intervals"] == "simulated"
    inside = (y[:, 80:] >= f.lower) & (y[:, 80:] <= f.upper)
    assert 0.93 <= inside.mean() <= 0.97
    g = ets(y[:5, :80], 5, model="MNN", nsim=1000, seed=3)
    np.testing.assert_array_equal(g.lower, f.lower[:5])  # seeded


def test_torch_equals_numpy(rng, to_xp):
    y = np.abs(_seasonal(rng, 3, 36)) + 5
    a = ets(y, 6, season_length=4, model="ZZZ", nsim=500)
    b = ets(to_xp(y), 6, season_length=4, model="ZZZ", nsim=500)
    for k in ("mean", "lower", "upper", "fitted"):
        np.testing.assert_allclose(to_numpy(getattr(b, k)), getattr(a, k), rtol=1e-9)
    assert [m["name"] for m in a.models] == [m["name"] for m in b.models]


def test_model_strings_and_candidates():
    assert [s.name for s in E.candidates("ZZN", 1, 50, True)] == [
        "ETS(A,N,N)",
        "ETS(A,A,N)",
        "ETS(A,Ad,N)",
        "ETS(M,N,N)",
        "ETS(M,A,N)",
        "ETS(M,Ad,N)",
    ]
    names = [s.name for s in E.candidates("ZZZ", 12, 100, False)]
    assert all(s.startswith("ETS(A") and not s.endswith("M)[12]") for s in names)
    assert len(names) == 6
    names = [s.name for s in E.candidates("ZZZ", 12, 100, True)]
    assert "ETS(A,N,M)[12]" not in names and "ETS(M,Ad,M)[12]" in names and len(names) == 15
    assert [s.name for s in E.candidates("AAdN", 1, 20, True)] == ["ETS(A,Ad,N)"]


def test_bad_input():
    y = np.arange(1.0, 41.0)
    cases = [
        (dict(model="XYZ"), "model"),
        (dict(model="AM"), "model"),
        (dict(model="ANdN"), "model"),
        (dict(model="AAA", season_length=1), "season_length"),
        (dict(model="AAA", season_length=24), "season_length"),
        (dict(ic="hqic"), "ic"),
        (dict(nsim=5), "nsim"),
    ]
    for kw, field in cases:
        with pytest.raises(InvalidInput) as e:
            ets(y, 3, **kw)
        assert e.value.field == field
    with pytest.raises(InvalidInput) as e:
        ets(y - 20, 3, model="MNN")
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        ets(y, 0)
    assert e.value.field == "horizon"
    with pytest.raises(InvalidInput) as e:
        ets([1.0, np.nan, 2.0, 3.0, 4.0], 2)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        ets([1.0, 2.0], 2)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        ets(np.arange(1.0, 7.0), 2, model="AAdN")  # 5 parameters need more than 7 points
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        ets_loglike(y, "ZZN", alpha=0.5)
    assert e.value.field == "model"


def test_constant_and_short_series():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = ets(np.full((2, 20), 5.0) + np.arange(20) * 1e-9, 3, model="ANN")
    np.testing.assert_allclose(f.mean, 5.0, atol=1e-6)
    f = ets(np.array([3.0, 4.0, 3.5, 4.2, 3.9, 4.1]), 2)
    assert f.mean.shape == (1, 2) and np.all(np.isfinite(f.upper))


def test_mixed_sign_batch_keeps_multiplicative_models_for_positive_series(rng):
    y = np.abs(_seasonal(rng, 3, 40)) + 50.0
    y[1] -= 200.0  # this series is negative: additive models only
    f = ets(y, 4, season_length=4)
    assert f.models[1]["error"] == "A" and f.models[1]["season"] != "M"
    g = ets(y[[0, 2]], 4, season_length=4)
    np.testing.assert_allclose(f.mean[[0, 2]], g.mean, rtol=1e-12)
    assert [m["name"] for m in g.models] == [f.models[0]["name"], f.models[2]["name"]]
