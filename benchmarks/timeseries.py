"""Time series (ARIMA): ours against StatsForecast and statsmodels, same data, one process.

(a) AutoARIMA on seeded seasonal series (length 150 + 12 held out, season 12; the SARIMA
    generator below: per series a random (p,d,q)(P,D,Q)[12] with p,q,P,Q <= 1, d in {0, 1},
    D = 1 for 85 % of series, coefficients drawn in the stationary/invertible region, unit
    innovations, a random level and seasonal pattern): ours (:func:`auto_arima`, the whole
    batch in one call) against ``statsforecast.models.AutoARIMA(season_length=12)`` fitted
    series by series (what ``StatsForecast(..., n_jobs=1)`` does). ``extra`` holds the mean
    MASE of both on the held-out 12 points (scaled by the in-sample seasonal-naive MAE), and
    the ratio, and the CPU (process) seconds of both (the wall times are taken on a shared
    machine; the CPU times are less sensitive to other load). StatsForecast takes ~1-2 s per series, so its sample is configurable:
    ``PRISM_BENCH_ARIMA_SERIES`` (default 1000; quick 20) for ours and
    ``PRISM_BENCH_SF_SERIES`` (default: the same) for StatsForecast; when the latter is
    smaller, both MASEs are also given on the common subset and the peer time is scaled to the
    full count (the note says so).
(b) ARIMA(1,1,1)(0,1,1)[12] exact log-likelihood at fixed parameters on 200 series: ours in
    one call against ``SARIMAX(..., simple_differencing=True).loglike`` series by series
    (largest relative difference in ``extra``); and the fit of ARMA(1,1) (n = 300) on 100
    series, ours in one call against ``SARIMAX(...).fit()`` per series (largest coefficient
    difference in ``extra``).

``--quick`` shrinks every size.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np

from benchmarks.harness import Case, timeit
from prism_kernels.timeseries import arima as A
from prism_kernels.timeseries import statespace as ss

SEASON = 12
TRAIN = 150
HORIZON = 12


def sarima_batch(n_series: int, length: int, seed: int = 0) -> tuple[np.ndarray, list]:
    """Seeded seasonal ARIMA series (n_series, length) and their true orders."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_series, length))
    truth = []
    burn = 100
    for b in range(n_series):
        p, q, P, Q = (int(v) for v in rng.integers(0, 2, 4))
        d = int(rng.random() < 0.5)
        D = int(rng.random() < 0.85)
        ar = rng.uniform(-0.7, 0.7, p)
        ma = rng.uniform(-0.7, 0.7, q)
        sar = rng.uniform(-0.6, 0.6, P)
        sma = rng.uniform(-0.7, 0.3, Q)
        phi = ss.expand_ar(ar[None], sar[None], SEASON)[0]
        theta = ss.expand_ma(ma[None], sma[None], SEASON)[0]
        n = length + burn
        e = rng.standard_normal(n + len(theta))
        w = np.zeros(n)
        for t in range(n):
            v = e[t + len(theta)]
            for j, th in enumerate(theta, 1):
                v += th * e[t + len(theta) - j]
            for i, ph in enumerate(phi, 1):
                if t - i >= 0:
                    v += ph * w[t - i]
            w[t] = v
        w = w[burn:]
        season = rng.normal(0, 3.0, SEASON)
        x = w.copy()
        if D:
            x = np.concatenate([season, x])[: length + SEASON]
            for t in range(SEASON, x.shape[0]):
                x[t] = x[t] + x[t - SEASON]
            x = x[SEASON:]
        else:
            x = x + np.tile(season, length // SEASON + 1)[:length]
        if d:
            x = np.cumsum(x)
        out[b] = x + rng.uniform(20, 100)
        truth.append(((p, d, q), (P, D, Q)))
    return out, truth


def mase(y_train: np.ndarray, y_test: np.ndarray, pred: np.ndarray, s: int = SEASON) -> np.ndarray:
    """Mean absolute scaled error per series, scaled by the in-sample seasonal-naive MAE."""
    scale = np.mean(np.abs(y_train[:, s:] - y_train[:, :-s]), axis=1)
    return np.mean(np.abs(y_test - pred), axis=1) / scale


def _statsforecast(train: np.ndarray, test: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    from statsforecast.models import AutoARIMA

    preds = np.empty((train.shape[0], HORIZON))
    t0 = time.perf_counter()
    for b in range(train.shape[0]):
        m = AutoARIMA(season_length=SEASON)
        preds[b] = m.forecast(train[b], HORIZON)["mean"]
        if test is not None and (b + 1) % 100 == 0:  # progress, for long runs
            done = mase(train[: b + 1], test[: b + 1], preds[: b + 1])
            print(
                f"statsforecast: {b + 1} series, {time.perf_counter() - t0:.1f} s, "
                f"mean MASE {np.mean(done):.4f}",
                file=sys.stderr,
                flush=True,
            )
    return preds, time.perf_counter() - t0


def _auto_arima(quick: bool) -> list[Case]:
    n_ours = int(os.environ.get("PRISM_BENCH_ARIMA_SERIES", "20" if quick else "1000"))
    n_sf = min(n_ours, int(os.environ.get("PRISM_BENCH_SF_SERIES", str(n_ours))))
    y, _ = sarima_batch(n_ours, TRAIN + HORIZON, seed=11)
    train, test = y[:, :TRAIN], y[:, TRAIN:]
    A.auto_arima(train[:2], HORIZON, season_length=SEASON)  # compile the numba kernels
    t0, c0 = time.perf_counter(), time.process_time()
    fc = A.auto_arima(train, HORIZON, season_length=SEASON)
    ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
    m_ours = mase(train, test, np.asarray(fc.mean))
    print(
        f"ours: {n_ours} series, {ours_s:.1f} s wall, {ours_cpu:.1f} s CPU, "
        f"mean MASE {np.mean(m_ours):.4f} (first 100: {np.mean(m_ours[:100]):.4f}, "
        f"first 300: {np.mean(m_ours[:300]):.4f})",
        file=sys.stderr,
        flush=True,
    )
    # StatsForecast's AutoARIMA: warm its numba kernels on one series, then time
    _statsforecast(train[:1])
    c0 = time.process_time()
    sf_pred, sf_s = _statsforecast(train[:n_sf], test[:n_sf])
    sf_cpu = time.process_time() - c0
    m_sf = mase(train[:n_sf], test[:n_sf], sf_pred)
    extra = {
        "series_ours": n_ours,
        "series_statsforecast": n_sf,
        "mase_ours": float(np.mean(m_ours)),
        "mase_statsforecast": float(np.mean(m_sf)),
        "mase_ours_common": float(np.mean(m_ours[:n_sf])),
        "mase_ratio_common": float(np.mean(m_ours[:n_sf]) / np.mean(m_sf)),
        "sf_s_per_series": sf_s / n_sf,
        "ours_cpu_s": ours_cpu,
        "sf_cpu_s_scaled": sf_cpu * n_ours / n_sf,
    }
    note = f"ours: {n_ours} series in one call"
    if n_sf < n_ours:
        note += f"; StatsForecast timed on {n_sf} series and scaled to {n_ours}"
    return [
        Case(
            "timeseries",
            f"auto_arima {n_ours} x {TRAIN} season {SEASON}",
            ours_s,
            "statsforecast AutoARIMA",
            sf_s * n_ours / n_sf,
            note,
            extra,
        )
    ]


def _sarimax():
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    return SARIMAX


def _loglike(quick: bool) -> list[Case]:
    SARIMAX = _sarimax()
    B = 20 if quick else 200
    y, _ = sarima_batch(B, TRAIN, seed=5)
    params = np.array([0.4, -0.3, -0.5, 1.7])
    ours = np.asarray(
        A.arima_loglike(y, params, (1, 1, 1), (0, 1, 1), SEASON, include_constant=False)
    )
    ours_s = timeit(lambda: A.arima_loglike(y, params, (1, 1, 1), (0, 1, 1), SEASON), repeat=3)

    def peer():
        out = np.empty(B)
        for b in range(B):
            mod = SARIMAX(
                y[b], order=(1, 1, 1), seasonal_order=(0, 1, 1, SEASON), simple_differencing=True
            )
            out[b] = mod.loglike(params)
        return out

    ref = peer()
    peer_s = timeit(peer, repeat=1, warmup=0)
    rel = float(np.max(np.abs(ours - ref) / np.abs(ref)))
    return [
        Case(
            "timeseries",
            f"SARIMA loglike {B} x {TRAIN}",
            ours_s,
            "statsmodels SARIMAX.loglike",
            peer_s,
            "ARIMA(1,1,1)(0,1,1)[12], fixed parameters",
            {"max_rel_diff": rel},
        )
    ]


def _fit(quick: bool) -> list[Case]:
    from statsmodels.tsa.arima_process import arma_generate_sample

    SARIMAX = _sarimax()
    B = 10 if quick else 100
    n = 300
    rng = np.random.default_rng(3)
    y = np.stack(
        [
            arma_generate_sample([1, -0.6], [1, 0.3], n, distrvs=rng.standard_normal)
            for _ in range(B)
        ]
    )
    A.fit_arima(y[:2], (1, 0, 1), include_constant=False)
    t0 = time.perf_counter()
    fit = A.fit_arima(y, (1, 0, 1), include_constant=False)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = np.empty((B, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in range(B):
            ref[b] = SARIMAX(y[b], order=(1, 0, 1), trend="n").fit(disp=False).params[:2]
    peer_s = time.perf_counter() - t0
    return [
        Case(
            "timeseries",
            f"ARMA(1,1) fit {B} x {n}",
            ours_s,
            "statsmodels SARIMAX.fit",
            peer_s,
            "ours: one batched call",
            {"max_coef_diff": float(np.max(np.abs(np.asarray(fit.params) - ref)))},
        )
    ]


def run(quick: bool = False) -> list[Case]:
    cases: list[Case] = []
    cases += _loglike(quick)
    cases += _fit(quick)
    cases += _auto_arima(quick)
    return cases
