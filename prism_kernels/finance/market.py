"""A seeded synthetic market: factor model, calm/stressed regimes, fat tails.

Daily simple returns of ``n`` assets follow a factor model whose parameters switch with a
two-state Markov chain (``calm``, ``stressed``):

``r_t = alpha + B (m_s + f_t) + e_t``

* factors: one market factor plus one factor per sector; asset ``i`` loads ``beta_i`` on the
  market and ``gamma_i`` on its own sector;
* in regime ``s`` the factor means are ``m_s`` and the factor and idiosyncratic volatilities
  are multiplied by ``vol_mult_s`` (stressed: higher volatility, negative market drift,
  higher correlation because the market factor dominates);
* shocks ``f_t`` and ``e_t`` are Student-t with ``dof`` degrees of freedom scaled to unit
  variance (fat tails), so the regime covariances are exact: ``B F_s B' + D_s``.

The returned ``mu``/``cov`` are the true unconditional moments of one day's return under the
chain's stationary distribution (a mixture of the two regimes); ``regime_mu``/``regime_cov``
are the per-regime moments. Generated on the host with NumPy (PCG64), reproducible from
``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput
from prism_kernels.seeds import check_seed

__all__ = ["Market", "generate_market", "REGIMES"]

REGIMES = ("calm", "stressed")


@dataclass
class Market:
    """A generated market.

    ``prices`` (T, n) starting at ``start_price``; ``returns`` (T-1, n) simple returns with
    ``prices[t] = prices[t-1] * (1 + returns[t-1])``; ``regimes`` (T-1,) 0 = calm,
    1 = stressed; ``names``, ``sectors`` (n,); ``mu`` (n,), ``cov`` (n, n) true unconditional
    daily moments; ``regime_mu`` (2, n), ``regime_cov`` (2, n, n); ``loadings`` (n, 1 + n_sectors);
    ``transition`` (2, 2); ``stationary`` (2,); ``dates`` business days.
    """

    prices: np.ndarray
    returns: np.ndarray
    regimes: np.ndarray
    names: list[str]
    sectors: list[str]
    mu: np.ndarray
    cov: np.ndarray
    regime_mu: np.ndarray
    regime_cov: np.ndarray
    loadings: np.ndarray
    transition: np.ndarray
    stationary: np.ndarray
    dates: Any
    dof: float
    seed: int | None

    def to_frame(self) -> Any:
        """Prices as a pandas DataFrame (dates x names)."""
        import pandas as pd

        return pd.DataFrame(self.prices, index=self.dates, columns=self.names)

    def returns_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.returns, index=self.dates[1:], columns=self.names)


_SECTOR_NAMES = ("TECH", "FIN", "ENERGY", "HEALTH", "CONS", "INDU", "UTIL", "MATS", "COMM", "REIT")


def generate_market(
    n_assets: int = 20,
    n_periods: int = 1000,
    *,
    n_sectors: int | None = None,
    seed: int | None = 0,
    dof: float | None = 5.0,
    regimes: bool = True,
    p_calm_to_stressed: float = 0.02,
    p_stressed_to_calm: float = 0.10,
    market_vol: float = 0.010,
    sector_vol: float = 0.006,
    idio_vol: float = 0.012,
    market_drift: float = 0.0004,
    stressed_drift: float = -0.0015,
    stressed_vol_multiplier: float = 2.5,
    start_price: float = 100.0,
    start_date: str = "2020-01-01",
) -> Market:
    """Generate a reproducible market (see the module docstring).

    Parameters
    ----------
    n_assets, n_periods : assets and price rows (``n_periods >= 2``).
    n_sectors : sector factors (1 .. n_assets, default ``min(4, n_assets)``); assets are
        assigned round-robin.
    seed : non-negative integer (at most 2**64 - 1), or None for fresh entropy.
    dof : Student-t degrees of freedom (> 2) of all shocks; None for normal shocks.
    regimes : False for a single calm regime.
    p_calm_to_stressed, p_stressed_to_calm : daily switching probabilities.
    market_vol, sector_vol, idio_vol : daily calm-regime volatilities.
    market_drift, stressed_drift : daily market-factor mean in each regime.
    stressed_vol_multiplier : volatility multiplier of the stressed regime.
    """
    n = int(n_assets)
    T = int(n_periods)
    if n < 1:
        raise InvalidInput("n_assets", f"must be >= 1; got {n_assets}")
    if T < 2:
        raise InvalidInput("n_periods", f"must be >= 2; got {n_periods}")
    k = min(4, n) if n_sectors is None else int(n_sectors)
    if not 1 <= k <= n:
        raise InvalidInput("n_sectors", f"must be in [1, n_assets={n}]; got {n_sectors}")
    if dof is not None and not float(dof) > 2:
        raise InvalidInput("dof", f"must be > 2 (finite variance) or None; got {dof}")
    for name, p in (
        ("p_calm_to_stressed", p_calm_to_stressed),
        ("p_stressed_to_calm", p_stressed_to_calm),
    ):
        if not 0.0 <= float(p) <= 1.0:
            raise InvalidInput(name, f"must be a probability; got {p}")
    if regimes and float(p_calm_to_stressed) + float(p_stressed_to_calm) == 0:
        raise InvalidInput(
            "p_stressed_to_calm", "the two switching probabilities cannot both be zero"
        )
    for name, v in (("market_vol", market_vol), ("sector_vol", sector_vol), ("idio_vol", idio_vol)):
        if not float(v) >= 0:
            raise InvalidInput(name, f"must be >= 0; got {v}")
    if not float(start_price) > 0:
        raise InvalidInput("start_price", "must be positive")

    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    sector_idx = np.arange(n) % k
    sector_labels = [_SECTOR_NAMES[j] if j < len(_SECTOR_NAMES) else f"SECTOR{j}" for j in range(k)]
    names = [f"{sector_labels[s][:4]}{i:03d}" for i, s in enumerate(sector_idx)]
    sectors = [sector_labels[s] for s in sector_idx]

    m = 1 + k
    B = np.zeros((n, m))
    B[:, 0] = rng.uniform(0.6, 1.4, n)  # market beta
    B[np.arange(n), 1 + sector_idx] = rng.uniform(0.5, 1.2, n)
    alpha = rng.normal(0.0, 0.0001, n)
    idio = idio_vol * rng.uniform(0.6, 1.4, n)

    fvol = np.r_[market_vol, np.full(k, sector_vol)]
    mults = np.array([1.0, float(stressed_vol_multiplier)])
    fmean = np.zeros((2, m))
    fmean[0, 0] = market_drift
    fmean[1, 0] = stressed_drift
    if regimes:
        P = np.array(
            [
                [1 - p_calm_to_stressed, p_calm_to_stressed],
                [p_stressed_to_calm, 1 - p_stressed_to_calm],
            ],
            dtype=np.float64,
        )
        pi = np.array([p_stressed_to_calm, p_calm_to_stressed], dtype=np.float64)
        pi = pi / pi.sum()
    else:
        P = np.array([[1.0, 0.0], [0.0, 1.0]])
        pi = np.array([1.0, 0.0])

    regime_mu = np.stack([alpha + B @ fmean[s] for s in range(2)])
    regime_cov = np.stack(
        [(B * (mults[s] * fvol) ** 2) @ B.T + np.diag((mults[s] * idio) ** 2) for s in range(2)]
    )
    mu = pi @ regime_mu
    second = sum(pi[s] * (regime_cov[s] + np.outer(regime_mu[s], regime_mu[s])) for s in range(2))
    cov = second - np.outer(mu, mu)
    cov = 0.5 * (cov + cov.T)

    # regime path (stationary start)
    Tr = T - 1
    states = np.zeros(Tr, dtype=np.int64)
    if regimes:
        u = rng.random(Tr)
        s = int(rng.random() < pi[1])
        for t in range(Tr):
            states[t] = s
            s = int(u[t] < P[s, 1]) if s == 0 else int(u[t] >= P[s, 0])

    # unit-variance shocks
    def shocks(shape: tuple[int, ...]) -> np.ndarray:
        z = rng.standard_normal(shape)
        if dof is None:
            return z
        w = rng.chisquare(float(dof), shape[0]) / float(dof)
        return z / np.sqrt(w)[:, None] * np.sqrt((float(dof) - 2.0) / float(dof))

    f = shocks((Tr, m)) * fvol[None, :]
    e = shocks((Tr, n)) * idio[None, :]
    mult = mults[states][:, None]
    returns = alpha[None, :] + fmean[states] @ B.T + mult * (f @ B.T + e)
    returns = np.maximum(returns, -0.95)  # a price cannot fall below zero in one day
    prices = float(start_price) * np.vstack([np.ones((1, n)), np.cumprod(1.0 + returns, axis=0)])

    import pandas as pd

    try:
        dates = pd.bdate_range(start=start_date, periods=T)
    except (pd.errors.OutOfBoundsDatetime, pd.errors.OutOfBoundsTimedelta):
        # past 2262 (about 63,000 business days from 2020): nanosecond stamps overflow
        dates = pd.bdate_range(start=start_date, periods=T, unit="s")
    return Market(
        prices=prices,
        returns=returns,
        regimes=states,
        names=names,
        sectors=sectors,
        mu=mu,
        cov=cov,
        regime_mu=regime_mu,
        regime_cov=regime_cov,
        loadings=B,
        transition=P,
        stationary=pi,
        dates=dates,
        dof=float(dof) if dof is not None else float("inf"),
        seed=seed,
    )
