"""Residual diagnostics: sample autocorrelation and the Ljung-Box test, batched over series.

``acf`` is the standard (biased) sample autocorrelation of Box & Jenkins, the one
``statsmodels.tsa.stattools.acf(x, nlags, adjusted=False, fft=False)`` returns:

    r_k = sum_{t=k}^{n-1} (x_t - xbar)(x_{t-k} - xbar) / sum_t (x_t - xbar)^2,   k = 0..nlags

``ljung_box`` is ``Q = n (n + 2) sum_{k=1}^{L} r_k^2 / (n - k)`` with its chi-square(L - dof)
p-value (Ljung & Box 1978), as ``statsmodels.stats.diagnostic.acorr_ljungbox``.
"""

from __future__ import annotations

import math
from typing import Any

from scipy.stats import chi2

from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.core import as_batch, check_level, z_value


def acf(x: Any, nlags: int) -> Any:
    """Sample autocorrelation at lags ``0..nlags`` of each series.

    Parameters
    ----------
    x : array, shape (B, n) or (n,)
        Finite series (e.g. residuals with their leading NaN removed).
    nlags : int
        Largest lag, ``1 <= nlags < n``.

    Returns
    -------
    array, shape (B, nlags + 1)
        ``r_0 = 1``; a constant series gives NaN at every lag (no variance to normalise by,
        as statsmodels).
    """
    y = as_batch(x, "residuals", min_length=2)
    xp = get_namespace(y)
    n = y.shape[1]
    if isinstance(nlags, bool) or int(nlags) != nlags or not 1 <= nlags < n:
        raise InvalidInput("nlags", f"must be an integer from 1 to {n - 1}, got {nlags!r}")
    nlags = int(nlags)
    d = y - xp.mean(y, axis=1, keepdims=True)
    c0 = xp.sum(d * d, axis=1)
    cols = [xp.sum(d[:, k:] * d[:, : n - k], axis=1) for k in range(nlags + 1)]
    c = xp.stack(cols, axis=1)
    ok = c0 > 0
    safe = xp.where(ok, c0, xp.ones_like(c0))
    nan = xp.full_like(c, float("nan"))
    r = xp.where(ok[:, None], c / safe[:, None], nan)
    return r


def ljung_box(x: Any, lags: int, dof: int = 0) -> tuple[Any, Any]:
    """Ljung-Box statistic and p-value over lags ``1..lags`` of each series.

    Parameters
    ----------
    x : array, shape (B, n) or (n,)
    lags : int
        ``1 <= lags < n``.
    dof : int
        Parameters fitted to produce ``x`` (e.g. ``p + q`` of an ARMA), subtracted from the
        chi-square's degrees of freedom (``lags - dof >= 1``).

    Returns
    -------
    (Q, p_value) : arrays, shape (B,)
    """
    if isinstance(dof, bool) or int(dof) != dof or dof < 0:
        raise InvalidInput("dof", "must be an integer >= 0")
    r = acf(x, lags)
    xp = get_namespace(r)
    n = as_batch(x, "residuals").shape[1]
    if lags - dof < 1:
        raise InvalidInput("dof", f"lags - dof must be >= 1, got {lags} - {dof}")
    k = xp.asarray([float(n - j) for j in range(1, lags + 1)], dtype=xp.float64, device=r.device)
    q = n * (n + 2) * xp.sum(r[:, 1:] ** 2 / k[None, :], axis=1)
    p = chi2.sf(to_numpy(q), lags - dof)
    return q, xp.asarray(p, dtype=xp.float64, device=r.device)


def white_noise_band(n: int, level: float = 0.95) -> float:
    """Half-width of the band that the ACF of ``n`` white-noise values stays inside with
    probability ``level`` at each lag (Bartlett: ``z / sqrt(n)``, 1.96/sqrt(n) at 95 %)."""
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise InvalidInput("n", f"must be an integer >= 1, got {n!r}")
    return z_value(check_level(level)) / math.sqrt(n)
