"""Gaussian interacting multiple model (IMM) filter, batched over tracks and modes.

Stone Soup has no Gaussian IMM (dstl/Stone-Soup#129, #1238); FilterPy has one for a single
linear track. Here one call runs every track and every mode: mode-conditioned states have
shape (N, M, n) and covariances (N, M, n, n); mode probabilities (N, M) sum to 1.

The default model set is constant velocity, constant acceleration and ballistic (gravity)
in the common 9-state layout ``[x, y, z, vx, vy, vz, ax, ay, az]`` (see :mod:`.models`).

One cycle (Blom & Bar-Shalom):

1. mixing: ``cbar_j = sum_i Pi_ij mu_i``, ``omega_ij = Pi_ij mu_i / cbar_j``, mixed means
   and covariances (with the spread-of-means term);
2. mode-matched Kalman prediction with each model's ``F, Q, u``;
3. mode-matched Kalman update, likelihoods ``L_j``;
4. ``mu_j ∝ cbar_j L_j`` (in log space, so tiny likelihoods do not underflow);
5. combination into one Gaussian per track.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prism_kernels.arrays import as_float, check_finite, check_shape, mT, symmetrize
from prism_kernels.arrays import device_of as _dev
from prism_kernels.backend import get_namespace
from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.kalman import kf_predict, kf_update
from prism_kernels.pwsa.models import Ballistic, ConstantAcceleration, ConstantVelocity, MotionModel

_TINY = 1e-300


@dataclass
class IMMState:
    """Batched IMM state.

    Attributes
    ----------
    xm : (N, M, n) mode-conditioned means
    Pm : (N, M, n, n) mode-conditioned covariances
    mu : (N, M) mode probabilities (rows sum to 1)
    """

    xm: Any
    Pm: Any
    mu: Any

    @property
    def x(self) -> Any:
        """Combined mean (N, n)."""
        return combine(self.xm, self.Pm, self.mu)[0]

    @property
    def P(self) -> Any:
        """Combined covariance (N, n, n)."""
        return combine(self.xm, self.Pm, self.mu)[1]


def combine(xm: Any, Pm: Any, mu: Any) -> tuple[Any, Any]:
    """Moment-matched Gaussian of a mixture: (N, M, n), (N, M, n, n), (N, M) -> (N, n), (N, n, n)."""
    xp = get_namespace(xm)
    x = xp.sum(mu[..., None] * xm, axis=-2)
    d = xm - x[..., None, :]
    P = xp.sum(mu[..., None, None] * (Pm + d[..., :, None] * d[..., None, :]), axis=-3)
    return x, symmetrize(P)


def mix(xm: Any, Pm: Any, mu: Any, Pi: Any) -> tuple[Any, Any, Any]:
    """IMM mixing step.

    Parameters
    ----------
    xm (N, M, n), Pm (N, M, n, n), mu (N, M) ; Pi (M, M) Markov matrix, ``Pi[i, j]`` =
    P(mode j now | mode i before), rows sum to 1.

    Returns
    -------
    x0 (N, M, n), P0 (N, M, n, n) mixed initial conditions, cbar (N, M) predicted mode
    probabilities.
    """
    xp = get_namespace(xm)
    cbar = xp.matmul(mu, Pi)
    omega = Pi * mu[..., :, None] / xp.clip(cbar, _TINY, None)[..., None, :]  # (N, i, j)
    x0 = xp.matmul(mT(omega), xm)  # (N, j, n)
    d = xm[..., :, None, :] - x0[..., None, :, :]  # (N, i, j, n)
    outer = d[..., :, None] * d[..., None, :]  # (N, i, j, n, n)
    P0 = xp.sum(omega[..., None, None] * (Pm[..., :, None, :, :] + outer), axis=-4)
    return x0, symmetrize(P0), cbar


class IMM:
    """Batched IMM filter over a set of linear motion models.

    Parameters
    ----------
    models : sequence of :class:`~.models.MotionModel`
        All with the same state size (use ``embed=True`` for CV/ballistic with CA).
    transition : (M, M) array_like
        Mode transition probabilities, rows sum to 1.
    """

    def __init__(self, models: Sequence[MotionModel], transition: Any) -> None:
        if len(models) < 1:
            raise InvalidInput("models", "need at least one motion model")
        sizes = {m.ndim_state for m in models}
        if len(sizes) != 1:
            raise InvalidInput(
                "models", f"all models need the same state size, got {sorted(sizes)}"
            )
        Pi = np.asarray(transition, dtype=np.float64)
        M = len(models)
        if Pi.shape != (M, M):
            raise InvalidInput("transition", f"expected shape ({M}, {M}), got {Pi.shape}")
        if not np.all(np.isfinite(Pi)) or np.any(Pi < 0) or not np.allclose(Pi.sum(1), 1.0):
            raise InvalidInput("transition", "rows must be probabilities summing to 1")
        self.models = list(models)
        self.transition = Pi
        self.ndim_state = sizes.pop()

    @classmethod
    def cv_ca_ballistic(
        cls,
        q_cv: float = 1.0,
        q_ca: float = 1.0,
        q_ballistic: float = 1.0,
        p_stay: float = 0.95,
    ) -> IMM:
        """The default PWSA set: CV, CA and ballistic in the 9-state layout."""
        M = 3
        Pi = np.full((M, M), (1.0 - p_stay) / (M - 1))
        np.fill_diagonal(Pi, p_stay)
        return cls(
            [
                ConstantVelocity(q_cv, embed=True),
                ConstantAcceleration(q_ca),
                Ballistic(q_ballistic, embed=True),
            ],
            Pi,
        )

    def initiate(self, x: Any, P: Any, mu: Any = None) -> IMMState:
        """Start every mode at ``x`` (N, n), ``P`` (N, n, n); ``mu`` (M,) or (N, M), uniform by default."""
        xp = get_namespace(x)
        n = self.ndim_state
        check_shape(x, "x", (n,))
        check_shape(P, "P", (n, n))
        check_finite(x, "x")
        check_finite(P, "P")
        M = len(self.models)
        if mu is None:
            mu = np.full(M, 1.0 / M)
        mu = as_float(mu, xp, x)
        check_shape(mu, "mu", (M,))
        mu = mu * xp.ones((*x.shape[:-1], 1), dtype=xp.float64, device=_dev(x))
        xm = x[..., None, :] * xp.ones((M, 1), dtype=xp.float64, device=_dev(x))
        Pm = P[..., None, :, :] * xp.ones((M, 1, 1), dtype=xp.float64, device=_dev(x))
        return IMMState(xm, Pm, mu / xp.sum(mu, axis=-1, keepdims=True))

    def matrices(self, dt: Any, xp: Any, like: Any) -> tuple[Any, Any, Any]:
        """Every mode's ``(F, Q, u)`` over ``dt``, stacked on the mode axis: dt (N,) gives
        F, Q (N, M, n, n) and u (N, M, n); a scalar dt gives (M, n, n) and (M, n)."""
        Fs, Qs, us = [], [], []
        for m in self.models:
            F, Q, u = m.matrices(dt, xp, like)
            if u is None:
                u = xp.zeros((*F.shape[:-1],), dtype=xp.float64, device=_dev(like))
            Fs.append(F)
            Qs.append(Q)
            us.append(u)
        # stack modes next to the track axis: dt (N,) -> (N, M, n, n); scalar dt -> (M, n, n)
        ax = -3
        return xp.stack(Fs, axis=ax), xp.stack(Qs, axis=ax), xp.stack(us, axis=-2)

    def predict(self, state: IMMState, dt: Any) -> IMMState:
        """Mix and predict every mode over ``dt`` (scalar or (N,) seconds).

        The returned ``mu`` is the predicted mode probability ``cbar``.
        """
        xp = get_namespace(state.xm)
        Pi = as_float(self.transition, xp, state.xm)
        x0, P0, cbar = mix(state.xm, state.Pm, state.mu, Pi)
        F, Q, u = self.matrices(dt, xp, state.xm)
        xm, Pm = kf_predict(x0, P0, F, Q, u, validate=False)
        return IMMState(xm, Pm, cbar)

    def update(self, state: IMMState, z: Any, H: Any, R: Any) -> tuple[IMMState, Any]:
        """Mode-matched updates with ``z`` (N, m), ``H`` (m, n), ``R`` (m, m) or (N, m, m).

        Returns the posterior state and the IMM measurement log-likelihood per track (N,).
        """
        xp = get_namespace(state.xm)
        z = as_float(z, xp, state.xm)
        R = as_float(R, xp, state.xm)
        H = as_float(H, xp, state.xm)
        m = z.shape[-1]
        check_shape(z, "z", (m,))
        check_shape(H, "H", (m, self.ndim_state))
        check_shape(R, "R", (m, m))
        check_finite(z, "z")
        check_finite(R, "R")
        if z.shape[:-1] != state.mu.shape[:-1]:
            raise InvalidInput(
                "z",
                f"expected {tuple(state.mu.shape[:-1])} measurements, got {tuple(z.shape[:-1])}",
            )
        Rm = R[..., None, :, :] if R.ndim > 2 else R
        up = kf_update(state.xm, state.Pm, z[..., None, :], H, Rm, validate=False)
        logw = xp.log(xp.clip(state.mu, _TINY, None)) + up.log_likelihood
        lmax = xp.max(logw, axis=-1, keepdims=True)
        w = xp.exp(logw - lmax)
        tot = xp.sum(w, axis=-1, keepdims=True)
        mu = w / tot
        loglik = (lmax + xp.log(tot))[..., 0]
        return IMMState(up.x, up.P, mu), loglik
