"""Return and risk estimators: returns from prices, mean returns, sample / Ledoit-Wolf / EWMA covariance.

Conventions
-----------
* ``prices`` is ``(T, n)``: T observations (rows, oldest first) of n assets, strictly positive.
* ``returns`` is ``(T-1, n)`` per-period returns (fractions, 0.01 = 1 %).
* Annualised figures multiply per-period means by ``periods_per_year`` (252 trading days by
  default) and per-period covariances by the same factor, so a covariance's diagonal is an
  annual variance and its square root an annual volatility.

Every function is backend-generic (NumPy, PyTorch, CuPy through ``array-api-compat``) and
computes in float64.
"""

from __future__ import annotations

from typing import Any

from prism_kernels.backend import get_namespace
from prism_kernels.errors import InvalidInput

PERIODS_PER_YEAR = 252


def _as_2d(x: Any, field: str, min_rows: int = 1) -> tuple[Any, Any]:
    xp = get_namespace(x)
    x = xp.asarray(x, dtype=xp.float64)
    if x.ndim == 1:
        x = xp.reshape(x, (x.shape[0], 1))
    if x.ndim != 2:
        raise InvalidInput(
            field, f"expected a (T, n) array, got {x.ndim} dimensions", shape=list(x.shape)
        )
    if x.shape[0] < min_rows or x.shape[1] < 1:
        raise InvalidInput(
            field,
            f"need at least {min_rows} rows and 1 column, got shape {tuple(x.shape)}",
            shape=list(x.shape),
        )
    if not bool(xp.all(xp.isfinite(x))):
        raise InvalidInput(field, "contains NaN or infinite values")
    return xp, x


def validate_prices(prices: Any) -> Any:
    """Check a ``(T, n)`` price array: finite, strictly positive, at least 2 rows.

    Raises
    ------
    InvalidInput
        Naming the field ``"prices"``.
    """
    xp, p = _as_2d(prices, "prices", min_rows=2)
    if not bool(xp.all(p > 0)):
        raise InvalidInput("prices", "prices must be strictly positive")
    return p


def simple_returns(prices: Any) -> Any:
    """Per-period simple returns ``p[t]/p[t-1] - 1``, shape ``(T-1, n)``."""
    p = validate_prices(prices)
    return p[1:, :] / p[:-1, :] - 1.0


def log_returns(prices: Any) -> Any:
    """Per-period log returns ``log(p[t]/p[t-1])``, shape ``(T-1, n)``."""
    p = validate_prices(prices)
    xp = get_namespace(p)
    return xp.log(p[1:, :] / p[:-1, :])


def returns_from_prices(prices: Any, log: bool = False) -> Any:
    """Simple (default) or log returns from a ``(T, n)`` price array."""
    return log_returns(prices) if log else simple_returns(prices)


def validate_returns(returns: Any, min_rows: int = 1) -> Any:
    """Check a ``(T, n)`` returns array: finite, at least ``min_rows`` rows, returns > -1."""
    xp, r = _as_2d(returns, "returns", min_rows=min_rows)
    return r


def annualize_return(mean_period_return: Any, periods_per_year: int = PERIODS_PER_YEAR) -> Any:
    """Arithmetic annualisation: ``mean * periods_per_year``."""
    return mean_period_return * periods_per_year


def annualize_volatility(period_vol: Any, periods_per_year: int = PERIODS_PER_YEAR) -> Any:
    """Square-root-of-time annualisation: ``vol * sqrt(periods_per_year)``."""
    return period_vol * float(periods_per_year) ** 0.5


def mean_returns(
    returns: Any,
    method: str = "arithmetic",
    periods_per_year: int = PERIODS_PER_YEAR,
    annualize: bool = True,
) -> Any:
    """Expected return per asset from per-period returns ``(T, n)``.

    Parameters
    ----------
    method : {"arithmetic", "geometric"}
        ``arithmetic``: mean return (times ``periods_per_year`` when annualised).
        ``geometric``: compounded growth ``prod(1 + r) ** (periods_per_year / T) - 1``
        (PyPortfolioOpt's ``mean_historical_return``); needs simple returns > -1.

    Returns
    -------
    array ``(n,)``: annual (or per-period when ``annualize=False``) expected returns.
    """
    r = validate_returns(returns)
    xp = get_namespace(r)
    T = r.shape[0]
    if method == "arithmetic":
        m = xp.mean(r, axis=0)
        return m * periods_per_year if annualize else m
    if method == "geometric":
        if not bool(xp.all(r > -1.0)):
            raise InvalidInput("returns", "geometric mean needs simple returns above -1")
        growth = xp.exp(xp.sum(xp.log1p(r), axis=0) / T)
        return growth ** (periods_per_year if annualize else 1) - 1.0
    raise InvalidInput("method", f"unknown method {method!r}; choose arithmetic or geometric")


