"""Holdings of a stored portfolio: its weights, its return history and its positions.

Pure functions on plain Python and NumPy values, used by the portfolio book
(:class:`prism_kernels.finance.service.FinanceService`) to validate what it stores and to mark
positions to market. Units: weights are fractions of the portfolio value (summing to 1),
values and prices are money, returns are per-period (daily) simple returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput
from prism_kernels.finance import estimators
from prism_kernels.finance.risk import as_returns, to_float_array

MAX_RETURN_ROWS = 5000
"""Rows of return history a stored portfolio keeps (the newest)."""


def check_symbols(symbols: Sequence[str], field: str = "assets") -> list[str]:
    """``symbols`` as a list of distinct, non-empty strings; :class:`InvalidInput` naming
    ``field`` (``field.i.symbol`` for the offending entry) otherwise."""
    if isinstance(symbols, str) or symbols is None or len(symbols) == 0:
        raise InvalidInput(field, "give at least one asset")
    out: list[str] = []
    for i, s in enumerate(symbols):
        if not isinstance(s, str) or not s:
            raise InvalidInput(f"{field}.{i}.symbol", "must be a non-empty ticker")
        if s in out:
            raise InvalidInput(f"{field}.{i}.symbol", f"duplicate symbol {s!r}")
        out.append(s)
    return out


def weight_vector(
    weights: Sequence[float] | Mapping[str, float] | np.ndarray | None,
    symbols: Sequence[str],
    field: str = "weights",
) -> np.ndarray:
    """Weights ``(n,)`` in ``symbols`` order: a sequence, ``{symbol: weight}`` (absent symbols
    get 0) or None (equal weights). They must be finite and sum to 1 (within 1e-6).
    """
    n = len(symbols)
    if weights is None:
        return np.full(n, 1.0 / n)
    if isinstance(weights, Mapping):
        unknown = sorted(set(map(str, weights)) - set(symbols))
        if unknown:
            raise InvalidInput(field, f"unknown symbols {unknown}")
        w = np.array([float(weights.get(s, 0.0)) for s in symbols])
    else:
        try:
            w = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(field, "must be numbers") from exc
    if w.ndim != 1 or w.shape[0] != n:
        got = w.shape[0] if w.ndim else 0
        raise InvalidInput(field, f"must have {n} entries (one per asset); got {got}")
    if not np.all(np.isfinite(w)):
        raise InvalidInput(field, "contains NaN or infinite values")
    if abs(w.sum() - 1.0) > 1e-6:
        raise InvalidInput(field, f"must sum to 1; they sum to {w.sum():.6g}")
    return w


def history(returns: Any = None, prices: Any = None, n: int | None = None) -> np.ndarray | None:
    """The per-period return history ``(T, n)`` from ``returns`` or from ``prices``
    ``(T + 1, n)`` (simple returns), newest :data:`MAX_RETURN_ROWS` rows; None without either.
    :class:`InvalidInput` names ``returns`` or ``prices``."""
    if returns is None and prices is None:
        return None
    if returns is not None:
        R = np.asarray(as_returns(returns, min_periods=1), dtype=np.float64)
        field = "returns"
    else:
        P = np.asarray(to_float_array(prices, "prices"), dtype=np.float64)
        if P.ndim != 2 or P.shape[0] < 2:
            raise InvalidInput("prices", f"must be (T, n) with T >= 2; got shape {P.shape}")
        if not np.all(np.isfinite(P)) or np.any(P <= 0):
            raise InvalidInput("prices", "must be positive and finite")
        R = np.asarray(estimators.simple_returns(P))
        field = "prices"
    if R.ndim != 2 or (n is not None and R.shape[1] != n):
        raise InvalidInput(field, f"must have one column per asset ({n}); got shape {R.shape}")
    return R[-MAX_RETURN_ROWS:]


def price_vector(prices: Any, symbols: Sequence[str], field: str = "prices") -> np.ndarray:
    """Prices ``(n,)`` in ``symbols`` order from ``{symbol: price}`` (every symbol, no other)
    or a sequence; positive and finite."""
    n = len(symbols)
    if isinstance(prices, Mapping):
        unknown = set(map(str, prices)) - set(symbols)
        if unknown:
            raise InvalidInput(field, f"unknown symbols {sorted(unknown)}")
        missing = [s for s in symbols if s not in prices]
        if missing:
            raise InvalidInput(field, f"missing prices for {missing}")
        p = np.array([float(prices[s]) for s in symbols])
    else:
        p = np.asarray(prices, dtype=np.float64)
    if p.shape != (n,):
        raise InvalidInput(field, f"must have {n} entries; got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise InvalidInput(field, "must be positive and finite")
    return p


def open_positions(
    symbols: Sequence[str], weights: np.ndarray, value: float, prices: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """One position per asset at ``value`` x weight; with last ``prices``, also the shares
    bought at them (``avg_cost`` = price, no gain yet)."""
    out = []
    for j, s in enumerate(symbols):
        pos: dict[str, Any] = {
            "symbol": s,
            "weight": float(weights[j]),
            "value": float(weights[j] * value),
        }
        if prices is not None:
            p = float(prices[j])
            pos.update(
                shares=float(weights[j] * value / p),
                avg_cost=p,
                current_price=p,
                unrealized_gain=0.0,
            )
        out.append(pos)
    return out


def mark_to_market(positions: list[dict[str, Any]], prices: np.ndarray) -> None:
    """Revalue ``positions`` (which hold ``shares``) at new ``prices``, in place."""
    if any("shares" not in q for q in positions):
        raise InvalidInput(
            "prices", "this portfolio has no share counts (created without prices); give returns"
        )
    for q, pj in zip(positions, prices, strict=True):
        q["current_price"] = float(pj)
        q["value"] = q["shares"] * float(pj)
        q["unrealized_gain"] = q["shares"] * (float(pj) - q["avg_cost"])


def grow_positions(positions: list[dict[str, Any]], returns: np.ndarray) -> None:
    """Compound each position through the per-period ``returns`` ``(T, n)`` (buy and hold), in
    place; prices and gains follow when the position holds shares."""
    growth = np.prod(1.0 + returns, axis=0)
    for q, g in zip(positions, growth, strict=True):
        q["value"] = q["value"] * float(g)
        if "shares" in q:
            q["current_price"] = q["current_price"] * float(g)
            q["unrealized_gain"] = q["shares"] * (q["current_price"] - q["avg_cost"])


def reweight(positions: list[dict[str, Any]], cash: float) -> float:
    """Total value (cash plus positions); each position's ``weight`` set to its share of it."""
    total = float(cash + sum(q["value"] for q in positions))
    if total > 0:
        for q in positions:
            q["weight"] = q["value"] / total
    return total


def finite(x: Any) -> float | None:
    """``x`` as a finite float, or None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
