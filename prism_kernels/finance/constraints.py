"""Portfolio constraints and their translation to the linear form the QP solver takes.

A :class:`PortfolioConstraints` describes, for n assets:

* per-asset bounds ``lower <= w_i <= upper`` (scalars or per-asset sequences; a negative
  lower bound allows short positions; weights always sum to 1),
* sector limits: ``sectors`` gives one label per asset (or ``sector_mapper`` maps asset
  names to labels, with ``assets`` naming the columns), and ``sector_lower`` /
  ``sector_upper`` bound the total weight of each sector,
* ``max_total_risk``: an annual volatility cap (a quadratic constraint; the optimiser handles
  it by a search over the risk-aversion),
* ``turnover``: ``sum |w - current_weights| <= turnover``.

:func:`linear_system` builds ``lb <= w <= ub`` and ``L <= G w <= U`` (first row: the budget
``sum w = 1``). :func:`check_feasible` proves that the linear set is non-empty with a small
LP (``scipy.optimize.linprog``/HiGHS, on the host: a pre-check at the edge, not the solve),
and raises :class:`prism_kernels.errors.Infeasible` naming the field at fault otherwise;
nothing is ever silently renormalised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prism_kernels.backend import to_numpy
from prism_kernels.errors import Infeasible, InvalidInput

_TOL = 1e-9


@dataclass
class PortfolioConstraints:
    """Constraints of a long-only or long-short, fully invested portfolio (see module docstring)."""

    lower: float | Sequence[float] = 0.0
    upper: float | Sequence[float] = 1.0
    sectors: Sequence[str] | None = None
    sector_mapper: Mapping[str, str] | None = None
    assets: Sequence[str] | None = None
    sector_lower: Mapping[str, float] = field(default_factory=dict)
    sector_upper: Mapping[str, float] = field(default_factory=dict)
    max_total_risk: float | None = None
    turnover: float | None = None
    current_weights: Sequence[float] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> PortfolioConstraints:
        """Build from a plain dict of this class's fields (``{"lower": 0.0, "upper": 0.3}``);
        ``None`` gives the defaults. Other spellings (the REST API's ``min_position_size``,
        ``sector_limits``...) are translated by the request models, not here."""
        if d is None:
            return cls()
        if isinstance(d, PortfolioConstraints):
            return d
        names = set(cls.__dataclass_fields__)
        for k in d:
            if k not in names:
                raise InvalidInput(f"constraints.{k}", f"unknown constraint {k!r}")
        return cls(**dict(d))

    def is_default(self) -> bool:
        """True when only the default long-only bounds are set."""
        return (
            np.all(np.asarray(self.lower) == 0.0)
            and np.all(np.asarray(self.upper) == 1.0)
            and not self.sector_lower
            and not self.sector_upper
            and self.max_total_risk is None
            and self.turnover is None
        )


@dataclass
class LinearSystem:
    """``lb <= w <= ub``, ``L <= G w <= U`` (row 0 is the budget), with row labels for errors."""

    lb: np.ndarray
    ub: np.ndarray
    G: np.ndarray
    L: np.ndarray
    U: np.ndarray
    rows: list[str]


def _per_asset(v: Any, n: int, name: str) -> np.ndarray:
    a = np.asarray(to_numpy(v) if not isinstance(v, (int, float)) else v, dtype=float)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise InvalidInput(
            f"constraints.{name}", f"expected a scalar or {n} values, got shape {a.shape}"
        )
    if np.any(np.isnan(a)):
        raise InvalidInput(f"constraints.{name}", "contains NaN")
    return a


def sector_labels(c: PortfolioConstraints, n: int) -> list[str] | None:
    """One sector label per asset, or None."""
    if c.sectors is not None:
        labels = [str(s) for s in c.sectors]
        if len(labels) != n:
            raise InvalidInput(
                "constraints.sectors", f"expected {n} sector labels, got {len(labels)}"
            )
        return labels
    if c.sector_mapper is not None:
        if c.assets is None or len(c.assets) != n:
            raise InvalidInput(
                "constraints.assets", f"sector_mapper needs the {n} asset names in 'assets'"
            )
        missing = [a for a in c.assets if a not in c.sector_mapper]
        if missing:
            raise InvalidInput("constraints.sector_mapper", f"no sector for assets {missing[:5]}")
        return [str(c.sector_mapper[a]) for a in c.assets]
    if c.sector_lower or c.sector_upper:
        raise InvalidInput(
            "constraints.sectors", "sector limits given without sectors or sector_mapper"
        )
    return None


def linear_system(c: PortfolioConstraints, n: int) -> LinearSystem:
    """Translate the linear part of ``c`` (bounds, budget, sectors) for n assets."""
    lb = _per_asset(c.lower, n, "lower")
    ub = _per_asset(c.upper, n, "upper")
    bad = np.nonzero(lb > ub + _TOL)[0]
    if bad.size:
        raise Infeasible(
            "constraints.lower", f"lower bound above upper bound for asset(s) {bad[:5].tolist()}"
        )
    if lb.sum() > 1 + _TOL:
        raise Infeasible(
            "constraints.lower", f"lower bounds sum to {lb.sum():.6g} > 1: weights cannot sum to 1"
        )
    if ub.sum() < 1 - _TOL:
        raise Infeasible(
            "constraints.upper", f"upper bounds sum to {ub.sum():.6g} < 1: weights cannot sum to 1"
        )
    G = [np.ones(n)]
    L = [1.0]
    U = [1.0]
    rows = ["budget"]
    labels = sector_labels(c, n)
    if labels is not None:
        known = set(labels)
        for s in list(c.sector_lower) + list(c.sector_upper):
            if s not in known:
                raise InvalidInput(f"constraints.sector_limits.{s}", f"sector {s!r} has no assets")
        for s in sorted(set(c.sector_lower) | set(c.sector_upper)):
            mask = np.array([lab == s for lab in labels], dtype=float)
            lo = float(c.sector_lower.get(s, -np.inf))
            hi = float(c.sector_upper.get(s, np.inf))
            if np.isnan(lo) or np.isnan(hi):
                raise InvalidInput(f"constraints.sector_limits.{s}", "NaN limit")
            if lo > hi + _TOL:
                raise Infeasible(
                    f"constraints.sector_limits.{s}", f"lower limit {lo} above upper limit {hi}"
                )
            if lb[mask > 0].sum() > hi + _TOL:
                raise Infeasible(
                    f"constraints.sector_limits.{s}",
                    f"asset lower bounds in sector force more than {hi}",
                )
            if ub[mask > 0].sum() < lo - _TOL:
                raise Infeasible(
                    f"constraints.sector_limits.{s}", f"asset upper bounds cannot reach {lo}"
                )
            G.append(mask)
            L.append(lo)
            U.append(hi)
            rows.append(f"sector_limits.{s}")
    return LinearSystem(lb, ub, np.vstack(G), np.asarray(L, float), np.asarray(U, float), rows)


def linprog_box(
    cost: np.ndarray, lb: np.ndarray, ub: np.ndarray, G: np.ndarray, L: np.ndarray, U: np.ndarray
) -> tuple[bool, np.ndarray | None, float]:
    """``min cost'x`` s.t. ``lb <= x <= ub``, ``L <= G x <= U`` with HiGHS (host).

    Returns (feasible, x, value); an unbounded LP returns (True, None, -inf).
    """
    from scipy.optimize import linprog

    eq = np.isclose(L, U, rtol=0, atol=0)
    A_eq = G[eq] if eq.any() else None
    b_eq = L[eq] if eq.any() else None
    ub_rows, ub_rhs = [], []
    for i in np.nonzero(~eq)[0]:
        if np.isfinite(U[i]):
            ub_rows.append(G[i])
            ub_rhs.append(U[i])
        if np.isfinite(L[i]):
            ub_rows.append(-G[i])
            ub_rhs.append(-L[i])
    bounds = [
        (None if not np.isfinite(a) else a, None if not np.isfinite(b) else b)
        for a, b in zip(lb, ub, strict=True)
    ]
    res = linprog(
        cost,
        A_ub=np.asarray(ub_rows) if ub_rows else None,
        b_ub=np.asarray(ub_rhs) if ub_rhs else None,
        A_eq=A_eq,
        b_eq=b_eq,
        bounds=bounds,
        method="highs",
    )
    if res.status == 2:
        return False, None, np.nan
    if res.status == 3:
        return True, None, -np.inf
    if res.status != 0:
        raise Infeasible("constraints", f"feasibility check failed: {res.message}")
    return True, res.x, float(res.fun)


def turnover_system(ls: LinearSystem, w0: np.ndarray, tau: float) -> LinearSystem:
    """Lift ``sum |w - w0| <= tau`` with n auxiliary variables t >= |w - w0|: x = (w, t)."""
    n = ls.lb.size
    Z = np.zeros((ls.G.shape[0], n))
    I = np.eye(n)  # noqa: E741
    G = np.vstack(
        [
            np.hstack([ls.G, Z]),
            np.hstack([I, -I]),
            np.hstack([I, I]),
            np.hstack([np.zeros(n), np.ones(n)]),
        ]
    )
    L = np.concatenate([ls.L, np.full(n, -np.inf), w0, [-np.inf]])
    U = np.concatenate([ls.U, w0, np.full(n, np.inf), [tau]])
    lb = np.concatenate([ls.lb, np.zeros(n)])
    ub = np.concatenate([ls.ub, np.full(n, np.inf)])
    rows = ls.rows + [f"turnover.{i}" for i in range(2 * n)] + ["turnover"]
    return LinearSystem(lb, ub, G, L, U, rows)


def check_feasible(c: PortfolioConstraints, n: int) -> LinearSystem:
    """The linear system of ``c`` (lifted for turnover), after proving it is non-empty.

    Raises
    ------
    Infeasible
        Naming ``constraints.lower``/``upper``, ``constraints.sector_limits[.<sector>]`` or
        ``constraints.turnover``.
    """
    ls = linear_system(c, n)
    # bounds + budget alone were proven feasible by linear_system; sectors need an LP
    feas = (
        True if len(ls.rows) == 1 else linprog_box(np.zeros(n), ls.lb, ls.ub, ls.G, ls.L, ls.U)[0]
    )
    if not feas:
        field_ = "constraints.sector_limits" if len(ls.rows) > 1 else "constraints"
        raise Infeasible(
            field_, "no weights satisfy the bounds, the budget and the sector limits together"
        )
    if c.turnover is not None:
        tau = float(c.turnover)
        if not np.isfinite(tau) or tau < 0:
            raise InvalidInput("constraints.turnover", "turnover must be a finite number >= 0")
        if c.current_weights is None:
            raise InvalidInput(
                "constraints.current_weights", "a turnover limit needs the current weights"
            )
        w0 = _per_asset(c.current_weights, n, "current_weights")
        lifted = turnover_system(ls, w0, np.inf)
        cost = np.concatenate([np.zeros(n), np.ones(n)])
        feas, _, val = linprog_box(cost, lifted.lb, lifted.ub, lifted.G, lifted.L, lifted.U)
        if val > tau + 1e-9:
            raise Infeasible(
                "constraints.turnover",
                f"the constraints need a turnover of at least {val:.6g} from the current weights (limit {tau})",
            )
        return turnover_system(ls, w0, tau)
    return ls