def sample_cov(
    returns: Any, periods_per_year: int = PERIODS_PER_YEAR, annualize: bool = True
) -> Any:
    """Unbiased sample covariance ``(n, n)`` of per-period returns ``(T, n)``, T >= 2."""
    r = validate_returns(returns, min_rows=2)
    xp = get_namespace(r)
    x = r - xp.mean(r, axis=0)
    c = (x.T @ x) / (r.shape[0] - 1)
    c = (c + c.T) / 2.0
    return c * periods_per_year if annualize else c


def ledoit_wolf(
    returns: Any, periods_per_year: int = PERIODS_PER_YEAR, annualize: bool = True
) -> tuple[Any, float]:
    """Ledoit-Wolf shrinkage towards a scaled identity (the estimator of scikit-learn).

    The empirical covariance uses ``1/T`` (maximum likelihood) as in
    ``sklearn.covariance.LedoitWolf``; the shrunk matrix is
    ``(1 - s) * S + s * (trace(S)/n) * I`` with the Ledoit-Wolf (2004) optimal ``s``.

    Returns
    -------
    (cov, shrinkage): ``cov`` ``(n, n)`` (annualised unless ``annualize=False``), ``s`` in [0, 1].
    """
    r = validate_returns(returns, min_rows=2)
    xp = get_namespace(r)
    T, p = r.shape
    x = r - xp.mean(r, axis=0)
    emp = (x.T @ x) / T
    x2 = x**2
    emp_trace = xp.sum(x2, axis=0) / T
    mu = xp.sum(emp_trace) / p
    beta_ = xp.sum(x2.T @ x2)
    delta_ = xp.sum(emp**2)  # = sum((X'X)^2) / T^2
    beta = (beta_ / T - delta_) / (p * T)
    delta = (delta_ - 2.0 * mu * xp.sum(emp_trace) + p * mu**2) / p
    beta = xp.minimum(beta, delta)
    s = 0.0 if float(beta) == 0.0 else float(beta / delta)
    eye = xp.eye(p, dtype=xp.float64, device=getattr(r, "device", None))
    shrunk = (1.0 - s) * emp + s * mu * eye
    return (shrunk * periods_per_year if annualize else shrunk), s


def ewma_cov(
    returns: Any,
    span: float = 180.0,
    periods_per_year: int = PERIODS_PER_YEAR,
    annualize: bool = True,
) -> Any:
    """Exponentially weighted covariance (recent periods weigh more).

    The deviations from the plain sample mean are weighted by ``(1 - a) ** age`` with
    ``a = 2 / (span + 1)`` and the weights normalised to sum to 1 (pandas ``ewm(span).mean()``
    with ``adjust=True``, as in PyPortfolioOpt's ``exp_cov``).

    Returns
    -------
    array ``(n, n)``, annualised unless ``annualize=False``.
    """
    r = validate_returns(returns, min_rows=1)
    if not span >= 1:
        raise InvalidInput("span", "span must be >= 1")
    xp = get_namespace(r)
    T = r.shape[0]
    a = 2.0 / (span + 1.0)
    age = xp.flip(xp.arange(T, dtype=xp.float64, device=getattr(r, "device", None)), axis=0)
    w = (1.0 - a) ** age
    w = w / xp.sum(w)
    x = r - xp.mean(r, axis=0)
    c = (x * w[:, None]).T @ x
    c = (c + c.T) / 2.0
    return c * periods_per_year if annualize else c


def cov_to_corr(cov: Any) -> Any:
    """Correlation matrix of a covariance matrix."""
    xp = get_namespace(cov)
    d = xp.sqrt(xp.linalg.diagonal(cov))
    return cov / (d[:, None] * d[None, :])
