"""Portfolio risk: VaR and CVaR (historical, parametric normal and Student-t, Monte Carlo),
volatility, drawdown, beta, Sharpe, Sortino and component VaR.

Conventions
-----------
* ``returns`` are simple per-period returns (a day, for daily data), shape ``(T,)`` for one
  series or ``(T, k)`` for ``k`` series (statistics are taken along axis 0, time first).
* ``confidence`` is a probability such as ``0.95``; ``horizon`` is a number of periods (days).
* VaR and CVaR are reported as **positive losses**, fractions of the portfolio value:
  ``VaR = -q_{1-c}(R_h)`` and ``CVaR = -E[R_h | R_h <= q_{1-c}(R_h)]`` where ``R_h`` is the
  ``horizon``-period return. Multiply by a notional for money.
* Parametric methods scale with the square-root-of-time rule: mean ``h*mu``, scale
  ``sqrt(h)*sigma``. Historical VaR aggregates overlapping ``h``-period sums of returns.
  Monte Carlo simulates ``h`` daily steps per path.
* Nothing here annualises unless ``periods_per_year`` is given.

Every kernel is backend-generic (NumPy, PyTorch, CuPy through ``array-api-compat``) and
computes in float64. The few scalar distribution functions (normal and Student-t quantiles,
the Student-t maximum-likelihood fit) are evaluated on the host with SciPy; that is noted
where it happens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from prism_kernels.arrays import as_float, check_finite, device_of, mT
from prism_kernels.backend import backend_name, get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.seeds import check_seed

QUANTILE_METHODS = ("linear", "lower", "higher", "nearest", "inverted_cdf")
DISTRIBUTIONS = ("normal", "t")

__all__ = [
    "QUANTILE_METHODS",
    "MaxDrawdown",
    "MonteCarloVaR",
    "ComponentVaR",
    "as_returns",
    "to_float_array",
    "portfolio_statistics",
    "quantile",
    "historical_var",
    "historical_cvar",
    "historical_var_cvar",
    "parametric_var_cvar",
    "normal_var_cvar",
    "student_t_var_cvar",
    "fit_student_t",
    "monte_carlo_var",
    "volatility",
    "wealth",
    "drawdown_series",
    "max_drawdown",
    "beta",
    "sharpe_ratio",
    "sortino_ratio",
    "component_var",
    "risk_report",
]


# --------------------------------------------------------------------------------------
# input handling and small backend helpers
# --------------------------------------------------------------------------------------


def to_float_array(x: Any, field: str) -> Any:
    """``x`` as a float64 array on its own backend (NumPy for lists and pandas objects);
    :class:`InvalidInput` naming ``field`` when it is missing or not numeric."""
    if x is None:
        raise InvalidInput(field, "is required")
    if hasattr(x, "to_numpy") and not hasattr(x, "__array_namespace__"):  # pandas
        x = x.to_numpy(dtype=np.float64)
    name = backend_name(x)
    if name == "numpy":
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(field, f"must be numeric: {exc}") from exc
        return arr
    xp = get_namespace(x)
    if x.dtype != xp.float64:
        x = xp.astype(x, xp.float64)
    return x


def as_returns(returns: Any, field: str = "returns", min_periods: int = 1) -> Any:
    """Validate a return series ``(T,)`` or panel ``(T, k)`` and return it as a float64 array.

    Raises
    ------
    InvalidInput
        Wrong number of dimensions, fewer than ``min_periods`` rows, no columns, NaN/inf.
    """
    x = to_float_array(returns, field)
    if x.ndim not in (1, 2):
        raise InvalidInput(field, f"must be 1-D (T,) or 2-D (T, k); got shape {tuple(x.shape)}")
    if x.shape[0] < min_periods:
        raise InvalidInput(
            field, f"needs at least {min_periods} period(s); got {x.shape[0]}", periods=x.shape[0]
        )
    if x.ndim == 2 and x.shape[1] == 0:
        raise InvalidInput(field, "has no columns")
    check_finite(x, field)
    return x


def _check_confidence(confidence: float) -> float:
    try:
        c = float(confidence)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("confidence", "must be a number in (0, 1)") from exc
    if not (0.0 < c < 1.0):
        raise InvalidInput("confidence", f"must be in (0, 1), e.g. 0.95; got {confidence}")
    return c


def _check_horizon(horizon: Any) -> int:
    try:
        h = int(horizon)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("horizon", "must be a positive integer number of periods") from exc
    if h != horizon or h < 1:
        raise InvalidInput(
            "horizon", f"must be a positive integer number of periods; got {horizon}"
        )
    return h


def _cummax(x: Any, axis: int = 0) -> Any:
    """Running maximum along ``axis`` (no array-API form: dispatched per backend)."""
    name = backend_name(x)
    if name == "torch":
        import torch

        return torch.cummax(x, dim=axis).values
    if name == "numpy":
        return np.maximum.accumulate(x, axis=axis)
    return _cummax_scan(get_namespace(x), x)  # CuPy has no maximum.accumulate


def _cummax_scan(xp: Any, x: Any) -> Any:
    """Running maximum along axis 0 by a doubling (Hillis-Steele) scan: log2(T) array-API steps."""
    y = x
    k = 1
    T = x.shape[0]
    while k < T:
        y = xp.concat([y[:k, ...], xp.maximum(y[k:, ...], y[: T - k, ...])], axis=0)
        k *= 2
    return y


def _rng(xp_like: Any, seed: int | None) -> Any:
    """A seeded generator native to the backend of ``xp_like``."""
    seed = check_seed(seed)
    name = backend_name(xp_like)
    if name == "torch":
        import torch

        g = torch.Generator(device=device_of(xp_like))
        g.manual_seed(0 if seed is None else int(seed))
        return ("torch", g, np.random.default_rng(seed))
    if name == "cupy":
        import cupy

        return ("cupy", cupy.random.RandomState(seed), np.random.default_rng(seed))
    return ("numpy", np.random.default_rng(seed), None)


def _standard_normal(gen: Any, shape: tuple[int, ...], like: Any) -> Any:
    kind, g, _ = gen
    if kind == "torch":
        import torch

        return torch.randn(shape, generator=g, dtype=torch.float64, device=device_of(like))
    if kind == "cupy":
        import cupy

        return g.standard_normal(shape, dtype=cupy.float64)
    return g.standard_normal(shape)


def _chisquare(gen: Any, dof: float, size: int, like: Any) -> Any:
    """Chi-square draws; on PyTorch/CuPy they are drawn on the host (a vector, cheap) and copied."""
    kind, g, host = gen
    if kind == "numpy":
        return g.chisquare(dof, size)
    xp = get_namespace(like)
    draws = host.chisquare(dof, size)
    if kind == "torch":
        import torch

        return torch.as_tensor(draws, dtype=torch.float64, device=device_of(like))
    return xp.asarray(draws)


# --------------------------------------------------------------------------------------
# quantile and historical VaR / CVaR
# --------------------------------------------------------------------------------------


def quantile(x: Any, q: float, method: str = "linear") -> Any:
    """Quantile of ``x`` along axis 0, identical to ``numpy.quantile(x, q, axis=0, method=...)``.

    Parameters
    ----------
    x : array (T,) or (T, k)
    q : float in [0, 1]
    method : {"linear", "lower", "higher", "nearest", "inverted_cdf"}
        NumPy's definitions (Hyndman & Fan type 7 for ``linear``, type 1 for ``inverted_cdf``),
        reproduced operation for operation so NumPy inputs give bit-identical results.

    Returns
    -------
    array () or (k,)
    """
    if method not in QUANTILE_METHODS:
        raise InvalidInput(
            "method", f"unknown quantile method {method!r}; one of {QUANTILE_METHODS}"
        )
    xp = get_namespace(x)
    if x.shape[0] == 0:
        raise InvalidInput("returns", "is empty")
    return _sorted_quantile(xp.sort(x, axis=0, stable=False), q, method)


def _sorted_quantile(s: Any, q: float, method: str) -> Any:
    """:func:`quantile` of data already sorted along axis 0."""
    n = s.shape[0]
    if method == "linear":
        virtual = (n - 1) * q
        if virtual >= n - 1:
            return s[n - 1, ...]
        if virtual < 0:
            return s[0, ...]
        lo = math.floor(virtual)
        gamma = virtual - lo
        a, b = s[lo, ...], s[lo + 1, ...]
        diff = b - a
        if gamma >= 0.5:
            return b - diff * (1 - gamma)
        return a + diff * gamma
    if method == "lower":
        idx = math.floor((n - 1) * q)
    elif method == "higher":
        idx = math.ceil((n - 1) * q)
    elif method == "nearest":
        idx = int(np.around((n - 1) * q))
    else:  # inverted_cdf
        virtual = n * q - 1
        lo = math.floor(virtual)
        idx = lo if virtual - lo == 0 else lo + 1
    idx = min(max(idx, 0), n - 1)
    return s[idx, ...]


def _horizon_returns(xp: Any, r: Any, horizon: int) -> Any:
    """Overlapping ``horizon``-period sums of returns, shape ``(T - h + 1, ...)``."""
    if horizon == 1:
        return r
    T = r.shape[0]
    if T < horizon:
        raise InvalidInput("horizon", f"is {horizon} periods but returns hold only {T}")
    c = xp.cumulative_sum(r, axis=0, include_initial=True)
    return c[horizon:, ...] - c[: T - horizon + 1, ...]


def _tail_mean(xp: Any, r: Any, threshold: Any) -> Any:
    """Mean of the values ``<= threshold`` per column.

    One series: the boolean-mask mean (bit-identical to NumPy's ``r[r <= q].mean()``).
    Several: one vectorised masked sum per column (equal to that within rounding, ~1e-16).
    """
    if r.ndim == 1:
        return xp.mean(r[r <= threshold])
    return _sorted_tail_mean(xp, xp.sort(r, axis=0, stable=False), threshold)


def _sorted_tail_mean(xp: Any, s: Any, threshold: Any) -> Any:
    """Per-column mean of the values ``<= threshold`` of data sorted along axis 0: they are
    the first ``count`` rows, so only the first ``max(count)`` rows are summed."""
    count = xp.sum(xp.astype(s <= threshold[None, :], xp.int64), axis=0)
    kmax = max(int(xp.max(count)), 1)
    head = s[:kmax, ...]
    rows = xp.arange(kmax, dtype=xp.int64, device=getattr(s, "device", None))
    keep = rows[:, None] < count[None, :]
    total = xp.sum(xp.where(keep, head, xp.zeros_like(head)), axis=0)
    return total / xp.astype(count, s.dtype)


def historical_var_cvar(
    returns: Any, confidence: float = 0.95, horizon: int = 1, method: str = "linear"
) -> tuple[Any, Any]:
    """Historical (non-parametric) VaR and CVaR.

    Parameters
    ----------
    returns : array (T,) or (T, k)
        Per-period simple returns.
    confidence : float
        E.g. 0.95: the loss exceeded with probability 5 %.
    horizon : int
        Periods; the ``T - h + 1`` overlapping ``h``-period sums of returns are used.
    method : str
        Quantile definition, see :func:`quantile`.

    Returns
    -------
    (var, cvar) : arrays () or (k,)
        ``var = -quantile(R_h, 1 - c)``; ``cvar = -mean(R_h[R_h <= quantile])`` (positive = loss).
        For one series both are bit-identical to the NumPy expressions; for (T, k) the CVaR
        is a vectorised masked mean, equal to them within rounding.
    """
    c = _check_confidence(confidence)
    h = _check_horizon(horizon)
    r = as_returns(returns)
    xp = get_namespace(r)
    rh = _horizon_returns(xp, r, h)
    if rh.ndim == 1:
        q = quantile(rh, 1.0 - c, method)
        return -q, -_tail_mean(xp, rh, q)
    if method not in QUANTILE_METHODS:
        raise InvalidInput(
            "method", f"unknown quantile method {method!r}; one of {QUANTILE_METHODS}"
        )
    srt = xp.sort(rh, axis=0, stable=False)
    q = _sorted_quantile(srt, 1.0 - c, method)
    return -q, -_sorted_tail_mean(xp, srt, q)


def historical_var(
    returns: Any, confidence: float = 0.95, horizon: int = 1, method: str = "linear"
) -> Any:
    """Historical VaR (see :func:`historical_var_cvar`)."""
    return historical_var_cvar(returns, confidence, horizon, method)[0]


def historical_cvar(
    returns: Any, confidence: float = 0.95, horizon: int = 1, method: str = "linear"
) -> Any:
    """Historical CVaR / expected shortfall (see :func:`historical_var_cvar`)."""
    return historical_var_cvar(returns, confidence, horizon, method)[1]


# --------------------------------------------------------------------------------------
# parametric VaR / CVaR
# --------------------------------------------------------------------------------------


def normal_var_cvar(
    mu: Any, sigma: Any, confidence: float = 0.95, horizon: int = 1
) -> tuple[Any, Any]:
    """Parametric normal VaR and CVaR with square-root-of-time scaling.

    ``VaR = -h*mu + sqrt(h)*sigma*z_c``, ``CVaR = -h*mu + sqrt(h)*sigma*phi(z_c)/(1-c)``
    with ``z_c = Phi^{-1}(c)`` (a host scalar from SciPy). ``mu`` and ``sigma`` are per-period
    (scalars or arrays of any backend, broadcast together).
    """
    c = _check_confidence(confidence)
    h = _check_horizon(horizon)
    z = float(special.ndtri(c))
    es = float(np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)) / (1.0 - c)
    return -h * mu + math.sqrt(h) * sigma * z, -h * mu + math.sqrt(h) * sigma * es


def _t_factors(c: float, dof: float) -> tuple[float, float]:
    """Quantile and expected-shortfall multipliers of the standard (unit-scale) Student-t."""
    tq = float(stats.t.ppf(c, dof))
    if dof <= 1:
        return tq, math.inf
    es = float(stats.t.pdf(tq, dof)) * (dof + tq * tq) / ((dof - 1.0) * (1.0 - c))
    return tq, es


def student_t_var_cvar(
    loc: Any, scale: Any, dof: float, confidence: float = 0.95, horizon: int = 1
) -> tuple[Any, Any]:
    """Parametric Student-t VaR and CVaR for returns ``loc + scale * T_dof``.

    ``VaR = -h*loc + sqrt(h)*scale*t_c``, ``CVaR = -h*loc + sqrt(h)*scale*f(t_c)(dof + t_c^2)/((dof-1)(1-c))``
    with ``t_c`` the ``c``-quantile of the standard t (host scalars from SciPy). CVaR is
    infinite for ``dof <= 1``. ``scale`` is the t scale, not the standard deviation (which is
    ``scale*sqrt(dof/(dof-2))``).
    """
    c = _check_confidence(confidence)
    h = _check_horizon(horizon)
    dof = float(dof)
    if not dof > 0 or not math.isfinite(dof):
        raise InvalidInput("dof", f"must be a positive number; got {dof}")
    tq, es = _t_factors(c, dof)
    return -h * loc + math.sqrt(h) * scale * tq, -h * loc + math.sqrt(h) * scale * es


def fit_student_t(returns: Any) -> tuple[float, float, float]:
    """Maximum-likelihood Student-t fit ``(dof, loc, scale)`` of a 1-D series (SciPy, on the host)."""
    r = as_returns(returns, min_periods=3)
    if r.ndim != 1:
        raise InvalidInput("returns", "fit_student_t takes one series (T,)")
    dof, loc, scale = stats.t.fit(to_numpy(r))
    return float(dof), float(loc), float(scale)


def parametric_var_cvar(
    returns: Any = None,
    confidence: float = 0.95,
    horizon: int = 1,
    *,
    distribution: str = "normal",
    mu: Any = None,
    sigma: Any = None,
    dof: float | None = None,
) -> dict[str, Any]:
    """Parametric VaR / CVaR from a return series or from given moments.

    Parameters
    ----------
    returns : array (T,) or (T, k), optional
        Used to estimate ``mu`` (mean) and ``sigma`` (standard deviation, ddof=1) when they
        are not given; for ``distribution="t"`` with ``dof=None`` the t is fitted by maximum
        likelihood (one series at a time, on the host).
    distribution : {"normal", "t"}
    mu, sigma : per-period mean and standard deviation (override the estimates).
    dof : float, optional
        Student-t degrees of freedom. Given: the t is scaled so its standard deviation is
        ``sigma`` (needs ``dof > 2``). None: fitted.

    Returns
    -------
    dict with ``var``, ``cvar`` and the parameters used (``mu``, ``sigma``, and for the t
    ``dof``, ``loc``, ``scale``).
    """
    dist = str(distribution).lower()
    if dist in ("student_t", "student-t", "studentt", "t"):
        dist = "t"
    if dist not in DISTRIBUTIONS:
        raise InvalidInput("distribution", f"must be 'normal' or 't'; got {distribution!r}")
    r = None
    if returns is not None:
        r = as_returns(returns, min_periods=2)
        xp = get_namespace(r)
        if mu is None:
            mu = xp.mean(r, axis=0)
        if sigma is None:
            sigma = xp.std(r, axis=0, correction=1)
    if mu is None or sigma is None:
        raise InvalidInput("returns", "give returns, or both mu and sigma")
    if dist == "normal":
        var, cvar = normal_var_cvar(mu, sigma, confidence, horizon)
        return {"var": var, "cvar": cvar, "mu": mu, "sigma": sigma, "distribution": "normal"}
    if dof is None:
        if r is None:
            raise InvalidInput("dof", "is required when no returns are given to fit it")
        if r.ndim == 2:
            fits = [fit_student_t(r[:, j]) for j in range(r.shape[1])]
            xp = get_namespace(r)
            dof_a = np.array([f[0] for f in fits])
            loc = xp.asarray(np.array([f[1] for f in fits]))
            scale = xp.asarray(np.array([f[2] for f in fits]))
            if backend_name(r) == "torch":
                loc, scale = loc.to(r.device), scale.to(r.device)
            vs, cs = zip(
                *(
                    student_t_var_cvar(float(lo), float(sc), d, confidence, horizon)
                    for d, lo, sc in zip(dof_a, to_numpy(loc), to_numpy(scale), strict=True)
                ),
                strict=True,
            )
            var = xp.asarray(np.array(vs))
            cvar = xp.asarray(np.array(cs))
            return {
                "var": var,
                "cvar": cvar,
                "mu": mu,
                "sigma": sigma,
                "distribution": "t",
                "dof": dof_a,
                "loc": loc,
                "scale": scale,
            }
        dof_f, loc, scale = fit_student_t(r)
    else:
        dof_f = float(dof)
        if not dof_f > 2:
            raise InvalidInput(
                "dof", f"must be > 2 to match a finite standard deviation; got {dof}"
            )
        loc = mu
        scale = sigma * math.sqrt((dof_f - 2.0) / dof_f)
    var, cvar = student_t_var_cvar(loc, scale, dof_f, confidence, horizon)
    return {
        "var": var,
        "cvar": cvar,
        "mu": mu,
        "sigma": sigma,
        "distribution": "t",
        "dof": dof_f,
        "loc": loc,
        "scale": scale,
    }


# --------------------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------------------


@dataclass
class MonteCarloVaR:
    """Monte Carlo VaR / CVaR of one or several portfolios (positive = loss, fractions).

    ``var``/``cvar``: arrays () or (k,). ``standard_error``: distribution-free standard error
    of the VaR estimate from the binomial order-statistic interval (95 % interval in
    ``var_interval``). ``n_paths``, ``horizon``, ``seed``, ``distribution`` as used.
    """

    var: Any
    cvar: Any
    standard_error: Any
    var_interval: tuple[Any, Any]
    n_paths: int
    horizon: int
    seed: int | None
    distribution: str
    compound: bool


def _cholesky(xp: Any, cov: Any) -> Any:
    try:
        L = xp.linalg.cholesky(cov)
    except Exception:
        L = None
    if L is not None and bool(xp.all(xp.isfinite(L))):
        return L
    # positive semi-definite: eigen-decomposition square root (clipped eigenvalues)
    w, V = xp.linalg.eigh(cov)
    if float(xp.min(w)) < -1e-10 * max(float(xp.max(xp.abs(w))), 1e-300):
        raise InvalidInput("cov", "is not positive semi-definite")
    w = xp.where(w > 0, w, xp.zeros_like(w))
    return V * xp.sqrt(w)[None, :]


def monte_carlo_var(
    weights: Any,
    mu: Any,
    cov: Any,
    confidence: float = 0.95,
    horizon: int = 1,
    *,
    n_paths: int = 1_000_000,
    seed: int | None = 0,
    distribution: str = "normal",
    dof: float | None = None,
    compound: bool = True,
    chunk_size: int | None = None,
    max_chunk_bytes: int | None = None,
) -> MonteCarloVaR:
    """Monte Carlo VaR / CVaR by simulating correlated daily returns, in bounded memory.

    Each path draws ``horizon`` daily return vectors ``r = mu + L z`` (``L`` the Cholesky
    factor of ``cov``; ``z`` standard normal, or multivariate Student-t scaled to unit
    variance when ``distribution="t"``). With ``compound=True`` asset values compound over
    the horizon and the portfolio return is ``sum_i w_i (prod_t (1 + r_ti) - 1)`` (buy and
    hold); with ``compound=False`` it is ``sum_t w . r_t`` (additive, the parametric model).

    Paths are generated in chunks of ``chunk_size`` (default: as many as fit
    ``max_chunk_bytes`` of draws: 64 MiB on the host, 512 MiB on a GPU), so memory is bounded
    by one chunk plus the ``n_paths x k`` portfolio returns. Draws use the backend's own seeded generator (NumPy PCG64, a
    ``torch.Generator``, CuPy's RandomState): the same seed gives the same numbers on one
    backend, not across backends.

    The paths form scenario blocks of :data:`MC_BLOCK_PATHS` (262,144), each drawn from its
    own stream: the first from ``seed`` itself (so up to one block the numbers are those of a
    single stream), block ``b`` from ``numpy.random.SeedSequence(seed).spawn(b)[b - 1]``. The
    blocks depend on ``n_paths`` only, not on ``chunk_size`` or where they run: with
    ``PRISM_DASK_SCHEDULER`` set (NumPy inputs), each block is one Dask task
    (:mod:`prism_kernels.distributed`) and the result is the same as in process.

    Parameters
    ----------
    weights : array (n,) or (k, n)
        Portfolio weights; ``k`` portfolios share the same scenarios.
    mu : array (n,)
        Per-period expected returns.
    cov : array (n, n)
        Per-period covariance (positive semi-definite).

    Returns
    -------
    MonteCarloVaR
    """
    c = _check_confidence(confidence)
    h = _check_horizon(horizon)
    try:
        n_paths = int(n_paths)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("n_paths", "must be an integer") from exc
    if n_paths < 100:
        raise InvalidInput("n_paths", f"must be at least 100; got {n_paths}")
    dist = (
        "t"
        if str(distribution).lower() in ("t", "student_t", "student-t")
        else str(distribution).lower()
    )
    if dist not in DISTRIBUTIONS:
        raise InvalidInput("distribution", f"must be 'normal' or 't'; got {distribution!r}")
    if dist == "t" and (dof is None or not float(dof) > 2):
        raise InvalidInput("dof", "must be given and > 2 for Monte Carlo with Student-t shocks")
    cov = to_float_array(cov, "cov")
    xp = get_namespace(cov)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise InvalidInput("cov", f"must be a square (n, n) matrix; got shape {tuple(cov.shape)}")
    n = cov.shape[0]
    check_finite(cov, "cov")
    mu = to_float_array(mu, "mu")
    w = to_float_array(weights, "weights")
    if backend_name(mu) != backend_name(cov):
        mu = _like(mu, cov)
    if backend_name(w) != backend_name(cov):
        w = _like(w, cov)
    if mu.ndim != 1 or mu.shape[0] != n:
        raise InvalidInput("mu", f"must have shape ({n},) to match cov; got {tuple(mu.shape)}")
    if w.ndim not in (1, 2) or w.shape[-1] != n:
        raise InvalidInput("weights", f"must have shape ({n},) or (k, {n}); got {tuple(w.shape)}")
    check_finite(mu, "mu")
    check_finite(w, "weights")
    single = w.ndim == 1
    W = w[None, :] if single else w  # (k, n)
    L = _cholesky(xp, cov)
    if max_chunk_bytes is None:
        on_gpu = backend_name(cov) == "cupy" or str(getattr(cov, "device", "cpu")).startswith(
            "cuda"
        )
        max_chunk_bytes = (512 if on_gpu else 64) * 2**20
    if chunk_size is None:
        chunk_size = max(1024, int(max_chunk_bytes // (8 * n * (2 if compound else 1) + 8)))
    chunk_size = int(min(chunk_size, n_paths))
    # Scenario blocks of MC_BLOCK_PATHS paths, each with its own random stream (block 0: the
    # seed's own generator; block b > 0: the seed's spawned child b - 1). The split depends on
    # n_paths alone, so the numbers are the same in process and as Dask tasks (NumPy inputs
    # with PRISM_DASK_SCHEDULER set: one task per block; device arrays stay on their device).
    block_seed = (
        int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
        if seed is None
        else check_seed(seed)
    )
    calls = [
        (
            _mc_block,
            (L, mu, W),
            {
                "paths": len(r),
                "chunk_size": chunk_size,
                "horizon": h,
                "seed": block_seed,
                "block": b,
                "dist": dist,
                "dof": None if dof is None else float(dof),
                "compound": bool(compound),
            },
        )
        for b, r in enumerate(_blocks(n_paths))
    ]
    if backend_name(cov) == "numpy":
        from prism_kernels.distributed import run_calls

        parts = run_calls(calls, desc="monte-carlo-var")
    else:
        parts = [fn(*args, **kwargs) for fn, args, kwargs in calls]
    P = xp.concat(parts, axis=0) if len(parts) > 1 else parts[0]
    p = 1.0 - c
    s = xp.sort(P, axis=0, stable=False)
    q = _sorted_quantile(s, p, "linear")
    cvar = -_sorted_tail_mean(xp, s, q)
    # distribution-free 95 % interval of the p-quantile from order statistics
    half = 1.959963984540054 * math.sqrt(n_paths * p * (1.0 - p))
    lo_i = min(max(int(math.floor(n_paths * p - half)), 0), n_paths - 1)
    hi_i = min(max(int(math.ceil(n_paths * p + half)), 0), n_paths - 1)
    ret_lo, ret_hi = s[lo_i, :], s[hi_i, :]
    se = (ret_hi - ret_lo) / (2 * 1.959963984540054)
    var = -q
    interval = (-ret_hi, -ret_lo)
    if single:
        var, cvar, se = var[0], cvar[0], se[0]
        interval = (interval[0][0], interval[1][0])
    return MonteCarloVaR(var, cvar, se, interval, n_paths, h, seed, dist, bool(compound))


MC_BLOCK_PATHS = 2**18
"""Monte Carlo paths per scenario block (one random stream, one Dask task each)."""


def _blocks(n_paths: int) -> list[range]:
    """The scenario blocks of ``n_paths`` paths: consecutive ranges of ``MC_BLOCK_PATHS``."""
    return [
        range(lo, min(lo + MC_BLOCK_PATHS, n_paths)) for lo in range(0, n_paths, MC_BLOCK_PATHS)
    ]


def _block_rng(xp_like: Any, seed: int, block: int) -> Any:
    """The generator of scenario block ``block``: block 0 draws from ``seed`` itself (as a
    single-block run always has), block ``b > 0`` from ``SeedSequence(seed).spawn(...)[b - 1]``."""
    if block == 0:
        return _rng(xp_like, seed)
    ss = np.random.SeedSequence(seed, spawn_key=(block - 1,))
    word = int(ss.generate_state(1, np.uint64)[0])
    name = backend_name(xp_like)
    if name == "torch":
        import torch

        g = torch.Generator(device=device_of(xp_like))
        g.manual_seed(word)
        return ("torch", g, np.random.default_rng(ss))
    if name == "cupy":
        import cupy

        return ("cupy", cupy.random.RandomState(word), np.random.default_rng(ss))
    return ("numpy", np.random.default_rng(ss), None)


def _mc_block(
    L: Any,
    mu: Any,
    W: Any,
    *,
    paths: int,
    chunk_size: int,
    horizon: int,
    seed: int,
    block: int,
    dist: str,
    dof: float | None,
    compound: bool,
) -> Any:
    """Portfolio returns ``(paths, k)`` of one scenario block (:func:`monte_carlo_var`), drawn
    from the block's own stream in memory chunks of ``chunk_size`` paths."""
    xp = get_namespace(L)
    gen = _block_rng(L, seed, block)
    n = L.shape[0]
    t_scale = math.sqrt((float(dof) - 2.0) / float(dof)) if dist == "t" else 1.0
    Lt = mT(L)
    Wt = mT(W)
    parts = []
    done = 0
    while done < paths:
        m = min(chunk_size, paths - done)
        acc = None
        for _ in range(horizon):
            z = _standard_normal(gen, (m, n), L)
            if dist == "t":
                chi = _chisquare(gen, float(dof), m, L)
                z = z * (t_scale / xp.sqrt(chi / float(dof)))[:, None]
            r = xp.matmul(z, Lt) + mu[None, :]
            if compound:
                acc = 1.0 + r if acc is None else acc * (1.0 + r)
            else:
                acc = r if acc is None else acc + r
        port = xp.matmul(acc - 1.0, Wt) if compound else xp.matmul(acc, Wt)  # (m, k)
        parts.append(port)
        done += m
    return xp.concat(parts, axis=0) if len(parts) > 1 else parts[0]


def _like(x: Any, ref: Any) -> Any:
    """``x`` as float64 on the backend and device of ``ref`` (through the host)."""
    return as_float(to_numpy(x), get_namespace(ref), like=ref)


# --------------------------------------------------------------------------------------
# volatility, drawdown, beta, Sharpe, Sortino
# --------------------------------------------------------------------------------------


def volatility(returns: Any, periods_per_year: float | None = None, ddof: int = 1) -> Any:
    """Standard deviation of returns along time (``ddof=1``), annualised by ``sqrt(periods_per_year)`` when given."""
    r = as_returns(returns, min_periods=ddof + 1)
    xp = get_namespace(r)
    v = xp.std(r, axis=0, correction=ddof)
    return v * math.sqrt(periods_per_year) if periods_per_year else v


def wealth(returns: Any, initial: float = 1.0) -> Any:
    """Compounded value ``initial * prod(1 + r)``, shape ``(T + 1, ...)`` starting at ``initial``."""
    r = as_returns(returns)
    xp = get_namespace(r)
    growth = xp.cumulative_prod(1.0 + r, axis=0)
    first = xp.ones_like(r[:1, ...])
    return initial * xp.concat([first, growth], axis=0)


def drawdown_series(values: Any) -> Any:
    """Drawdown ``values / running_max(values) - 1`` (<= 0) of a value or price path ``(T,)``/``(T, k)``."""
    v = to_float_array(values, "values")
    if v.ndim not in (1, 2) or v.shape[0] == 0:
        raise InvalidInput(
            "values", f"must be a non-empty (T,) or (T, k) array; got {tuple(v.shape)}"
        )
    xp = get_namespace(v)
    check_finite(v, "values")
    if bool(xp.any(v <= 0)):
        raise InvalidInput("values", "must be positive (a value or price path)")
    return v / _cummax(v, axis=0) - 1.0


@dataclass
class MaxDrawdown:
    """Largest peak-to-trough fall of a value path.

    ``value``: the fall as a positive fraction (0.25 = -25 %). Indices refer to the value
    path (for :func:`max_drawdown` from returns, index 0 is the start before the first
    return and index ``t`` the value after return ``t-1``). ``recovery_index`` is the first
    index after the trough at which the previous peak is regained (None if never).
    ``duration``: periods from peak to recovery (or to the end when not recovered).
    Dates are filled when ``dates`` were given. Arrays of shape (k,) for (T, k) inputs.
    """

    value: Any
    peak_index: Any
    trough_index: Any
    recovery_index: Any
    duration: Any
    peak_date: Any = None
    trough_date: Any = None
    recovery_date: Any = None

    def to_dict(self) -> dict[str, Any]:
        def conv(x: Any) -> Any:
            if x is None:
                return None
            if hasattr(x, "isoformat"):
                return x.isoformat()
            a = to_numpy(x) if not isinstance(x, (int, float, str)) else x
            if isinstance(a, np.ndarray):
                return a.tolist()
            return a

        return {k: conv(v) for k, v in self.__dict__.items()}


def max_drawdown(returns: Any = None, *, prices: Any = None, dates: Any = None) -> MaxDrawdown:
    """Maximum drawdown of compounded returns (value path starting at 1) or of a price path.

    Parameters
    ----------
    returns : array (T,) or (T, k), optional
        Simple per-period returns; the value path has ``T + 1`` points (starting at 1).
    prices : array (T,) or (T, k), optional
        A price or value path, used as is (give ``returns`` or ``prices``).
    dates : sequence, optional (1-D input only)
        Labels of the value path (length ``T + 1``), or of the returns (length ``T``, index 0
        then has no date).
    """
    if (returns is None) == (prices is None):
        raise InvalidInput("returns", "give exactly one of returns or prices")
    v = wealth(returns) if returns is not None else to_float_array(prices, "prices")
    dd = drawdown_series(v)
    xp = get_namespace(dd)
    T = v.shape[0]
    trough = xp.argmin(dd, axis=0)
    value = -xp.min(dd, axis=0)
    vn, ddn, tn = to_numpy(v), to_numpy(dd), to_numpy(trough)
    one = vn.ndim == 1
    V = vn[:, None] if one else vn
    D = ddn[:, None] if one else ddn
    tr = np.atleast_1d(tn)
    peaks, recs, durs = [], [], []
    for j, t in enumerate(tr):
        t = int(t)
        pk = int(np.argmax(V[: t + 1, j]))
        after = np.nonzero(D[t:, j] >= 0)[0]
        rec = int(t + after[0]) if (after.size and D[t, j] < 0) else None
        if D[t, j] == 0:
            pk, rec = t, t
        peaks.append(pk)
        recs.append(rec)
        durs.append((rec if rec is not None else T - 1) - pk)
    if one:
        out = MaxDrawdown(value, peaks[0], int(tr[0]), recs[0], durs[0])
        if dates is not None:
            labels = list(dates)
            if len(labels) == T - 1 and returns is not None:
                labels = [None, *labels]
            if len(labels) != T:
                raise InvalidInput("dates", f"must have {T} or {T - 1} labels; got {len(labels)}")
            out.peak_date = labels[out.peak_index]
            out.trough_date = labels[out.trough_index]
            out.recovery_date = (
                labels[out.recovery_index] if out.recovery_index is not None else None
            )
        return out
    return MaxDrawdown(value, np.array(peaks), tn, recs, np.array(durs))


def beta(returns: Any, benchmark: Any) -> Any:
    """Beta ``cov(r, b) / var(b)`` (both ddof=1) of each series against a benchmark series ``(T,)``."""
    r = as_returns(returns, min_periods=2)
    b = as_returns(benchmark, "benchmark", min_periods=2)
    if backend_name(b) != backend_name(r):
        b = _like(b, r)
    if b.ndim != 1:
        raise InvalidInput("benchmark", f"must be one series (T,); got shape {tuple(b.shape)}")
    if b.shape[0] != r.shape[0]:
        raise InvalidInput("benchmark", f"has {b.shape[0]} periods but returns have {r.shape[0]}")
    xp = get_namespace(r)
    bc = b - xp.mean(b)
    var_b = xp.sum(bc * bc) / (b.shape[0] - 1)
    if float(var_b) == 0.0:
        raise InvalidInput("benchmark", "has zero variance")
    rc = r - xp.mean(r, axis=0)
    cov = xp.sum(rc * (bc if r.ndim == 1 else bc[:, None]), axis=0) / (r.shape[0] - 1)
    return cov / var_b


def sharpe_ratio(
    returns: Any, risk_free: float = 0.0, periods_per_year: float | None = None
) -> Any:
    """Sharpe ratio ``mean(r - rf) / std(r, ddof=1)``; ``risk_free`` per period; times ``sqrt(periods_per_year)`` when given."""
    r = as_returns(returns, min_periods=2)
    xp = get_namespace(r)
    ex = r - risk_free
    s = xp.mean(ex, axis=0) / xp.std(r, axis=0, correction=1)
    return s * math.sqrt(periods_per_year) if periods_per_year else s


def sortino_ratio(returns: Any, target: float = 0.0, periods_per_year: float | None = None) -> Any:
    """Sortino ratio ``mean(r - target) / sqrt(mean(min(r - target, 0)^2))`` (per period,
    times ``sqrt(periods_per_year)`` when given); ``inf`` when there is no downside."""
    r = as_returns(returns, min_periods=1)
    xp = get_namespace(r)
    ex = r - target
    down = xp.minimum(ex, xp.zeros_like(ex))
    dd = xp.sqrt(xp.mean(down * down, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):  # no downside: +inf, as documented
        s = xp.mean(ex, axis=0) / dd
    return s * math.sqrt(periods_per_year) if periods_per_year else s


# --------------------------------------------------------------------------------------
# component VaR
# --------------------------------------------------------------------------------------


@dataclass
class ComponentVaR:
    """Euler decomposition of parametric VaR: ``component`` sums to ``var`` over assets.

    ``marginal``: d VaR / d w_i; ``component = w * marginal``; ``percent = component / var``.
    Arrays (n,) for one portfolio, (k, n) for k.
    """

    var: Any
    marginal: Any
    component: Any
    percent: Any


def component_var(
    weights: Any,
    cov: Any,
    confidence: float = 0.95,
    horizon: int = 1,
    *,
    mu: Any = None,
    distribution: str = "normal",
    dof: float | None = None,
) -> ComponentVaR:
    """Each asset's contribution to parametric VaR (Euler allocation; sums to the VaR).

    ``VaR(w) = -h w.mu + sqrt(h) k_c sqrt(w' S w)`` with ``k_c = z_c`` (normal) or the
    unit-variance t quantile ``t_c sqrt((dof-2)/dof)``; ``marginal_i = -h mu_i + sqrt(h)
    k_c (S w)_i / sqrt(w' S w)``. ``weights`` (n,) or (k, n); ``cov`` (n, n) per period.
    """
    c = _check_confidence(confidence)
    h = _check_horizon(horizon)
    S = to_float_array(cov, "cov")
    xp = get_namespace(S)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape[0] == 0:
        raise InvalidInput("cov", f"must be a square (n, n) matrix; got shape {tuple(S.shape)}")
    check_finite(S, "cov")
    n = S.shape[0]
    w = to_float_array(weights, "weights")
    if backend_name(w) != backend_name(S):
        w = _like(w, S)
    if w.ndim not in (1, 2) or w.shape[-1] != n:
        raise InvalidInput("weights", f"must have shape ({n},) or (k, {n}); got {tuple(w.shape)}")
    check_finite(w, "weights")
    if str(distribution).lower() == "normal":
        k = float(special.ndtri(c))
    else:
        if dof is None or not float(dof) > 2:
            raise InvalidInput("dof", "must be given and > 2 for the Student-t component VaR")
        k = float(stats.t.ppf(c, float(dof))) * math.sqrt((float(dof) - 2.0) / float(dof))
    Sw = xp.matmul(w, S)  # (n,) or (k, n): S symmetric
    sig = xp.sqrt(xp.sum(w * Sw, axis=-1))
    if bool(xp.any(sig == 0)):
        raise InvalidInput(
            "weights", "give a portfolio with zero variance; VaR has no decomposition"
        )
    marginal = math.sqrt(h) * k * Sw / (sig[..., None] if w.ndim == 2 else sig)
    if mu is not None:
        m = to_float_array(mu, "mu")
        if backend_name(m) != backend_name(S):
            m = _like(m, S)
        if m.ndim != 1 or m.shape[0] != n:
            raise InvalidInput("mu", f"must have shape ({n},); got {tuple(m.shape)}")
        marginal = marginal - h * m
    comp = w * marginal
    var = xp.sum(comp, axis=-1)
    pct = comp / (var[..., None] if w.ndim == 2 else var)
    return ComponentVaR(var, marginal, comp, pct)


# --------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------


def _f(x: Any) -> float | None:
    if x is None:
        return None
    v = float(to_numpy(x)) if not isinstance(x, (int, float)) else float(x)
    return v if math.isfinite(v) else None


def _list(x: Any) -> list:
    return np.asarray(to_numpy(x), dtype=np.float64).tolist()


def risk_report(
    weights: Any,
    returns: Any = None,
    *,
    cov: Any = None,
    mu: Any = None,
    confidence: float = 0.95,
    horizon: int = 1,
    benchmark: Any = None,
    notional: float = 1.0,
    periods_per_year: float = 252.0,
    risk_free: float = 0.0,
    dof: float | None = None,
    mc_paths: int = 100_000,
    seed: int | None = 0,
    asset_names: list[str] | None = None,
    dates: Any = None,
    quantile_method: str = "linear",
    fit_t: bool = True,
) -> dict[str, Any]:
    """Every risk figure of one portfolio, as a JSON-able dict.

    Parameters
    ----------
    weights : (n,)
    returns : (T, n) per-period asset returns (pandas DataFrame accepted: its columns name
        the assets and its index dates the drawdown). When given, ``mu``/``cov`` default to
        the sample mean and covariance, and the history-based figures are computed.
    cov, mu : (n, n), (n,) per-period moments (for a report without history; ``mu``
        defaults to zero then).
    confidence, horizon : VaR level and horizon in periods (days).
    benchmark : (T,) benchmark returns for beta; default the equal-weighted universe.
    notional : money value of the portfolio; ``*_amount`` fields are fractions times it.
    dof : Student-t degrees of freedom; None fits them to the portfolio returns (when
        ``fit_t``; the maximum-likelihood fit costs ~0.1-1 s, so ``fit_t=False`` skips the t).
    mc_paths, seed : Monte Carlo paths and seed (0 paths: skip Monte Carlo).

    Returns
    -------
    dict
        ``var``/``cvar`` (by method: ``historical``, ``parametric_normal``, ``parametric_t``,
        ``monte_carlo``; positive fractions), ``var_amount``/``cvar_amount``, ``monte_carlo``
        (paths, standard error), ``volatility`` and ``volatility_annual``, ``expected_return``
        and ``expected_return_annual``, ``sharpe_ratio``/``sortino_ratio`` (annualised),
        ``max_drawdown`` (value, indices, dates), ``beta``, ``component_var``,
        ``marginal_var``, ``percent_contribution``, ``covariance``, ``correlation_matrix``.
        Figures that need history are None when only ``cov`` is given.
    """
    if hasattr(returns, "columns") and asset_names is None:
        asset_names = [str(c) for c in returns.columns]
    if hasattr(returns, "index") and dates is None and hasattr(returns, "columns"):
        dates = list(returns.index)
    w = to_float_array(weights, "weights")
    if w.ndim != 1 or w.shape[0] == 0:
        raise InvalidInput(
            "weights", f"must be a non-empty vector (n,); got shape {tuple(w.shape)}"
        )
    xp = get_namespace(w)
    check_finite(w, "weights")
    n = w.shape[0]
    R = None
    if returns is not None:
        R = as_returns(returns, min_periods=2)
        if R.ndim != 2 or R.shape[1] != n:
            raise InvalidInput(
                "weights", f"has {n} entries but returns have shape {tuple(R.shape)} (T, n)"
            )
        if backend_name(w) != backend_name(R):
            w = _like(w, R)
        xp = get_namespace(R)
        if mu is None:
            mu = xp.mean(R, axis=0)
        if cov is None:
            Rc = R - xp.mean(R, axis=0)
            cov = xp.matmul(mT(Rc), Rc) / (R.shape[0] - 1)
    if cov is None:
        raise InvalidInput("returns", "give returns (T, n) or a covariance matrix")
    cov = to_float_array(cov, "cov")
    if backend_name(cov) != backend_name(w):
        cov = _like(cov, w)
    xp = get_namespace(cov)
    if cov.ndim != 2 or cov.shape != (n, n):
        raise InvalidInput("cov", f"must be ({n}, {n}) to match weights; got {tuple(cov.shape)}")
    check_finite(cov, "cov")
    mu = xp.zeros((n,), dtype=xp.float64) if mu is None else _like(to_float_array(mu, "mu"), cov)
    if mu.shape != (n,):
        raise InvalidInput("mu", f"must have shape ({n},); got {tuple(mu.shape)}")
    c = _check_confidence(confidence)
    h = _check_horizon(horizon)
    if asset_names is not None and len(asset_names) != n:
        raise InvalidInput("asset_names", f"has {len(asset_names)} names for {n} assets")

    mu_p = xp.sum(w * mu)
    sig_p = xp.sqrt(xp.sum(w * xp.matmul(cov, w)))
    var_: dict[str, float | None] = {"historical": None}
    cvar_: dict[str, float | None] = {"historical": None}
    v, cv = normal_var_cvar(mu_p, sig_p, c, h)
    var_["parametric_normal"], cvar_["parametric_normal"] = _f(v), _f(cv)
    out: dict[str, Any] = {
        "confidence": c,
        "horizon_days": h,
        "notional": float(notional),
        "n_assets": n,
        "n_periods": None if R is None else int(R.shape[0]),
        "asset_names": asset_names,
        "weights": _list(w),
    }
    t_info = None
    rp = None
    if R is not None:
        rp = xp.matmul(R, w)
        hv, hc = historical_var_cvar(rp, c, h, quantile_method) if R.shape[0] >= h else (None, None)
        var_["historical"], cvar_["historical"] = _f(hv), _f(hc)
        if R.shape[0] >= 3 and (dof is not None or fit_t):
            t_info = parametric_var_cvar(rp, c, h, distribution="t", dof=dof)
    elif dof is not None:
        t_info = parametric_var_cvar(None, c, h, distribution="t", mu=mu_p, sigma=sig_p, dof=dof)
    if t_info is not None:
        var_["parametric_t"], cvar_["parametric_t"] = _f(t_info["var"]), _f(t_info["cvar"])
        out["t_dof"] = _f(t_info["dof"])
    else:
        var_["parametric_t"] = cvar_["parametric_t"] = None
        out["t_dof"] = None
    if mc_paths:
        mc = monte_carlo_var(w, mu, cov, c, h, n_paths=mc_paths, seed=seed)
        var_["monte_carlo"], cvar_["monte_carlo"] = _f(mc.var), _f(mc.cvar)
        out["monte_carlo"] = {
            "paths": mc.n_paths,
            "seed": seed,
            "standard_error": _f(mc.standard_error),
            "var_interval_95": [_f(mc.var_interval[0]), _f(mc.var_interval[1])],
        }
    else:
        var_["monte_carlo"] = cvar_["monte_carlo"] = None
        out["monte_carlo"] = None
    out["var"] = var_
    out["cvar"] = cvar_
    out["var_amount"] = {k: (None if x is None else x * notional) for k, x in var_.items()}
    out["cvar_amount"] = {k: (None if x is None else x * notional) for k, x in cvar_.items()}
    out["expected_return"] = _f(mu_p)
    out["expected_return_annual"] = _f(mu_p) * periods_per_year
    out["volatility"] = _f(sig_p)
    out["volatility_annual"] = _f(sig_p) * math.sqrt(periods_per_year)
    if rp is not None:
        out["realized_volatility_annual"] = _f(volatility(rp, periods_per_year))
        with np.errstate(divide="ignore", invalid="ignore"):  # flat history: None, not inf
            out["sharpe_ratio"] = _f(sharpe_ratio(rp, risk_free, periods_per_year))
            out["sortino_ratio"] = _f(sortino_ratio(rp, risk_free, periods_per_year))
        out["max_drawdown"] = max_drawdown(rp, dates=dates).to_dict()
        if benchmark is None:
            bench = xp.mean(R, axis=1)
            out["benchmark"] = "equal_weight_universe"
        else:
            bench = benchmark
            out["benchmark"] = "given"
        try:
            out["beta"] = _f(beta(rp, bench))
        except InvalidInput:
            if benchmark is not None:
                raise
            out["beta"] = None  # the universe did not move: beta is undefined
    else:
        sd = _f(sig_p)
        out["realized_volatility_annual"] = None
        out["sharpe_ratio"] = (
            None if not sd else (_f(mu_p) - risk_free) / sd * math.sqrt(periods_per_year)
        )
        out["sortino_ratio"] = None
        out["max_drawdown"] = None
        out["benchmark"] = None
        out["beta"] = None
    if _f(sig_p):
        cv_ = component_var(w, cov, c, h, mu=mu)
        out["component_var"] = _list(cv_.component)
        out["marginal_var"] = _list(cv_.marginal)
        out["percent_contribution"] = _list(cv_.percent)
    else:
        out["component_var"] = out["marginal_var"] = out["percent_contribution"] = None
    cov_np = np.asarray(to_numpy(cov))
    d = np.sqrt(np.diag(cov_np))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov_np / np.outer(d, d)
    corr = np.where(np.isfinite(corr), corr, 0.0)
    out["covariance"] = cov_np.tolist()
    out["correlation_matrix"] = corr.tolist()
    return out


def portfolio_statistics(
    weights: Any,
    returns: Any = None,
    *,
    expected_returns: Any = None,
    volatilities: Any = None,
    notional: float = 1.0,
    risk_free: float = 0.0,
    periods_per_year: float = 252.0,
) -> dict[str, Any]:
    """The headline statistics of a held portfolio (what a book shows beside it).

    From a return history ``returns`` ``(T, n)`` (T >= 2): annual expected return and
    volatility, Sharpe and Sortino (annualised), maximum drawdown and the 1-day 95 % historical
    VaR/CVaR in money at ``notional`` (and the parametric VaR), from :func:`risk_report`.
    Without one, from per-asset annual ``expected_returns`` and ``volatilities`` ``(n,)``
    assumed uncorrelated (said in ``source``; ``risk_free``, annual, enters that Sharpe ratio);
    with neither, ``source`` is ``"none"``.

    Returns
    -------
    dict: ``periods_per_year``, ``source`` and the figures above (``expected_return``,
    ``volatility``, ``sharpe_ratio``, ``var_95_1d``, ``cvar_95_1d``...).
    """
    w = np.asarray(to_numpy(weights), dtype=np.float64)
    stats: dict[str, Any] = {"periods_per_year": float(periods_per_year)}
    if returns is not None and np.shape(returns)[0] >= 2:
        rep = risk_report(
            w,
            returns,
            notional=notional,
            mc_paths=0,
            periods_per_year=periods_per_year,
            fit_t=False,
        )
        stats.update(
            source="returns",
            n_periods=int(np.shape(returns)[0]),
            expected_return=rep["expected_return_annual"],
            volatility=rep["volatility_annual"],
            sharpe_ratio=rep["sharpe_ratio"],
            sortino_ratio=rep["sortino_ratio"],
            max_drawdown=rep["max_drawdown"]["value"] if rep["max_drawdown"] else None,
            var_95_1d=rep["var_amount"]["historical"],
            cvar_95_1d=rep["cvar_amount"]["historical"],
            var_95_1d_parametric=rep["var_amount"]["parametric_normal"],
        )
        return stats
    if expected_returns is not None and volatilities is not None:
        mu = np.asarray(expected_returns, dtype=np.float64)
        cov = np.diag(np.asarray(volatilities, dtype=np.float64) ** 2)
        er = float(w @ mu)
        vol = float(np.sqrt(w @ cov @ w))
        v, cv = normal_var_cvar(er / periods_per_year, vol / math.sqrt(periods_per_year), 0.95, 1)
        stats.update(
            source="asset_assumptions (uncorrelated)",
            expected_return=er,
            volatility=vol,
            sharpe_ratio=(er - risk_free) / vol if vol > 0 else None,
            var_95_1d=float(v) * notional,
            cvar_95_1d=float(cv) * notional,
        )
        return stats
    stats["source"] = "none"
    return stats
