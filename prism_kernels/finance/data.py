"""Real market data shipped inside installed packages (nothing is downloaded).

skfolio bundles daily adjusted closes of 20 S&P 500 stocks (1990-01-02 .. 2022-12-28) and
the S&P 500 index as gzip CSV files in its wheel; these loaders read them from the installed
package. When skfolio (or its data files) is absent they raise
:class:`~prism_kernels.errors.Unavailable` with the reason, never a download.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from prism_kernels.errors import InvalidInput, Unavailable
from prism_kernels.finance.market import generate_market

__all__ = ["DATASETS", "load_prices", "load_sp500", "load_sp500_index", "prices_to_returns"]

DATASETS = ("sp500", "synthetic")
"""Where a price history can come from: the shipped S&P 500 closes or a seeded synthetic market."""


def _skfolio_loader(name: str) -> Any:
    try:
        from skfolio import datasets
    except Exception as exc:  # ImportError, or a broken install
        raise Unavailable(
            "S&P 500 prices come from the skfolio package, which is not installed "
            "(pip install skfolio); or use prism_kernels.finance.market.generate_market"
        ) from exc
    fn = getattr(datasets, name, None)
    if fn is None:
        raise Unavailable(f"this skfolio version has no datasets.{name}")
    return fn


def _call_offline(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # the bundled file is missing or unreadable
        raise Unavailable(f"skfolio's bundled dataset could not be read offline: {exc}") from exc


def _slice(df: Any, start: Any, end: Any) -> Any:
    if start is not None:
        df = df.loc[pd.Timestamp(start) :]
    if end is not None:
        df = df.loc[: pd.Timestamp(end)]
    if df.empty:
        raise InvalidInput("start", f"no prices between {start} and {end}")
    return df


def load_sp500(
    start: str | None = None, end: str | None = None, assets: Sequence[str] | None = None
) -> Any:
    """Daily prices of 20 S&P 500 stocks from skfolio's bundled file, as a pandas DataFrame.

    Parameters
    ----------
    start, end : dates (inclusive), optional
    assets : tickers to keep (e.g. ``["AAPL", "JPM"]``), optional

    Returns
    -------
    pandas.DataFrame
        Index ``Date`` (DatetimeIndex), one float64 column per ticker, no NaN.

    Raises
    ------
    Unavailable
        skfolio or its bundled data is not installed.
    InvalidInput
        Unknown tickers or an empty date range.
    """
    df = _call_offline(_skfolio_loader("load_sp500_dataset")).astype(np.float64)
    if assets is not None:
        wanted = [str(a).upper() for a in assets]
        missing = [a for a in wanted if a not in df.columns]
        if missing:
            raise InvalidInput(
                "assets",
                f"no shipped price history for {', '.join(missing)}; the symbols with "
                f"history are {', '.join(map(str, df.columns))}",
                unknown=missing,
                available=[str(c) for c in df.columns],
            )
        df = df[wanted]
    return _slice(df, start, end)


def load_sp500_index(start: str | None = None, end: str | None = None) -> Any:
    """Daily S&P 500 index level (skfolio's bundled file) as a one-column DataFrame."""
    df = _call_offline(_skfolio_loader("load_sp500_index")).astype(np.float64)
    return _slice(df, start, end)


def prices_to_returns(prices: Any, log: bool = False) -> Any:
    """Simple (or log) returns of a price DataFrame/array along time; the first row is dropped."""
    if hasattr(prices, "pct_change"):
        if prices.isna().to_numpy().any():
            raise InvalidInput("prices", "contains NaN values")
        out = np.log(prices).diff() if log else prices.pct_change()
        return out.iloc[1:]
    p = np.asarray(prices, dtype=np.float64)
    if p.ndim not in (1, 2) or p.shape[0] < 2:
        raise InvalidInput("prices", f"needs at least 2 rows; got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise InvalidInput("prices", "must be positive and finite")
    return np.diff(np.log(p), axis=0) if log else p[1:] / p[:-1] - 1.0


def load_prices(
    dataset: str = "sp500",
    assets: Sequence[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    *,
    n_assets: int = 10,
    n_periods: int = 504,
    seed: int = 0,
) -> Any:
    """Daily closes as a DataFrame (dates x tickers) from one of :data:`DATASETS`.

    ``"sp500"``: :func:`load_sp500` (its first call imports skfolio: a few seconds).
    ``"synthetic"``: :func:`~prism_kernels.finance.market.generate_market` with ``n_assets``
    (or ``len(assets)``, which then name the columns) x ``n_periods`` days from ``seed``,
    starting at ``start`` (default 2021-01-01) and cut at ``end``.
    """
    if dataset == "sp500":
        return load_sp500(start, end, assets)
    if dataset == "synthetic":
        n = len(assets) if assets else int(n_assets)
        m = generate_market(n, int(n_periods), seed=seed, start_date=start or "2021-01-01")
        df = m.to_frame()
        if assets:
            df.columns = [str(a) for a in assets]
        if end is not None:
            df = df.loc[: pd.Timestamp(end)]
        return df
    raise InvalidInput("dataset", f"unknown dataset {dataset!r}; one of {', '.join(DATASETS)}")
