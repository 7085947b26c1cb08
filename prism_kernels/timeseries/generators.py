"""Seeded synthetic series with known parameters (for tests, demos and benchmarks).

Every generator takes ``seed`` (an int, a sequence of ints or a ``numpy.random.Generator``)
and ``n_series``, and returns a dict whose ``"values"`` is a NumPy float64 array of shape
``(n_series, n)`` together with the true parameters and hidden quantities (change points,
conditional variances, components). The same seed gives the same arrays.

Conventions (those of statsmodels ``ArmaProcess``/``SARIMAX``):

- ARMA: ``(1 - phi_1 L - ... - phi_p L^p) (1 - Phi_1 L^s - ...) (x_t - mean) =
  (1 + theta_1 L + ...) (1 + Theta_1 L^s + ...) e_t``, ``e_t ~ N(0, sigma^2)``;
- ARIMA: ``x`` is the ``d``-times differenced, ``D``-times seasonally differenced series;
  the generator integrates it back from zeros;
- GJR-GARCH(1,1): ``r_t = mu + eps_t``, ``eps_t = sigma_t z_t``, ``sigma_t^2 = omega +
  (alpha + gamma 1[eps_{t-1} < 0]) eps_{t-1}^2 + beta sigma_{t-1}^2`` (``gamma = 0``:
  GARCH(1,1)), ``z_t`` standard normal or unit-variance Student t.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.signal import lfilter

from prism_kernels.errors import InvalidInput


def _rng(seed: Any) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _count(value: Any, field: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidInput(field, f"must be an integer >= {low}, got {value!r}")
    return int(value)


def _coeffs(value: Sequence[float] | float | None, field: str) -> np.ndarray:
    a = np.atleast_1d(np.asarray([] if value is None else value, dtype=float))
    if a.ndim != 1 or not np.all(np.isfinite(a)):
        raise InvalidInput(field, "must be a finite sequence of coefficients")
    return a


def _positive(value: float, field: str, strict: bool = True) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0 or (strict and v == 0):
        raise InvalidInput(
            field, f"must be {'> 0' if strict else '>= 0'} and finite, got {value!r}"
        )
    return v


def _lag_poly(coefs: np.ndarray, lag: int, sign: float) -> np.ndarray:
    """``[1, sign*c_1 (at lag), sign*c_2 (at 2*lag), ...]`` as a polynomial in L."""
    p = np.zeros(len(coefs) * lag + 1)
    p[0] = 1.0
    p[lag::lag] = sign * coefs
    return p


def _roots_outside(poly: np.ndarray) -> bool:
    if len(poly) <= 1 or not np.any(poly[1:]):
        return True
    return bool(np.all(np.abs(np.roots(poly[::-1])) > 1.0 + 1e-9))


def arima_process(
    n: int,
    ar: Sequence[float] | None = None,
    ma: Sequence[float] | None = None,
    d: int = 0,
    seasonal_ar: Sequence[float] | None = None,
    seasonal_ma: Sequence[float] | None = None,
    D: int = 0,
    season_length: int = 1,
    mean: float = 0.0,
    sigma: float = 1.0,
    n_series: int = 1,
    burn_in: int = 500,
    seed: Any = None,
) -> dict[str, Any]:
    """Seasonal ARIMA ``(p, d, q)(P, D, Q)[s]`` paths with known coefficients.

    Parameters
    ----------
    n : int
        Length of each path.
    ar, ma : sequence of float
        ``phi_1..phi_p`` and ``theta_1..theta_q`` (signs as statsmodels SARIMAX).
    d, D : int
        Regular and seasonal integration orders.
    seasonal_ar, seasonal_ma : sequence of float
        ``Phi_1..Phi_P``, ``Theta_1..Theta_Q`` at lags ``s, 2s, ...``.
    season_length : int
        ``s`` (needed >= 2 when a seasonal part is given).
    mean : float
        Mean of the stationary ARMA part (the differenced series).
    sigma : float
        Innovation standard deviation.
    n_series, burn_in, seed
        Number of independent paths; ARMA steps discarded at the start; the seed.

    Returns
    -------
    dict
        ``values`` (n_series, n); ``stationary`` (n_series, n): the ARMA part before
        integration; ``ar_poly``, ``ma_poly``: the full lag polynomials (coefficients of
        ``L^0..L^k``); the parameters as given.

    Raises
    ------
    InvalidInput
        Non-stationary AR or non-invertible MA part (fields ``ar``/``seasonal_ar``,
        ``ma``/``seasonal_ma``), bad sizes or orders.
    """
    n = _count(n, "n")
    n_series = _count(n_series, "n_series")
    burn_in = _count(burn_in, "burn_in", 0)
    d = _count(d, "d", 0)
    D = _count(D, "D", 0)
    s = _count(season_length, "season_length")
    sigma = _positive(sigma, "sigma")
    ar_, ma_ = _coeffs(ar, "ar"), _coeffs(ma, "ma")
    sar, sma = _coeffs(seasonal_ar, "seasonal_ar"), _coeffs(seasonal_ma, "seasonal_ma")
    if (len(sar) or len(sma) or D) and s < 2:
        raise InvalidInput("season_length", "must be >= 2 with a seasonal part")
    for coefs, sign, field in ((ar_, -1.0, "ar"), (sar, -1.0, "seasonal_ar")):
        if not _roots_outside(_lag_poly(coefs, s if field.startswith("seasonal") else 1, sign)):
            raise InvalidInput(field, "the AR polynomial has a root on or inside the unit circle")
    for coefs, field in ((ma_, "ma"), (sma, "seasonal_ma")):
        if not _roots_outside(_lag_poly(coefs, s if field.startswith("seasonal") else 1, 1.0)):
            raise InvalidInput(field, "the MA polynomial is not invertible")
    ar_poly = np.polymul(_lag_poly(ar_, 1, -1.0), _lag_poly(sar, s, -1.0))
    ma_poly = np.polymul(_lag_poly(ma_, 1, 1.0), _lag_poly(sma, s, 1.0))
    rng = _rng(seed)
    e = rng.normal(0.0, sigma, size=(n_series, n + burn_in))
    x = lfilter(ma_poly, ar_poly, e, axis=1)[:, burn_in:] + float(mean)
    y = x
    for _ in range(D):
        y = lfilter([1.0], _lag_poly(np.array([1.0]), s, -1.0), y, axis=1)
    for _ in range(d):
        y = np.cumsum(y, axis=1)
    return {
        "values": np.ascontiguousarray(y),
        "stationary": x,
        "ar": ar_.tolist(),
        "ma": ma_.tolist(),
        "seasonal_ar": sar.tolist(),
        "seasonal_ma": sma.tolist(),
        "d": d,
        "D": D,
        "season_length": s,
        "mean": float(mean),
        "sigma": sigma,
        "ar_poly": ar_poly.tolist(),
        "ma_poly": ma_poly.tolist(),
    }


def seasonal_series(
    n: int,
    season_length: int = 12,
    level: float = 10.0,
    slope: float = 0.05,
    amplitude: float = 2.0,
    noise_sd: float = 0.5,
    multiplicative: bool = False,
    n_series: int = 1,
    seed: Any = None,
) -> dict[str, Any]:
    """Trend + season + Gaussian noise with known components.

    ``trend_t = level + slope * t``; ``season_t = amplitude * sin(2 pi (t + phase) / s)``
    with a per-series random phase (a pattern that sums to zero over any full period);
    ``values = trend + season + noise`` (additive) or ``trend * (1 + season / level) +
    noise`` (multiplicative: the seasonal swing grows with the trend).

    Returns
    -------
    dict
        ``values``, ``trend``, ``season``, ``noise`` (each (n_series, n)), ``phase``
        (n_series,), and the parameters.
    """
    n = _count(n, "n")
    s = _count(season_length, "season_length", 2)
    n_series = _count(n_series, "n_series")
    noise_sd = _positive(noise_sd, "noise_sd", strict=False)
    if not all(math.isfinite(float(v)) for v in (level, slope, amplitude)):
        raise InvalidInput("level", "level, slope and amplitude must be finite")
    rng = _rng(seed)
    phase = rng.integers(0, s, size=n_series)
    t = np.arange(n, dtype=float)
    trend = np.broadcast_to(level + slope * t, (n_series, n)).copy()
    season = amplitude * np.sin(2.0 * np.pi * (t[None, :] + phase[:, None]) / s)
    noise = (
        rng.normal(0.0, noise_sd, size=(n_series, n)) if noise_sd > 0 else np.zeros((n_series, n))
    )
    if multiplicative:
        if level == 0:
            raise InvalidInput("level", "must be non-zero for a multiplicative season")
        values = trend * (1.0 + season / level) + noise
    else:
        values = trend + season + noise
    return {
        "values": values,
        "trend": trend,
        "season": season,
        "noise": noise,
        "phase": phase,
        "season_length": s,
        "level": float(level),
        "slope": float(slope),
        "amplitude": float(amplitude),
        "noise_sd": noise_sd,
        "multiplicative": bool(multiplicative),
    }


def regime_series(
    n: int,
    n_changes: int = 3,
    min_gap: int = 20,
    mean_shift: float = 3.0,
    sd_range: tuple[float, float] = (1.0, 1.0),
    n_series: int = 1,
    seed: Any = None,
) -> dict[str, Any]:
    """Piecewise-constant mean (and optionally scale) with known change points.

    Change points are drawn uniformly with every segment at least ``min_gap`` long; each new
    segment's mean moves by ``+/- mean_shift * U(0.5, 1.5)`` (random sign) and its noise
    standard deviation is drawn uniformly in ``sd_range`` (``(1, 1)``: mean changes only).

    Returns
    -------
    dict
        ``values`` (n_series, n); ``breakpoints``: per series the segment end indices with
        ``n`` last (ruptures' convention); ``means``, ``sds``: per series, per segment.
    """
    n = _count(n, "n")
    k = _count(n_changes, "n_changes", 0)
    gap = _count(min_gap, "min_gap")
    n_series = _count(n_series, "n_series")
    lo, hi = (float(v) for v in sd_range)
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise InvalidInput("sd_range", "must be (low, high) with 0 < low <= high")
    if (k + 1) * gap > n:
        raise InvalidInput("n_changes", f"{k} changes with min_gap {gap} do not fit in {n} points")
    rng = _rng(seed)
    values = np.empty((n_series, n))
    bkps, means, sds = [], [], []
    slack = n - (k + 1) * gap
    for i in range(n_series):
        # (k + 1) segment lengths = gap + a random composition of the slack
        cuts = np.sort(rng.integers(0, slack + 1, size=k))
        extra = np.diff(np.concatenate([[0], cuts, [slack]]))
        ends = np.cumsum(gap + extra).astype(int)
        mu = [0.0]
        for _ in range(k):
            mu.append(mu[-1] + rng.choice([-1.0, 1.0]) * mean_shift * rng.uniform(0.5, 1.5))
        sd = rng.uniform(lo, hi, size=k + 1)
        start = 0
        for j, end in enumerate(ends):
            values[i, start:end] = mu[j] + sd[j] * rng.normal(size=end - start)
            start = end
        bkps.append(ends.tolist())
        means.append(mu)
        sds.append(sd.tolist())
    return {"values": values, "breakpoints": bkps, "means": means, "sds": sds}


def garch_unconditional_variance(
    omega: float, alpha: float, beta: float, gamma: float = 0.0
) -> float:
    """``omega / (1 - alpha - gamma / 2 - beta)`` (symmetric innovations); inf if not stationary."""
    persistence = alpha + 0.5 * gamma + beta
    return float(omega / (1.0 - persistence)) if persistence < 1.0 else math.inf


def garch_process(
    n: int,
    omega: float = 0.05,
    alpha: float = 0.08,
    beta: float = 0.9,
    gamma: float = 0.0,
    mu: float = 0.0,
    dist: str = "normal",
    nu: float = 8.0,
    n_series: int = 1,
    burn_in: int = 500,
    seed: Any = None,
) -> dict[str, Any]:
    """GARCH(1,1) / GJR-GARCH(1,1,1) returns with their true conditional variances.

    Parameters
    ----------
    n : int
        Path length.
    omega, alpha, beta, gamma : float
        Variance recursion (module docstring); needs ``omega > 0``, ``alpha, beta >= 0``,
        ``alpha + gamma >= 0`` and ``alpha + gamma / 2 + beta < 1`` (covariance stationary).
    mu : float
        Constant mean of the returns.
    dist : {"normal", "t"}
        Innovations ``z_t``: standard normal, or Student t with ``nu > 2`` degrees of
        freedom scaled to unit variance.
    n_series, burn_in, seed
        Independent paths; steps discarded at the start (the recursion starts at the
        unconditional variance); the seed.

    Returns
    -------
    dict
        ``values`` (returns, (n_series, n)), ``variances`` (true ``sigma_t^2``, (n_series,
        n)), ``innovations`` (``z_t``), ``unconditional_variance`` and the parameters.
    """
    n = _count(n, "n")
    n_series = _count(n_series, "n_series")
    burn_in = _count(burn_in, "burn_in", 0)
    omega = _positive(omega, "omega")
    alpha = _positive(alpha, "alpha", strict=False)
    beta = _positive(beta, "beta", strict=False)
    gamma = float(gamma)
    if not math.isfinite(gamma) or alpha + gamma < 0:
        raise InvalidInput("gamma", "must be finite with alpha + gamma >= 0")
    if alpha + 0.5 * gamma + beta >= 1.0:
        raise InvalidInput("beta", "alpha + gamma/2 + beta must be < 1 (covariance stationary)")
    if dist not in ("normal", "t"):
        raise InvalidInput("dist", f"must be 'normal' or 't', got {dist!r}")
    rng = _rng(seed)
    total = n + burn_in
    if dist == "normal":
        z = rng.standard_normal((n_series, total))
    else:
        nu = float(nu)
        if not nu > 2:
            raise InvalidInput("nu", "must be > 2 for a unit-variance Student t")
        z = rng.standard_t(nu, (n_series, total)) * math.sqrt((nu - 2.0) / nu)
    uncond = garch_unconditional_variance(omega, alpha, beta, gamma)
    var = np.empty((n_series, total))
    eps = np.empty((n_series, total))
    v = np.full(n_series, uncond)
    for t in range(total):
        var[:, t] = v
        eps[:, t] = np.sqrt(v) * z[:, t]
        e = eps[:, t]
        v = omega + (alpha + gamma * (e < 0)) * e * e + beta * v
    return {
        "values": mu + eps[:, burn_in:],
        "variances": var[:, burn_in:],
        "innovations": z[:, burn_in:],
        "unconditional_variance": uncond,
        "omega": omega,
        "alpha": alpha,
        "beta": beta,
        "gamma": gamma,
        "mu": float(mu),
        "dist": dist,
        "nu": float(nu) if dist == "t" else None,
    }
