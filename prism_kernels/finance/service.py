"""The finance service: a persistent book of portfolios, plus optimisation, risk and backtests.

Portfolios are documents of kind ``"portfolio"`` in :class:`prism_kernels.store.Store`
(bounded: ``max_portfolios``, oldest dropped first), with their return history kept as an
array beside the document. Creating or revaluing a portfolio publishes a
``PortfolioUpdate`` event on the bus. All methods take and return plain Python values.

Units: weights are fractions of the portfolio value; ``expected_return`` and ``volatility``
in statistics are annual (``periods_per_year`` = 252 trading days); VaR/CVaR are money at
the portfolio value (``*_pct``: fractions); ``returns`` are per-period (daily) simple returns.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prism_kernels.errors import Infeasible, InvalidInput, NotFound, Unavailable
from prism_kernels.events import EventBus
from prism_kernels.finance import risk as _risk
from prism_kernels.finance.backtest import backtest as _backtest
from prism_kernels.store import Bound, Store

KIND = "portfolio"
PERIODS_PER_YEAR = 252.0
MAX_RETURN_ROWS = 5000


def _now() -> float:
    return time.time()


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1000):03d}Z"


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class FinanceService:
    """A book of portfolios with optimisation, risk and backtesting.

    Parameters
    ----------
    store : Store
    bus : EventBus
    max_portfolios : int
        Bound of kind ``"portfolio"`` in the store.
    max_history : int
        Revaluations kept per portfolio (oldest dropped).
    """

    def __init__(
        self,
        store: Store | None = None,
        bus: EventBus | None = None,
        *,
        max_portfolios: int = 1000,
        max_history: int = 500,
    ) -> None:
        self.store = store if store is not None else Store(":memory:")
        self.bus = bus if bus is not None else EventBus()
        self.store.set_bound(KIND, Bound(max_items=int(max_portfolios)))
        self.max_history = int(max_history)
        self._lock = threading.RLock()
        self._optimize_ms: list[float] = []
        self._n_optimizations = 0

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _parse_assets(assets: Any) -> tuple[list[str], list[dict[str, Any]]]:
        if assets is None or (hasattr(assets, "__len__") and len(assets) == 0):
            raise InvalidInput("assets", "give at least one asset")
        symbols, info = [], []
        for i, a in enumerate(assets):
            if isinstance(a, str):
                sym, d = a, {}
            elif isinstance(a, Mapping):
                sym = a.get("symbol") or a.get("name") or a.get("ticker")
                if not sym:
                    raise InvalidInput(f"assets.{i}.symbol", "is required")
                d = dict(a)
            else:
                raise InvalidInput(f"assets.{i}", "must be a symbol or an object with a symbol")
            sym = str(sym)
            if sym in symbols:
                raise InvalidInput(f"assets.{i}.symbol", f"duplicate symbol {sym!r}")
            symbols.append(sym)
            info.append({"symbol": sym, **{k: v for k, v in d.items() if k != "symbol"}})
        return symbols, info

    @staticmethod
    def _parse_weights(weights: Any, symbols: list[str]) -> np.ndarray:
        n = len(symbols)
        if weights is None:
            return np.full(n, 1.0 / n)
        if isinstance(weights, Mapping):
            unknown = set(weights) - set(symbols)
            if unknown:
                raise InvalidInput("weights", f"unknown symbols {sorted(unknown)}")
            w = np.array([float(weights.get(s, 0.0)) for s in symbols])
        elif len(weights) and isinstance(weights[0], Mapping):  # [{symbol, weight}]
            m = {str(d.get("symbol")): float(d.get("weight", 0.0)) for d in weights}
            return FinanceService._parse_weights(m, symbols)
        else:
            try:
                w = np.asarray(weights, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InvalidInput("weights", "must be numbers") from exc
        if w.ndim != 1 or w.shape[0] != n:
            raise InvalidInput(
                "weights",
                f"must have {n} entries (one per asset); got {w.shape[0] if w.ndim else 0}",
            )
        if not np.all(np.isfinite(w)):
            raise InvalidInput("weights", "contains NaN or infinite values")
        if abs(w.sum() - 1.0) > 1e-6:
            raise InvalidInput("weights", f"must sum to 1; they sum to {w.sum():.6g}")
        return w

    @staticmethod
    def _returns_input(returns: Any, prices: Any, n: int) -> np.ndarray | None:
        if returns is None and prices is None:
            return None
        if returns is not None:
            R = _risk.as_returns(returns, min_periods=1)
            R = np.asarray(_risk.to_numpy(R), dtype=np.float64)
            field = "returns"
        else:
            P = np.asarray(
                prices.to_numpy() if hasattr(prices, "to_numpy") else prices, dtype=np.float64
            )
            if P.ndim != 2 or P.shape[0] < 2:
                raise InvalidInput("prices", f"must be (T, n) with T >= 2; got shape {P.shape}")
            if not np.all(np.isfinite(P)) or np.any(P <= 0):
                raise InvalidInput("prices", "must be positive and finite")
            R = P[1:] / P[:-1] - 1.0
            field = "prices"
        if R.ndim != 2 or R.shape[1] != n:
            raise InvalidInput(field, f"must have one column per asset ({n}); got shape {R.shape}")
        return R[-MAX_RETURN_ROWS:]

    @staticmethod
    def _asset_cov(info: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray] | None:
        """Annual mu and a diagonal covariance from per-asset expected_return/volatility."""
        try:
            mu = np.array([float(a["expected_return"]) for a in info])
            vol = np.array([float(a["volatility"]) for a in info])
        except (KeyError, TypeError, ValueError):
            return None
        return mu, np.diag(vol**2)

    def _statistics(
        self,
        w: np.ndarray,
        R: np.ndarray | None,
        info: list[dict[str, Any]],
        value: float,
        risk_free: float = 0.0,
    ) -> dict[str, Any]:
        """Statistics of weights ``w``: annual expected return / volatility, Sharpe, 1-day 95 % VaR."""
        stats: dict[str, Any] = {"periods_per_year": PERIODS_PER_YEAR}
        if R is not None and R.shape[0] >= 2:
            rep = _risk.risk_report(
                w, R, notional=value, mc_paths=0, periods_per_year=PERIODS_PER_YEAR, fit_t=False
            )
            stats.update(
                source="returns",
                n_periods=int(R.shape[0]),
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
        mc = self._asset_cov(info)
        if mc is not None:
            mu, cov = mc
            er = float(w @ mu)
            vol = float(np.sqrt(w @ cov @ w))
            v, cv = _risk.normal_var_cvar(
                er / PERIODS_PER_YEAR, vol / math.sqrt(PERIODS_PER_YEAR), 0.95, 1
            )
            stats.update(
                source="asset_assumptions (uncorrelated)",
                expected_return=er,
                volatility=vol,
                sharpe_ratio=(er - risk_free) / vol if vol > 0 else None,
                var_95_1d=v * value,
                cvar_95_1d=cv * value,
            )
            return stats
        stats["source"] = "none"
        return stats

    def _save(self, doc: dict[str, Any], R: np.ndarray | None) -> None:
        self.store.put(KIND, doc["id"], doc, arrays={"returns": R} if R is not None else None)

    def _publish(
        self, event: str, doc: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> None:
        data = {
            "portfolio_id": doc["id"],
            "name": doc["name"],
            "event": event,
            "value": doc["value"],
            "weights": dict(zip(doc["assets"], doc["weights"], strict=True)),
            "statistics": doc["statistics"],
            "timestamp": doc["last_updated"],
        }
        if extra:
            data.update(extra)
        self.bus.publish("PortfolioUpdate", data)

    # ------------------------------------------------------------------ the book

    def create_portfolio(
        self,
        name: str,
        assets: Sequence[Any],
        weights: Any = None,
        *,
        objective: str = "custom",
        value: float = 1_000_000.0,
        returns: Any = None,
        prices: Any = None,
        portfolio_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add a portfolio to the book and publish ``PortfolioUpdate`` (event ``"created"``).

        Parameters
        ----------
        name : str
        assets : symbols, or objects ``{symbol, expected_return?, volatility?, current_price?, sector?}``
            (annual expected return and volatility as fractions).
        weights : (n,) list, ``{symbol: weight}`` or ``[{symbol, weight}]``; default equal. Must sum to 1.
        objective : how the weights were chosen (recorded).
        value : money value of the portfolio.
        returns : (T, n) per-period returns, or ``prices`` (T+1, n): history kept for statistics.
        portfolio_id : optional id (must be new); default a fresh ``pf-`` id.

        Returns
        -------
        dict: the stored portfolio (``id``, ``name``, ``assets``, ``weights``, ``objective``,
        ``value``, ``cash``, ``positions``, ``statistics``, ``history``, ``created``, ``last_updated``).
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("name", "must be a non-empty string")
        symbols, info = self._parse_assets(assets)
        w = self._parse_weights(weights, symbols)
        v = _finite(value)
        if v is None or v <= 0:
            raise InvalidInput("value", f"must be a positive number; got {value}")
        R = self._returns_input(returns, prices, len(symbols))
        last_prices = None
        if prices is not None:
            P = np.asarray(
                prices.to_numpy() if hasattr(prices, "to_numpy") else prices, dtype=np.float64
            )
            last_prices = P[-1]
        elif all("current_price" in a for a in info):
            try:
                last_prices = np.array([float(a["current_price"]) for a in info])
            except (TypeError, ValueError) as exc:
                raise InvalidInput("assets.current_price", "must be numbers") from exc
            if not np.all(np.isfinite(last_prices)) or np.any(last_prices <= 0):
                raise InvalidInput("assets.current_price", "must be positive")
        stats = self._statistics(w, R, info, v)
        now = _now()
        positions = []
        for j, s in enumerate(symbols):
            pos = {"symbol": s, "weight": float(w[j]), "value": float(w[j] * v)}
            if last_prices is not None:
                p = float(last_prices[j])
                pos.update(
                    shares=float(w[j] * v / p), avg_cost=p, current_price=p, unrealized_gain=0.0
                )
            positions.append(pos)
        with self._lock:
            pid = str(portfolio_id) if portfolio_id else f"pf-{uuid.uuid4().hex[:12]}"
            if portfolio_id and self.store.exists(KIND, pid):
                raise InvalidInput("id", f"portfolio {pid!r} already exists")
            doc = {
                "id": pid,
                "name": name.strip(),
                "assets": symbols,
                "asset_info": info,
                "weights": w.tolist(),
                "objective": str(objective),
                "value": v,
                "initial_value": v,
                "cash": float(v - sum(p["value"] for p in positions)),
                "positions": positions,
                "statistics": stats,
                "created": _iso(now),
                "last_updated": _iso(now),
                "history": [
                    {"timestamp": _iso(now), "value": v, "return": 0.0, "event": "created"}
                ],
                "metadata": dict(metadata or {}),
            }
            self._save(doc, R)
        self._publish("created", doc)
        return doc

    def get_portfolio(self, portfolio_id: str) -> dict[str, Any]:
        """The stored portfolio; raises :class:`NotFound`."""
        return self.store.get(KIND, portfolio_id)

    def list_portfolios(self, limit: int | None = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Summaries ``{id, name, value, return_since_inception, n_assets, objective, created, last_updated}``, oldest first."""
        out = []
        for pid, d in self.store.list(KIND, limit=limit, offset=offset):
            out.append(
                {
                    "id": pid,
                    "name": d["name"],
                    "value": d["value"],
                    "return_since_inception": d["value"] / d["initial_value"] - 1.0,
                    "n_assets": len(d["assets"]),
                    "objective": d["objective"],
                    "created": d["created"],
                    "last_updated": d["last_updated"],
                }
            )
        return out

    def delete_portfolio(self, portfolio_id: str) -> bool:
        with self._lock:
            if not self.store.delete(KIND, portfolio_id):
                raise NotFound(KIND, portfolio_id)
        return True

    def count(self) -> int:
        return self.store.count(KIND)

    def revalue(
        self,
        portfolio_id: str,
        prices: Any = None,
        *,
        returns: Any = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Mark a portfolio to market and/or extend its return history; publishes ``PortfolioUpdate``.

        Parameters
        ----------
        prices : ``{symbol: price}`` or (n,) new prices. Positions need shares (the portfolio
            was created with prices or ``current_price``); otherwise give ``returns``.
        returns : (T, n) new per-period returns: appended to the history (the newest
            ``MAX_RETURN_ROWS`` kept); the value compounds through them when no prices are given
            (buy and hold within the window).

        Returns
        -------
        dict: the updated portfolio, with a new ``history`` entry ``{timestamp, value, return, event}``.
        """
        if prices is None and returns is None:
            raise InvalidInput("prices", "give new prices or new returns")
        with self._lock:
            doc = self.store.get(KIND, portfolio_id)
            arrays = self.store.get_arrays(KIND, portfolio_id)
            R_old = arrays.get("returns")
            symbols = doc["assets"]
            n = len(symbols)
            old_value = float(doc["value"])
            positions = doc["positions"]
            R_new = self._returns_input(returns, None, n) if returns is not None else None
            if prices is not None:
                if isinstance(prices, Mapping):
                    unknown = set(prices) - set(symbols)
                    if unknown:
                        raise InvalidInput("prices", f"unknown symbols {sorted(unknown)}")
                    missing = [s for s in symbols if s not in prices]
                    if missing:
                        raise InvalidInput("prices", f"missing prices for {missing}")
                    p = np.array([float(prices[s]) for s in symbols])
                else:
                    p = np.asarray(prices, dtype=np.float64)
                if p.shape != (n,):
                    raise InvalidInput("prices", f"must have {n} entries; got shape {p.shape}")
                if not np.all(np.isfinite(p)) or np.any(p <= 0):
                    raise InvalidInput("prices", "must be positive and finite")
                if any("shares" not in q for q in positions):
                    raise InvalidInput(
                        "prices",
                        "this portfolio has no share counts (created without prices); give returns",
                    )
                for q, pj in zip(positions, p, strict=True):
                    q["current_price"] = float(pj)
                    q["value"] = q["shares"] * float(pj)
                    q["unrealized_gain"] = q["shares"] * (float(pj) - q["avg_cost"])
            elif R_new is not None:
                growth = np.prod(1.0 + R_new, axis=0)
                for q, g in zip(positions, growth, strict=True):
                    q["value"] = q["value"] * float(g)
                    if "shares" in q:
                        q["current_price"] = q["current_price"] * float(g)
                        q["unrealized_gain"] = q["shares"] * (q["current_price"] - q["avg_cost"])
            new_value = float(doc["cash"] + sum(q["value"] for q in positions))
            if new_value > 0:
                for q in positions:
                    q["weight"] = q["value"] / new_value
            doc["value"] = new_value
            doc["weights"] = [q["weight"] for q in positions]
            R = R_old
            if R_new is not None:
                R = R_new if R_old is None or R_old.size == 0 else np.vstack([R_old, R_new])
                R = R[-MAX_RETURN_ROWS:]
            doc["statistics"] = self._statistics(
                np.asarray(doc["weights"]), R, doc["asset_info"], max(new_value, 1e-300)
            )
            now = _now()
            doc["last_updated"] = _iso(now)
            period_return = new_value / old_value - 1.0 if old_value > 0 else None
            entry = {
                "timestamp": _iso(now),
                "value": new_value,
                "return": period_return,
                "event": "revalued",
            }
            if note:
                entry["note"] = str(note)
            doc["history"] = (doc["history"] + [entry])[-self.max_history :]
            self._save(doc, R)
        self._publish("revalued", doc, {"return": period_return, "previous_value": old_value})
        return doc

    # ------------------------------------------------------------------ analytics

    @staticmethod
    def _check_matrix(M: Any, n: int, field: str, *, correlation: bool = False) -> np.ndarray:
        """An (n, n) symmetric, positive-definite covariance or correlation matrix, or a 400."""
        try:
            A = np.asarray(M, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(field, "must be an n x n matrix of numbers") from exc
        if A.shape != (n, n):
            raise InvalidInput(
                field, f"must be ({n}, {n}): one row and column per asset; got shape {A.shape}"
            )
        if not np.all(np.isfinite(A)):
            raise InvalidInput(field, "contains NaN or infinite values")
        scale = float(np.max(np.abs(A))) if A.size else 0.0
        if not np.allclose(A, A.T, rtol=1e-8, atol=1e-12 * max(scale, 1.0)):
            raise InvalidInput(field, "must be symmetric")
        if correlation:
            if not np.allclose(np.diag(A), 1.0, atol=1e-8):
                raise InvalidInput(field, "a correlation matrix has ones on its diagonal")
            if np.any(np.abs(A) > 1.0 + 1e-12):
                raise InvalidInput(field, "correlations must lie in [-1, 1]")
        ev = np.linalg.eigvalsh(0.5 * (A + A.T))
        top = float(ev[-1]) if ev.size else 0.0
        if top <= 0.0:
            raise InvalidInput(field, "is zero or negative: no asset has any risk")
        if ev[0] < -1e-10 * top:
            raise InvalidInput(
                field, f"is not positive semi-definite (smallest eigenvalue {ev[0]:.3g})"
            )
        if ev[0] <= 1e-10 * top:
            raise InvalidInput(
                field,
                f"is singular (smallest eigenvalue {ev[0]:.3g}, largest {top:.3g}): some "
                "combination of the assets is riskless; drop redundant assets or give a "
                "full-rank matrix",
            )
        return A

    def _moments(
        self,
        assets: Sequence[Any],
        *,
        returns: Any = None,
        prices: Any = None,
        cov: Any = None,
        correlation: Any = None,
    ) -> tuple[list[str], list[dict[str, Any]], np.ndarray, np.ndarray, np.ndarray | None, dict]:
        """Symbols, asset info, annual ``mu`` (n,), annual covariance (n, n), the return
        history (or None) and ``assumptions`` (where the moments came from)."""
        from prism_kernels.finance import estimators

        symbols, info = self._parse_assets(assets)
        n = len(symbols)
        R = self._returns_input(returns, prices, n)
        if R is not None:
            field = "returns" if returns is not None else "prices"
            if R.shape[0] < 2:
                raise InvalidInput(field, "need at least 2 periods to estimate moments")
            mu = np.asarray(estimators.mean_returns(R, periods_per_year=int(PERIODS_PER_YEAR)))
            S = np.asarray(estimators.ledoit_wolf(R, periods_per_year=int(PERIODS_PER_YEAR))[0])
            given = [a for a in info if a.get("expected_return") is not None]
            assumptions = {
                "moments": "estimated from the history: annualised mean returns and "
                "Ledoit-Wolf covariance (x252)",
                "periods": int(R.shape[0]),
                "correlation": "estimated",
            }
            if len(given) == n:  # the caller's views on expected returns win over the mean
                mu = np.array([float(a["expected_return"]) for a in info])
                assumptions["expected_returns"] = "given"
            return symbols, info, mu, S, R, assumptions
        mu_l = []
        for i, a in enumerate(info):
            try:
                mu_l.append(float(a["expected_return"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidInput(
                    f"assets.{i}.expected_return", "is required when no prices or returns are given"
                ) from exc
        mu = np.array(mu_l)
        if not np.all(np.isfinite(mu)):
            raise InvalidInput("assets.expected_return", "must be finite")
        if cov is not None:
            S = self._check_matrix(cov, n, "covariance")
            return symbols, info, mu, S, None, {"covariance": "given (annual)"}
        vol_l = []
        for i, a in enumerate(info):
            try:
                v = float(a["volatility"])
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidInput(
                    f"assets.{i}.volatility",
                    "is required when no prices, returns or covariance are given",
                ) from exc
            if not math.isfinite(v) or v <= 0:
                raise InvalidInput(f"assets.{i}.volatility", f"must be > 0; got {v}")
            vol_l.append(v)
        vol = np.array(vol_l)
        if correlation is not None:
            C = self._check_matrix(correlation, n, "correlation", correlation=True)
            assumptions = {"correlation": "given", "covariance": "correlation x volatilities"}
        else:
            C = np.eye(n)
            assumptions = {
                "correlation": "identity",
                "note": "no correlation, covariance or price history was given: the assets "
                "are assumed uncorrelated (correlation matrix = identity)",
            }
        return symbols, info, mu, C * np.outer(vol, vol), None, assumptions

    @staticmethod
    def request_constraints(
        constraints: Mapping[str, Any] | None,
        symbols: Sequence[str],
        info: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The optimiser's constraint dict from the REST spellings, checked field by field.

        Accepts ``min_position_size``/``max_position_size`` (the original API; a negative
        minimum allows shorts), ``min_weight``/``max_weight`` (a scalar, one value per asset,
        or ``{symbol: value}``), per-asset ``assets[i].min_weight``/``max_weight``,
        ``weight_bounds`` ``[lo, hi]``, ``long_only`` / ``allow_short`` (shorts default to a
        floor of -1), ``max_total_risk`` (annual volatility cap), ``sector_limits``
        ``[{sector, max_allocation, min_allocation?}]`` with sectors from ``sectors`` (list
        or ``{symbol: sector}``) or ``assets[i].sector``, and ``turnover`` (or
        ``max_turnover``) with ``current_weights`` (list or ``{symbol: w}``) or
        ``assets[i].current_weight``. Raises :class:`InvalidInput`/:class:`Infeasible` naming
        the request field (min above max, bounds that cannot sum to 1...).
        """
        c = {k: v for k, v in dict(constraints or {}).items() if v is not None}
        info = list(info) if info is not None else [{} for _ in symbols]
        n = len(symbols)
        pos = {s: i for i, s in enumerate(symbols)}

        def per_asset(v: Any, field: str) -> np.ndarray:
            if isinstance(v, Mapping):
                unknown = sorted(set(map(str, v)) - set(symbols))
                if unknown:
                    raise InvalidInput(field, f"unknown symbols {unknown}")
                out = np.full(n, np.nan)
                for k, x in v.items():
                    out[pos[str(k)]] = float(x)
                return out
            a = np.asarray(v, dtype=np.float64)
            if a.ndim == 0:
                return np.full(n, float(a))
            if a.shape != (n,):
                raise InvalidInput(field, f"must be a number or {n} values (one per asset)")
            return a

        def grab(*names: str) -> tuple[Any, str | None]:
            for nm in names:
                if nm in c:
                    return c.pop(nm), f"constraints.{nm}"
            return None, None

        lo_v, lo_f = grab("min_weight", "min_position_size", "lower")
        hi_v, hi_f = grab("max_weight", "max_position_size", "upper")
        wb, wb_f = grab("weight_bounds")
        if wb is not None:
            if not isinstance(wb, (list, tuple)) or len(wb) != 2:
                raise InvalidInput(wb_f, "must be [min, max]")
            if lo_v is None:
                lo_v, lo_f = wb[0], wb_f
            if hi_v is None:
                hi_v, hi_f = wb[1], wb_f
        long_only = c.pop("long_only", None)
        allow_short = c.pop("allow_short", None)
        if (
            allow_short is not None
            and long_only is not None
            and bool(allow_short) == bool(long_only)
        ):
            raise InvalidInput("constraints.allow_short", "contradicts long_only")
        shorts = (allow_short is True) or (long_only is False)
        lo = np.full(n, -1.0 if shorts else 0.0)
        hi = np.ones(n)
        lo_fields = [lo_f or "constraints.min_weight"] * n
        hi_fields = [hi_f or "constraints.max_weight"] * n
        if lo_v is not None:
            a = per_asset(lo_v, lo_f)
            m = np.isfinite(a)
            lo[m] = a[m]
        if hi_v is not None:
            a = per_asset(hi_v, hi_f)
            m = np.isfinite(a)
            hi[m] = a[m]
        for i, a in enumerate(info):
            for key, arr, fields in (("min_weight", lo, lo_fields), ("max_weight", hi, hi_fields)):
                if a.get(key) is not None:
                    try:
                        arr[i] = float(a[key])
                    except (TypeError, ValueError) as exc:
                        raise InvalidInput(f"assets.{i}.{key}", "must be a number") from exc
                    fields[i] = f"assets.{i}.{key}"
        for arr, fields in ((lo, lo_fields), (hi, hi_fields)):
            bad = np.nonzero(~np.isfinite(arr))[0]
            if bad.size:
                raise InvalidInput(fields[bad[0]], "must be finite")
        if long_only is True or allow_short is False:
            neg = np.nonzero(lo < 0)[0]
            if neg.size:
                raise InvalidInput(
                    lo_fields[neg[0]], "is negative but the portfolio is long-only (long_only)"
                )
        bad = np.nonzero(lo > hi + 1e-12)[0]
        if bad.size:
            i = int(bad[0])
            raise InvalidInput(
                lo_fields[i],
                f"minimum weight {lo[i]:g} is above the maximum {hi[i]:g} "
                f"({hi_fields[i]}) for {symbols[i]}",
            )
        if lo.sum() > 1 + 1e-9:
            raise Infeasible(
                lo_fields[0], f"minimum weights sum to {lo.sum():.6g} > 1: weights cannot sum to 1"
            )
        if hi.sum() < 1 - 1e-9:
            raise Infeasible(
                hi_fields[0],
                f"maximum weights sum to {hi.sum():.6g} < 1 with {n} assets: weights cannot sum to 1",
            )
        out: dict[str, Any] = {}
        if np.any(lo != 0.0) or np.any(hi != 1.0):
            out["lower"] = lo.tolist()
            out["upper"] = hi.tolist()
        risk_cap, _ = grab("max_total_risk", "max_volatility")
        if risk_cap is not None:
            out["max_total_risk"] = float(risk_cap)
        limits, _ = grab("sector_limits")
        sectors, sec_f = grab("sectors", "sector_mapper")
        if limits:
            if sectors is None:
                labels = [a.get("sector") for a in info]
                if any(s is None for s in labels):
                    missing = [symbols[i] for i, s in enumerate(labels) if s is None]
                    raise InvalidInput(
                        "constraints.sectors",
                        f"sector_limits need a sector for every asset (assets[].sector or "
                        f"constraints.sectors); none for {missing[:5]}",
                    )
            elif isinstance(sectors, Mapping):
                missing = [s for s in symbols if s not in sectors]
                if missing:
                    raise InvalidInput(sec_f, f"no sector for {missing[:5]}")
                labels = [sectors[s] for s in symbols]
            else:
                labels = list(sectors)
                if len(labels) != n:
                    raise InvalidInput(sec_f, f"must have {n} labels (one per asset)")
            out["sectors"] = [str(s) for s in labels]
            out["sector_limits"] = [
                {k: v for k, v in dict(x).items() if v is not None} for x in limits
            ]
        tau, tau_f = grab("turnover", "max_turnover")
        cw, cw_f = grab("current_weights")
        if tau is not None:
            if cw is None:
                if all(a.get("current_weight") is not None for a in info):
                    cw = [float(a["current_weight"]) for a in info]
                else:
                    raise InvalidInput(
                        "constraints.current_weights",
                        "a turnover limit needs the current weights (constraints.current_weights "
                        "or assets[].current_weight)",
                    )
            w0 = per_asset(cw, cw_f or "constraints.current_weights")
            if isinstance(cw, Mapping):
                w0 = np.nan_to_num(w0, nan=0.0)
            if not np.all(np.isfinite(w0)):
                raise InvalidInput(cw_f or "constraints.current_weights", "must be finite")
            t = float(tau)
            if not math.isfinite(t) or t < 0:
                raise InvalidInput(tau_f, "must be a finite number >= 0")
            out["turnover"] = t
            out["current_weights"] = w0.tolist()
        c.pop("objective", None)
        if c:
            k = sorted(c)[0]
            raise InvalidInput(f"constraints.{k}", f"unknown constraint {k!r}")
        return out

    @staticmethod
    def _objective(objective: Any, kwargs: dict[str, Any]) -> str:
        """The objective name from a string or ``{"custom": {"risk_aversion": x}}``-style object."""
        if isinstance(objective, Mapping):
            if len(objective) != 1:
                raise InvalidInput(
                    "objective", "an object objective has exactly one key, e.g. {'custom': {...}}"
                )
            ((obj_name, obj_args),) = objective.items()
            obj_args = dict(obj_args or {}) if isinstance(obj_args, Mapping) else {}
            for key in ("risk_aversion", "target_return", "target_volatility"):
                if obj_args.get(key) is not None:
                    kwargs.setdefault(key, float(obj_args[key]))
            if str(obj_name).lower() == "custom" and "strategy" in obj_args:
                obj_name = obj_args["strategy"]
            return str(obj_name)
        return str(objective)

    def optimize(
        self,
        assets: Sequence[Any],
        constraints: Any = None,
        objective: Any = "max_sharpe",
        *,
        returns: Any = None,
        prices: Any = None,
        cov: Any = None,
        correlation: Any = None,
        risk_free_rate: float = 0.0,
        save: bool = False,
        name: str | None = None,
        value: float = 1_000_000.0,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Optimal weights with :func:`prism_kernels.finance.optimize.optimize`.

        Moments (annual): from ``returns``/``prices`` history when given (mean and
        Ledoit-Wolf covariance, annualised by 252); else from the assets' ``expected_return``
        and ``volatility`` with ``correlation`` (default identity, said in ``assumptions``)
        or a full annual ``cov`` (both checked: symmetric, positive definite).
        ``objective`` accepts the REST spellings (``"maximize_sharpe"``, ``"MinimizeRisk"``,
        ``{"custom": {"risk_aversion": 2}}``; ``"maximize_return"``: the highest return
        within ``max_total_risk``, or the highest return the bounds allow). ``constraints``
        is the optimiser's dict (see :meth:`request_constraints` for the REST spellings).
        ``save=True`` adds the result to the book.

        Returns
        -------
        dict: ``weights`` ``[{symbol, weight}]``, ``weights_by_symbol``, ``expected_return``,
        ``expected_risk`` and ``volatility`` (annual), ``sharpe_ratio``, ``risk_contributions``,
        ``objective``, ``optimization_time_ms``, ``converged``, ``assumptions``;
        ``portfolio_id`` when saved.
        """
        from prism_kernels.finance.constraints import (
            PortfolioConstraints,
            check_feasible,
            linprog_box,
        )
        from prism_kernels.finance.optimize import normalize_objective
        from prism_kernels.finance.optimize import optimize as _optimize

        t0 = time.perf_counter()
        obj_name = self._objective(objective, kwargs)
        symbols, info, mu, S, R, assumptions = self._moments(
            assets, returns=returns, prices=prices, cov=cov, correlation=correlation
        )
        n = len(symbols)
        if R is not None:
            kwargs.setdefault("returns", R)
        key = obj_name.replace("_", "").replace("-", "").replace(" ", "").lower()
        if key in ("maximizereturn", "maximisereturn", "maxreturn"):
            pc = PortfolioConstraints.from_dict(constraints)
            if pc.max_total_risk is not None:
                obj_name = "target_volatility"
                kwargs["target_volatility"] = float(pc.max_total_risk)
                cons_d = dict(constraints or {})
                cons_d.pop("max_total_risk", None)
                constraints = cons_d
                kwargs.pop("returns", None)
                d = _optimize(
                    mu,
                    S,
                    "target_volatility",
                    constraints,
                    risk_free_rate=risk_free_rate,
                    target_volatility=kwargs["target_volatility"],
                ).to_dict(symbols)
                d["objective"] = "max_return"
            else:
                ls = check_feasible(pc, n)
                cost = np.concatenate([-mu, np.zeros(ls.lb.size - n)])
                _, x, _ = linprog_box(cost, ls.lb, ls.ub, ls.G, ls.L, ls.U)
                if x is None:
                    raise InvalidInput(
                        "constraints", "the return is unbounded: give finite weight bounds"
                    )
                w = x[:n]
                vol = float(np.sqrt(max(w @ S @ w, 0.0)))
                er = float(w @ mu)
                d = {
                    "objective": "max_return",
                    "weights": w.tolist(),
                    "expected_return": er,
                    "volatility": vol,
                    "sharpe": (er - risk_free_rate) / vol if vol > 0 else None,
                    "risk_contributions": (w * (S @ w) / vol).tolist() if vol > 0 else None,
                    "converged": True,
                    "regularization": 0.0,
                }
        else:
            obj = normalize_objective(obj_name)
            if obj not in ("hrp", "min_cvar"):
                kwargs.pop("returns", None)
            if obj == "min_cvar" and R is None:
                raise InvalidInput("prices", "min_cvar needs a price or return history (scenarios)")
            if obj == "hrp" and R is None:
                kwargs.pop("returns", None)
            res = _optimize(mu, S, obj, constraints, risk_free_rate=risk_free_rate, **kwargs)
            d = res.to_dict(symbols)
        elapsed_ms = (time.perf_counter() - t0) * 1e3
        with self._lock:
            self._optimize_ms = (self._optimize_ms + [elapsed_ms])[-100:]
            self._n_optimizations += 1
        w = np.asarray(d["weights"], dtype=np.float64)
        out = {
            "weights": [{"symbol": s, "weight": float(x)} for s, x in zip(symbols, w, strict=True)],
            "weights_by_symbol": {s: float(x) for s, x in zip(symbols, w, strict=True)},
            "expected_return": d["expected_return"],
            "expected_risk": d["volatility"],
            "volatility": d["volatility"],
            "portfolio_risk": d["volatility"],
            "sharpe_ratio": d["sharpe"],
            "risk_contributions": d["risk_contributions"],
            "objective": d["objective"],
            "converged": d["converged"],
            "risk_free_rate": float(risk_free_rate),
            "regularization": d["regularization"],
            "assumptions": assumptions,
            "optimization_time_ms": elapsed_ms,
        }
        for k in ("risk_capped", "cvar"):
            if k in d:
                out[k] = d[k]
        if save:
            w_saved = w / w.sum()  # the optimiser's budget row holds to solver tolerance
            doc = self.create_portfolio(
                name or f"{d['objective']} portfolio",
                info,
                w_saved,
                objective=d["objective"],
                value=value,
                returns=R,
                metadata={"assumptions": assumptions, "risk_free_rate": float(risk_free_rate)},
            )
            out["portfolio_id"] = doc["id"]
        return out

    def frontier(
        self,
        assets: Sequence[Any],
        constraints: Any = None,
        points: int = 20,
        *,
        returns: Any = None,
        prices: Any = None,
        cov: Any = None,
        correlation: Any = None,
        risk_free_rate: float = 0.0,
    ) -> dict[str, Any]:
        """The efficient frontier (:func:`prism_kernels.finance.optimize.efficient_frontier`,
        all points in one batched solve) plus the minimum-volatility and maximum-Sharpe
        portfolios. Moments as in :meth:`optimize`. A ``max_total_risk`` cap does not cut the
        frontier: each point says whether it lies ``within_risk_cap``.

        Returns
        -------
        dict: ``points`` ``[{expected_return, volatility, sharpe_ratio, weights}]`` (in
        increasing return), ``expected_returns``, ``volatilities``, ``sharpe_ratios``,
        ``weights`` (points x n), ``symbols``, ``min_volatility``, ``max_sharpe`` (or None
        when no asset beats the risk-free rate), ``assumptions``, ``computation_time_ms``.
        """
        from prism_kernels.errors import Infeasible
        from prism_kernels.finance.optimize import efficient_frontier
        from prism_kernels.finance.optimize import optimize as _optimize

        t0 = time.perf_counter()
        try:
            P = int(points)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("points", "must be an integer") from exc
        if not 2 <= P <= 500:
            raise InvalidInput("points", f"must be in [2, 500]; got {points}")
        symbols, info, mu, S, R, assumptions = self._moments(
            assets, returns=returns, prices=prices, cov=cov, correlation=correlation
        )
        cons = dict(constraints or {})
        cap = cons.pop("max_total_risk", None)
        fr = efficient_frontier(mu, S, P, cons, risk_free_rate=risk_free_rate).to_dict()
        pts = []
        for r, v, s, w in zip(
            fr["returns"], fr["volatilities"], fr["sharpe"], fr["weights"], strict=True
        ):
            p = {"expected_return": r, "volatility": v, "sharpe_ratio": s, "weights": w}
            if cap is not None:
                p["within_risk_cap"] = bool(v <= float(cap) * (1 + 1e-9))
            pts.append(p)

        def one(obj: str) -> dict[str, Any] | None:
            try:
                d = _optimize(mu, S, obj, cons, risk_free_rate=risk_free_rate).to_dict(symbols)
            except Infeasible:
                return None
            return {
                "expected_return": d["expected_return"],
                "volatility": d["volatility"],
                "sharpe_ratio": d["sharpe"],
                "weights": d["weights"],
            }

        return {
            "symbols": symbols,
            "points": pts,
            "expected_returns": fr["returns"],
            "volatilities": fr["volatilities"],
            "sharpe_ratios": fr["sharpe"],
            "weights": fr["weights"],
            "converged": fr["converged"],
            "min_volatility": one("min_volatility"),
            "max_sharpe": one("max_sharpe"),
            "risk_free_rate": float(risk_free_rate),
            "max_total_risk": cap,
            "asset_returns": mu.tolist(),
            "asset_volatilities": np.sqrt(np.diag(S)).tolist(),
            "regularization": fr["regularization"],
            "assumptions": assumptions,
            "computation_time_ms": (time.perf_counter() - t0) * 1e3,
        }

    def risk(
        self,
        portfolio_id: str | None = None,
        *,
        weights: Any = None,
        assets: Sequence[Any] | None = None,
        returns: Any = None,
        prices: Any = None,
        cov: Any = None,
        mu: Any = None,
        confidence: float = 0.95,
        horizon: int = 1,
        notional: float | None = None,
        method: str | None = None,
        benchmark: Any = None,
        dof: float | None = None,
        mc_paths: int = 100_000,
        seed: int | None = 0,
        positions: Sequence[Mapping[str, Any]] | None = None,
        annual: bool = False,
        dataset: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        include_returns: bool = False,
    ) -> dict[str, Any]:
        """VaR/CVaR and the other risk figures of a stored portfolio or of given weights.

        ``positions`` (the original client's shape, ``[{symbol, weight | value | shares and
        current_price}]``) give the assets, weights and the notional. ``annual=True`` says
        ``cov``/``mu`` are annual (divided by 252 here). Without any history or covariance,
        assets that are all in the shipped S&P 500 data (``dataset="sp500"``, sliced by
        ``start_date``/``end_date``, default the last two years) get their prices from it.

        With ``portfolio_id``: its weights, return history and value (the notional). Else
        ``weights`` with ``returns``/``prices`` (T, n) or a per-period ``cov``. ``method``
        picks the headline ``var``/``cvar`` (``historical`` when there is history, else
        ``parametric_normal``); every method is in ``var_by_method``/``cvar_by_method``.

        Returns
        -------
        dict: ``var``, ``cvar`` (money at ``notional``), ``var_pct``, ``cvar_pct``, ``method``,
        ``max_drawdown``, ``beta``, ``volatility`` (annual), ``sharpe_ratio``,
        ``sortino_ratio``, ``component_var`` (money per asset), ``correlation_matrix``,
        ``covariance_matrix`` (per period), ``confidence_level``, ``time_horizon_days``,
        ``report`` (the full :func:`prism_kernels.finance.risk.risk_report`) and, with
        ``include_returns``, ``portfolio_returns``: the overlapping ``horizon``-day portfolio
        returns the historical VaR is the quantile of (None without history).
        """
        names = None
        if positions is not None and weights is None:
            assets, weights, total = self.weights_from_positions(positions)
            if notional is None:
                notional = total
        if cov is not None:
            k = len(assets) if assets is not None else np.asarray(cov).shape[0]
            cov = self._check_matrix(cov, k, "covariance")
            if annual:
                cov = cov / PERIODS_PER_YEAR
        if mu is not None and annual:
            mu = np.asarray(mu, dtype=np.float64) / PERIODS_PER_YEAR
        if (
            portfolio_id is None
            and returns is None
            and prices is None
            and cov is None
            and assets is not None
        ):
            from prism_kernels.finance.data import load_sp500

            syms, _ = self._parse_assets(assets)
            if dataset not in (None, "sp500"):
                raise InvalidInput("dataset", f"unknown dataset {dataset!r}; 'sp500'")
            try:
                df = load_sp500(start_date or "2021-01-01", end_date, syms)
            except InvalidInput as exc:
                raise InvalidInput(
                    "prices",
                    "give prices, returns or covariance (annual) for these assets; "
                    f"the shipped S&P 500 data cannot serve them: {exc.message}",
                ) from None
            prices = df.to_numpy()
        if portfolio_id is not None:
            doc = self.store.get(KIND, portfolio_id)
            arrays = self.store.get_arrays(KIND, portfolio_id)
            names = doc["assets"]
            if weights is None:
                weights = np.asarray(doc["weights"])
            if returns is None and prices is None and cov is None:
                returns = arrays.get("returns")
                if returns is None or returns.shape[0] < 2:
                    mc = self._asset_cov(doc["asset_info"])
                    if mc is None:
                        raise InvalidInput(
                            "portfolio_id",
                            "this portfolio has no return history or volatility assumptions",
                        )
                    returns = None
                    mu = mc[0] / PERIODS_PER_YEAR
                    cov = mc[1] / PERIODS_PER_YEAR
            if notional is None:
                notional = doc["value"]
        if assets is not None and names is None:
            names, _ = self._parse_assets(assets)
        if weights is None:
            raise InvalidInput("weights", "give a portfolio_id or weights")
        n = (
            len(names)
            if names is not None
            else len(np.atleast_1d(np.asarray(weights, dtype=object)))
        )
        if isinstance(weights, Mapping) or (
            isinstance(weights, Sequence) and weights and isinstance(weights[0], Mapping)
        ):
            if names is None:
                raise InvalidInput("assets", "give assets to match weights given by symbol")
            w = self._parse_weights(weights, names)
        else:
            w = np.asarray(weights, dtype=np.float64)
        if prices is not None and returns is None:
            returns = self._returns_input(None, prices, n)
        rep = _risk.risk_report(
            w,
            returns,
            cov=cov,
            mu=mu,
            confidence=confidence,
            horizon=horizon,
            benchmark=benchmark,
            notional=1.0 if notional is None else float(notional),
            dof=dof,
            mc_paths=mc_paths,
            seed=seed,
            asset_names=names,
        )
        if method is None:
            method = (
                "historical" if rep["var"].get("historical") is not None else "parametric_normal"
            )
        key = str(method).lower().replace("-", "_")
        aliases = {
            "parametric": "parametric_normal",
            "normal": "parametric_normal",
            "t": "parametric_t",
            "student_t": "parametric_t",
            "mc": "monte_carlo",
            "montecarlo": "monte_carlo",
        }
        key = aliases.get(key, key)
        if key not in rep["var"]:
            raise InvalidInput("method", f"unknown method {method!r}; one of {list(rep['var'])}")
        if rep["var"][key] is None:
            raise InvalidInput("method", f"{key} needs data this request does not have")
        N = rep["notional"]
        return {
            "portfolio_id": portfolio_id,
            "confidence_level": rep["confidence"],
            "time_horizon_days": rep["horizon_days"],
            "notional": N,
            "method": key,
            "var": rep["var_amount"][key],
            "cvar": rep["cvar_amount"][key],
            "var_pct": rep["var"][key],
            "cvar_pct": rep["cvar"][key],
            "var_by_method": rep["var_amount"],
            "cvar_by_method": rep["cvar_amount"],
            "max_drawdown": rep["max_drawdown"]["value"] if rep["max_drawdown"] else None,
            "beta": rep["beta"],
            "volatility": rep["volatility_annual"],
            "expected_return": rep["expected_return_annual"],
            "sharpe_ratio": rep["sharpe_ratio"],
            "sortino_ratio": rep["sortino_ratio"],
            "component_var": None
            if rep["component_var"] is None
            else [x * N for x in rep["component_var"]],
            "asset_names": rep["asset_names"],
            "correlation_matrix": rep["correlation_matrix"],
            "covariance_matrix": rep["covariance"],
            "report": rep,
            "portfolio_returns": self._horizon_returns(w, returns, rep["horizon_days"])
            if include_returns
            else None,
        }

    def backtest(
        self,
        strategy: Any = None,
        *,
        prices: Any = None,
        portfolio_id: str | None = None,
        dataset: str | None = None,
        assets: Sequence[str] | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        weights: Any = None,
        rebalance: Any = "monthly",
        lookback: int | None = None,
        cost_bps: float = 10.0,
        initial_capital: float = 1_000_000.0,
        seed: int = 0,
        include_series: bool = True,
    ) -> dict[str, Any]:
        """Backtest a strategy (:func:`prism_kernels.finance.backtest.backtest`).

        Prices come from ``prices`` ((T, n) array, DataFrame, or ``{symbol: [..]}``), else from
        ``dataset``: ``"sp500"`` (skfolio's bundled daily prices, sliced by ``start_date`` /
        ``end_date`` and ``assets``; the default when skfolio is installed) or ``"synthetic"``
        (:func:`prism_kernels.finance.market.generate_market` with ``seed``). With
        ``portfolio_id`` the stored weights and symbols are used (buy and hold of them unless
        another ``strategy`` is named); without either, ``equal_weight``. Window strategies (optimiser objectives,
        ``inverse_volatility``) default to a 126-period look-back.

        Returns
        -------
        dict: ``total_return``, ``annualized_return``, ``annualized_volatility``,
        ``sharpe_ratio``, ``max_drawdown``, ``win_rate``, ``total_cost``, ``trades`` (a list),
        ``n_trades``, ``rebalances``, and with ``include_series`` ``equity_curve``,
        ``returns``, ``drawdown``, ``dates``.
        """
        import pandas as pd

        if portfolio_id is not None:
            doc = self.store.get(KIND, portfolio_id)
            if assets is None:
                assets = doc["assets"]
            if weights is None and strategy in (None, "buy_and_hold", "portfolio"):
                weights = doc["weights"]
                strategy = "buy_and_hold"
        if strategy is None:
            strategy = "equal_weight"
        if isinstance(prices, Mapping):
            prices = pd.DataFrame(
                {str(k): np.asarray(v, dtype=np.float64) for k, v in prices.items()}
            )
        if prices is None:
            ds = (dataset or "sp500").lower()
            if ds == "sp500":
                from prism_kernels.finance.data import load_sp500

                try:
                    prices = load_sp500(start_date, end_date, assets)
                except Unavailable:
                    if dataset is not None:
                        raise
                    ds = "synthetic"
            if ds == "synthetic":
                from prism_kernels.finance.market import generate_market

                n = len(assets) if assets else 10
                m = generate_market(n, 756, seed=seed, start_date=start_date or "2020-01-01")
                prices = m.to_frame()
                if assets:
                    prices.columns = [str(a) for a in assets]
                if end_date is not None:
                    prices = prices.loc[: pd.Timestamp(end_date)]
            elif ds != "sp500":
                raise InvalidInput(
                    "dataset", f"unknown dataset {dataset!r}; 'sp500' or 'synthetic'"
                )
        if (
            lookback is None
            and not (
                isinstance(strategy, str)
                and strategy.replace("-", "_").lower()
                in ("buy_and_hold", "equal_weight", "buyandhold", "equalweight", "fixed")
            )
            and not isinstance(strategy, (list, tuple, np.ndarray))
        ):
            lookback = 126
        if (
            isinstance(prices, pd.DataFrame)
            and weights is not None
            and isinstance(weights, Mapping)
        ):
            weights = [float(weights.get(c, 0.0)) for c in prices.columns]
        res = _backtest(
            prices,
            strategy,
            weights=weights,
            rebalance=rebalance,
            lookback=lookback,
            cost_bps=cost_bps,
            initial_capital=initial_capital,
        )
        out = res.to_dict(include_series=include_series)
        out["portfolio_id"] = portfolio_id
        out["start_date"] = out["dates"][0] if include_series and out.get("dates") else start_date
        out["end_date"] = out["dates"][-1] if include_series and out.get("dates") else end_date
        return out

    @staticmethod
    def align_prices(
        prices: Any, symbols: Sequence[str] | None = None, field: str = "prices"
    ) -> tuple[np.ndarray, list[str] | None]:
        """A (T, n) float array from ``{symbol: [p0, p1, ...]}`` (columns put in ``symbols``
        order) or rows ``[[...], ...]``; ragged rows, unknown or missing symbols, NaN or
        non-positive prices raise :class:`InvalidInput` naming the field."""
        if isinstance(prices, Mapping):
            keys = [str(k) for k in prices]
            if symbols is not None:
                missing = [s for s in symbols if s not in prices]
                if missing:
                    raise InvalidInput(field, f"no prices for {missing[:5]}")
                extra = [k for k in keys if k not in symbols]
                if extra:
                    raise InvalidInput(field, f"prices for unknown assets {extra[:5]}")
                keys = list(symbols)
            flat = [k for k in keys if not isinstance(prices[k], (list, tuple, np.ndarray))]
            if flat:
                raise InvalidInput(f"{field}.{flat[0]}", "must be a list of prices")
            lengths = {k: len(prices[k]) for k in keys}
            if len(set(lengths.values())) > 1:
                k = max(lengths, key=lambda x: lengths[x] != lengths[keys[0]])
                raise InvalidInput(
                    f"{field}.{k}",
                    f"has {lengths[k]} prices but {keys[0]} has {lengths[keys[0]]}: "
                    "every series needs the same length",
                )
            cols = []
            for k in keys:
                try:
                    cols.append(np.asarray(prices[k], dtype=np.float64))
                except (TypeError, ValueError) as exc:
                    raise InvalidInput(f"{field}.{k}", "must be numbers") from exc
            P = np.stack(cols, axis=1) if cols else np.zeros((0, 0))
            names: list[str] | None = keys
        else:
            rows = list(prices)
            flat = [i for i, r in enumerate(rows) if not isinstance(r, (list, tuple, np.ndarray))]
            if flat:
                raise InvalidInput(
                    f"{field}.{flat[0]}", "must be a row of prices (one per asset): [[...], ...]"
                )
            if rows and any(len(r) != len(rows[0]) for r in rows):
                i = next(i for i, r in enumerate(rows) if len(r) != len(rows[0]))
                raise InvalidInput(
                    f"{field}.{i}",
                    f"row has {len(rows[i])} values but row 0 has {len(rows[0])}: one column "
                    "per asset in every row",
                )
            try:
                P = np.asarray(rows, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(field, "must be numbers") from exc
            names = None
        if P.ndim != 2 or P.shape[0] < 2:
            raise InvalidInput(field, f"need at least 2 rows of prices; got shape {P.shape}")
        if symbols is not None and P.shape[1] != len(symbols):
            raise InvalidInput(
                field, f"has {P.shape[1]} columns but there are {len(symbols)} assets"
            )
        if not np.all(np.isfinite(P)):
            raise InvalidInput(field, "contains NaN or infinite values")
        if np.any(P <= 0):
            raise InvalidInput(field, "prices must be positive")
        return P, names

    def price_history(
        self,
        dataset: str = "sp500",
        assets: Sequence[str] | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        *,
        n_assets: int = 10,
        n_periods: int = 504,
        seed: int = 0,
    ) -> Any:
        """Daily prices as a DataFrame: ``"sp500"`` (the shipped S&P 500 closes, see
        :func:`prism_kernels.finance.data.load_sp500`; its first load imports skfolio, a few
        seconds) or ``"synthetic"`` (:func:`prism_kernels.finance.market.generate_market`,
        ``n_assets`` x ``n_periods`` with ``seed``; ``assets`` rename the columns)."""
        import pandas as pd

        ds = str(dataset or "sp500").lower().replace("&", "").replace("-", "").replace(" ", "")
        if ds in ("sp500", "s_p500", "snp500"):
            from prism_kernels.finance.data import load_sp500

            return load_sp500(start_date, end_date, assets)
        if ds == "synthetic":
            from prism_kernels.finance.market import generate_market

            n = len(assets) if assets else int(n_assets)
            m = generate_market(n, int(n_periods), seed=seed, start_date=start_date or "2021-01-01")
            df = m.to_frame()
            if assets:
                df.columns = [str(a) for a in assets]
            if end_date is not None:
                df = df.loc[: pd.Timestamp(end_date)]
            return df
        raise InvalidInput("dataset", f"unknown dataset {dataset!r}; 'sp500' or 'synthetic'")

    @staticmethod
    def _horizon_returns(w: np.ndarray, returns: Any, h: int) -> list[float] | None:
        """Overlapping ``h``-period sums of the portfolio's per-period returns (as risk.py)."""
        if returns is None:
            return None
        R = np.asarray(_risk.to_numpy(_risk.as_returns(returns)), dtype=np.float64)
        r = R @ np.asarray(w, dtype=np.float64)
        if h > 1:
            c = np.concatenate([[0.0], np.cumsum(r)])
            r = c[h:] - c[: r.size - h + 1]
        return r.tolist()

    @staticmethod
    def weights_from_positions(
        positions: Sequence[Mapping[str, Any]],
    ) -> tuple[list[str], np.ndarray, float | None]:
        """Symbols, weights and total value from ``[{symbol, weight | value | shares, current_price}]``.

        All positions must carry the same kind of size: weights (summing to 1), money
        values, or shares with prices. The total is None when only weights are given.
        """
        if not positions:
            raise InvalidInput("positions", "give at least one position")
        syms: list[str] = []
        vals: list[float] = []
        kinds = set()
        for i, p in enumerate(positions):
            if not isinstance(p, Mapping) or not p.get("symbol"):
                raise InvalidInput(f"positions.{i}.symbol", "is required")
            if p.get("weight") is not None:
                kinds.add("weight")
                v = p["weight"]
            elif p.get("value") is not None:
                kinds.add("value")
                v = p["value"]
            elif p.get("shares") is not None and p.get("current_price") is not None:
                kinds.add("value")
                v = float(p["shares"]) * float(p["current_price"])
            else:
                raise InvalidInput(
                    f"positions.{i}", "give weight, value, or shares with current_price"
                )
            v = _finite(v)
            if v is None:
                raise InvalidInput(f"positions.{i}", "size must be a finite number")
            syms.append(str(p["symbol"]))
            vals.append(v)
        if len(kinds) > 1:
            raise InvalidInput("positions", "mix of weights and values: give one kind for all")
        if len(set(syms)) != len(syms):
            raise InvalidInput("positions", "duplicate symbols")
        a = np.asarray(vals)
        if kinds == {"weight"}:
            if abs(a.sum() - 1.0) > 1e-6:
                raise InvalidInput("positions", f"weights must sum to 1; they sum to {a.sum():.6g}")
            return syms, a, None
        total = float(a.sum())
        if total <= 0:
            raise InvalidInput("positions", "the positions' total value must be positive")
        return syms, a / total, total

    def health(self) -> dict[str, Any]:
        """``{status, portfolios_tracked, optimization_latency_ms (mean of the last 100), optimizer, data}``."""
        try:
            import prism_kernels.finance.optimize  # noqa: F401

            opt = True
        except Exception:
            opt = False
        import importlib.util

        try:  # without importing skfolio (seconds): is its bundled S&P 500 file installed?
            spec = importlib.util.find_spec("skfolio")
            base = spec.submodule_search_locations[0] if spec is not None else None
            data = base is not None and os.path.exists(
                os.path.join(base, "datasets", "data", "sp500_dataset.csv.gz")
            )
        except Exception:
            data = False
        with self._lock:
            lat = float(np.mean(self._optimize_ms)) if self._optimize_ms else None
            n_opt = self._n_optimizations
        try:
            count = self.count()
            store_ok = True
        except Exception:
            count, store_ok = None, False
        return {
            "status": "healthy" if (opt and store_ok) else "degraded",
            "portfolios_tracked": count,
            "optimization_latency_ms": lat,
            "optimizations_run": n_opt,
            "optimizer_available": opt,
            "store_available": store_ok,
            "sp500_data_available": data,
        }

    def close(self) -> None:
        """Nothing to release (the store belongs to the runtime)."""
