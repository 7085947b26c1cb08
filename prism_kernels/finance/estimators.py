"""Return and risk estimators: returns from prices, mean returns, sample / Ledoit-Wolf / EWMA
covariance, the one check of a covariance matrix, and the moments a portfolio is built on.

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

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prism_kernels.arrays import check_finite, mT, symmetrize
from prism_kernels.backend import get_namespace, to_numpy
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


# ----------------------------------------------------------------------------- one rule for covariances

SINGULAR_RATIO = 1e-10
"""A covariance whose smallest eigenvalue is at most this fraction of its largest is singular."""


def check_covariance(cov: Any, field: str = "cov", *, correlation: bool = False) -> Any:
    """The one check of a covariance (or correlation) matrix, ``(n, n)`` or a batch ``(B, n, n)``.

    A covariance must be finite, symmetric and positive definite. A singular one (smallest
    eigenvalue at most :data:`SINGULAR_RATIO` times the largest, e.g. two identical assets or
    fewer observations than assets) is **rejected**, never silently regularised: some
    combination of the assets would be riskless and an optimum would not be unique. With
    ``correlation=True`` the diagonal must be ones and every entry in [-1, 1].

    Returns
    -------
    The matrix as float64 on its own backend, symmetrised.

    Raises
    ------
    InvalidInput
        Naming ``field``: not square, NaN/inf, not symmetric, zero or negative, not positive
        semi-definite, singular.
    """
    if not hasattr(cov, "shape"):
        try:
            cov = np.asarray(cov, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(field, "must be an n x n matrix of numbers") from exc
    xp = get_namespace(cov)
    a = xp.asarray(cov, dtype=xp.float64)
    if a.ndim not in (2, 3) or a.shape[-1] != a.shape[-2] or a.shape[-1] < 1:
        raise InvalidInput(
            field, f"must be an (n, n) matrix (or a batch of them); got shape {tuple(a.shape)}"
        )
    check_finite(a, field)
    scale = float(xp.max(xp.abs(a)))
    if float(xp.max(xp.abs(a - mT(a)))) > 1e-8 * max(scale, 1e-300):
        raise InvalidInput(field, "must be symmetric")
    a = symmetrize(a)
    if correlation:
        d = to_numpy(xp.linalg.diagonal(a))
        if not np.allclose(d, 1.0, atol=1e-8):
            raise InvalidInput(field, "a correlation matrix has ones on its diagonal")
        if scale > 1.0 + 1e-12:
            raise InvalidInput(field, "correlations must lie in [-1, 1]")
    ev = np.atleast_2d(to_numpy(xp.linalg.eigvalsh(a)))  # (B, n), ascending
    lo, hi = ev[:, 0], ev[:, -1]
    if np.any(hi <= 0.0):
        raise InvalidInput(field, "is zero or negative: no asset has any risk")
    b = int(np.argmin(lo / hi))
    if lo[b] < -1e-8 * hi[b]:
        raise InvalidInput(
            field, f"is not positive semi-definite (smallest eigenvalue {lo[b]:.3g})"
        )
    if lo[b] <= SINGULAR_RATIO * hi[b]:
        raise InvalidInput(
            field,
            f"is singular (smallest eigenvalue {lo[b]:.3g}, largest {hi[b]:.3g}): some "
            "combination of the assets is riskless; drop redundant assets, use more "
            "observations than assets, or give a full-rank matrix",
        )
    return a


# ----------------------------------------------------------------------------- portfolio moments


@dataclass
class Moments:
    """What a portfolio is optimised on.

    ``mu`` ``(n,)`` annual expected returns, ``cov`` ``(n, n)`` annual covariance (both NumPy,
    float64), ``returns`` the ``(T, n)`` per-period history they came from (or None), and
    ``assumptions``: where each came from, in words (reported with every answer).
    """

    mu: np.ndarray
    cov: np.ndarray
    returns: np.ndarray | None = None
    assumptions: dict[str, Any] = field(default_factory=dict)


def estimate_moments(
    n: int,
    *,
    returns: Any = None,
    expected_returns: Any = None,
    volatilities: Any = None,
    covariance: Any = None,
    correlation: Any = None,
    periods_per_year: int = PERIODS_PER_YEAR,
    returns_field: str = "returns",
) -> Moments:
    """Annual moments of ``n`` assets from a history, or from assumptions about each asset.

    With ``returns`` ``(T, n)`` (T >= 2): the annualised mean and the Ledoit-Wolf covariance
    (times ``periods_per_year``); ``expected_returns`` ``(n,)``, when given, replace the mean
    (the caller's views win). Without a history: ``expected_returns`` are required, and the
    covariance is ``covariance`` (annual, checked by :func:`check_covariance`), or
    ``correlation * outer(volatilities, volatilities)`` (the correlation checked the same way;
    identity when none is given, which ``assumptions`` says).

    Raises
    ------
    InvalidInput
        Naming the argument: ``returns_field`` (too short, wrong width), ``expected_returns``,
        ``volatilities``, ``covariance``, ``correlation``.
    """
    mu_given = None
    if expected_returns is not None:
        mu_given = np.asarray(expected_returns, dtype=np.float64)
        if mu_given.shape != (n,):
            raise InvalidInput("expected_returns", f"must have {n} values (one per asset)")
        if not np.all(np.isfinite(mu_given)):
            raise InvalidInput("expected_returns", "must be finite")
    if returns is not None:
        R = np.asarray(to_numpy(returns), dtype=np.float64)
        if R.ndim != 2 or R.shape[1] != n:
            raise InvalidInput(
                returns_field, f"must have one column per asset ({n}); got shape {R.shape}"
            )
        if R.shape[0] < 2:
            raise InvalidInput(returns_field, "need at least 2 periods to estimate moments")
        check_finite(R, returns_field)
        mu = np.asarray(mean_returns(R, periods_per_year=periods_per_year))
        S = np.asarray(ledoit_wolf(R, periods_per_year=periods_per_year)[0])
        assumptions: dict[str, Any] = {
            "moments": "estimated from the history: annualised mean returns and "
            f"Ledoit-Wolf covariance (x{periods_per_year})",
            "periods": int(R.shape[0]),
            "correlation": "estimated",
        }
        if mu_given is not None:
            mu = mu_given
            assumptions["expected_returns"] = "given"
        return Moments(mu, S, R, assumptions)
    if mu_given is None:
        raise InvalidInput(
            "expected_returns", "are required when no price or return history is given"
        )
    if covariance is not None:
        S = np.asarray(to_numpy(check_covariance(covariance, "covariance")))
        if S.shape != (n, n):
            raise InvalidInput(
                "covariance",
                f"must be ({n}, {n}): one row and column per asset; got shape {S.shape}",
            )
        return Moments(mu_given, S, None, {"covariance": "given (annual)"})
    if volatilities is None:
        raise InvalidInput("volatilities", "are required when no history or covariance is given")
    vol = np.asarray(volatilities, dtype=np.float64)
    if vol.shape != (n,):
        raise InvalidInput("volatilities", f"must have {n} values (one per asset)")
    if not np.all(np.isfinite(vol)) or np.any(vol <= 0):
        raise InvalidInput("volatilities", "must be finite and > 0")
    if correlation is not None:
        C = np.asarray(to_numpy(check_covariance(correlation, "correlation", correlation=True)))
        if C.shape != (n, n):
            raise InvalidInput(
                "correlation",
                f"must be ({n}, {n}): one row and column per asset; got shape {C.shape}",
            )
        assumptions = {"correlation": "given", "covariance": "correlation x volatilities"}
    else:
        C = np.eye(n)
        assumptions = {
            "correlation": "identity",
            "note": "no correlation, covariance or price history was given: the assets "
            "are assumed uncorrelated (correlation matrix = identity)",
        }
    return Moments(mu_given, C * np.outer(vol, vol), None, assumptions)
