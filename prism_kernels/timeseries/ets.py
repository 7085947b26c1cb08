"""Exponential smoothing state-space models (ETS), batched over series.

The innovations state-space models of Hyndman, Koehler, Ord & Snyder (*Forecasting with
Exponential Smoothing*, 2008): error ``A``/``M``, trend ``N``/``A``/``Ad`` (damped), season
``N``/``A``/``M``. The recursions are written in R ``forecast::ets``'s error-correction form
(the same for both error types; the error type changes the likelihood and the intervals)::

    q      = l + phi b                  (phi b = 0 without trend; phi = 1 undamped)
    s      = s_{t-m}
    yhat   = q | q + s | q s           (season N | A | M)
    p      = y | y - s | y / s
    l'     = q + alpha (p - q)
    b'     = phi b + beta (p - q)
    s'     = s + gamma (y - q - s) | s + gamma (y / q - s)    (season A | M)

``beta`` and ``gamma`` are the state-space ``beta`` and ``gamma`` (R's, statsmodels
``ETSModel``'s): the usual bounds ``0 < alpha < 1``, ``0 < beta < alpha``,
``0 < gamma < 1 - alpha``, ``0.8 <= phi <= 0.98`` hold by construction of the optimiser's
parameterisation (a logistic map), as R's ``bounds="usual"``; the admissibility (eigenvalue)
check of ``bounds="both"`` is not made.

Log-likelihood (the concentrated Gaussian likelihood, statsmodels ``ETSModel.loglike``)::

    loglik = -n/2 (log(2 pi SSE / n) + 1) - [M error] sum_t log |yhat_t|

with ``e_t = y_t - yhat_t`` (A error) or ``(y_t - yhat_t) / yhat_t`` (M error).
It equals statsmodels ``ETSModel.loglike`` for every model without a multiplicative season
(statsmodels' multiplicative season is the Holt-Winters component form, which divides by the
new level) and R's / StatsForecast's likelihood for every model (tested).

Fitting is maximum likelihood over the smoothing parameters and the initial states
(``l0``, ``b0`` and ``m - 1`` seasonal states, the last fixed so they sum to 0 (A) or ``m`` (M),
as R does), from R's heuristic start, by Nelder-Mead (R's optimiser) and one restart from its
optimum. The optimiser is host code: compiled (numba, one series after another, the NumPy fast
path) or, when the compiled kernels are off, the same algorithm in NumPy run in lock-step for the
whole batch (each series its own simplex, one vectorised likelihood call per trial point); the
two take the same steps (tested). The final filter, fitted values, forecasts and intervals run
on the input's backend (array-API recursion, equal to the compiled likelihood; tested on
PyTorch).

Automatic choice (``model="ZZZ"``, as R ``ets`` and StatsForecast ``AutoETS``): every
admissible model is fitted to the whole batch and each series keeps the one with the smallest
AICc (``K = len(params) + 1`` counting ``sigma``). Excluded, as R's ``restrict=TRUE``: additive
error with multiplicative season; multiplicative error or season unless all values are
positive; seasonal models when ``m == 1`` or ``n < 2 m``. Multiplicative trends are not offered.

Intervals: for the additive class (A error, no M component) the analytic variance
``sigma^2 (1 + sum_{j<h} c_j^2)``, ``c_j = alpha + beta phi_j + gamma [j mod m = 0]``
(Hyndman et al. 2008, table 6.1); for any model with a multiplicative component they are
quantiles of ``nsim`` simulated future paths (seeded, Gaussian innovations). ``sigma^2 =
SSE / (n - K)`` as R.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from prism_kernels import compiled
from prism_kernels.arrays import as_float
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.compiled import njit, warmer
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.core import (
    Forecast,
    as_batch,
    check_horizon,
    check_level,
    check_season_length,
    normal_interval,
)

ALPHA_LO, ALPHA_HI = 1e-4, 0.9999
PHI_LO, PHI_HI = 0.8, 0.98
_TYPES = {"N": 0, "A": 1, "M": 2}


@dataclass(frozen=True)
class Spec:
    """One ETS model: ``error`` A|M, ``trend`` N|A, ``damped``, ``season`` N|A|M, period ``m``."""

    error: str
    trend: str
    damped: bool
    season: str
    m: int

    @property
    def name(self) -> str:
        t = self.trend + ("d" if self.damped else "")
        s = f"ETS({self.error},{t},{self.season})"
        return s + (f"[{self.m}]" if self.season != "N" else "")

    @property
    def n_free(self) -> int:
        """Free parameters: smoothing, ``phi``, ``l0``, ``b0``, ``m - 1`` seasonal states."""
        k = 2  # alpha, l0
        if self.trend != "N":
            k += 2 + int(self.damped)
        if self.season != "N":
            k += 1 + self.m - 1
        return k

    @property
    def additive_class(self) -> bool:
        return self.error == "A" and self.season != "M"


# ----------------------------------------------------------------------------- recursion


def _filter_xp(y, alpha, beta, gamma, phi, l0, b0, s0, spec: Spec):
    """Array-API ETS recursion. ``y`` (B, n); parameters (B,); ``s0`` (B, m) most recent first.

    Returns ``yhat`` (B, n), final ``l``, ``b`` (B,), ``s`` (B, m).
    """
    xp = get_namespace(y)
    n = y.shape[1]
    m = spec.m
    lv, b, s = l0, b0, s0
    out = []
    for t in range(n):
        phib = phi * b if spec.trend != "N" else 0.0 * lv
        q = lv + phib
        yt = y[:, t]
        if spec.season == "N":
            yhat = q
            p = yt
        else:
            sp = s[:, m - 1]
            if spec.season == "A":
                yhat, p = q + sp, yt - sp
            else:
                yhat, p = q * sp, yt / sp
        out.append(yhat)
        d = p - q
        lv = q + alpha * d
        if spec.trend != "N":
            b = phib + beta * d
        if spec.season != "N":
            snew = sp + gamma * ((yt - q) - sp if spec.season == "A" else yt / q - sp)
            s = xp.concat([snew[:, None], s[:, : m - 1]], axis=1)
    return xp.stack(out, axis=1), lv, b, s


def _loglik_from_yhat(y, yhat, error: str):
    """Concentrated log-likelihood (B,) and errors e (B, n) from fitted values."""
    xp = get_namespace(y)
    n = y.shape[1]
    if error == "A":
        e = y - yhat
        extra = 0.0
    else:
        e = (y - yhat) / yhat
        extra = xp.sum(xp.log(xp.abs(yhat)), axis=1)
    sse = xp.sum(e * e, axis=1)
    ll = -0.5 * n * (xp.log(2 * math.pi * sse / n) + 1.0) - extra
    return ll, e


@njit
def _nb_negll(yi, par, etype, ttype, damped, stype, m, s):  # pragma: no cover - compiled
    """-loglik of one series at ``par`` (alpha, beta, gamma, phi, l0, b0, s[0..m-1]); inf
    where the recursion breaks down. ``s`` (m,) is scratch space."""
    n = yi.shape[0]
    alpha, beta, gamma, phi = par[0], par[1], par[2], par[3]
    if not damped:
        phi = 1.0
    lv = par[4]
    b = par[5]
    for j in range(m):
        s[j] = par[6 + j]
    sse = 0.0
    slog = 0.0
    for t in range(n):
        phib = phi * b if ttype != 0 else 0.0
        q = lv + phib
        yt = yi[t]
        sp = 0.0
        if stype == 0:
            yhat = q
            p = yt
        elif stype == 1:
            sp = s[m - 1]
            yhat = q + sp
            p = yt - sp
        else:
            sp = s[m - 1]
            yhat = q * sp
            p = yt / sp
        if etype == 1:
            e = yt - yhat
        else:
            if abs(yhat) < 1e-10:
                return np.inf
            e = (yt - yhat) / yhat
            slog += math.log(abs(yhat))
        sse += e * e
        d = p - q
        lv = q + alpha * d
        if ttype != 0:
            b = phib + beta * d
        if stype != 0:
            if stype == 1:
                snew = sp + gamma * (yt - q - sp)
            else:
                snew = sp + gamma * (yt / q - sp)
            for j in range(m - 1, 0, -1):
                s[j] = s[j - 1]
            s[0] = snew
    if not math.isfinite(sse) or sse <= 0.0:
        return np.inf
    v = 0.5 * n * (math.log(2 * math.pi * sse / n) + 1.0) + slog
    return v if math.isfinite(v) else np.inf


@njit
def _nb_loglik(y, par, etype, ttype, damped, stype, m):  # pragma: no cover - compiled
    """(B,) log-likelihood for (B, 6 + m) parameter rows; -inf where it breaks down."""
    B = y.shape[0]
    out = np.empty(B)
    s = np.empty(m)
    for i in range(B):
        out[i] = -_nb_negll(y[i], par[i], etype, ttype, damped, stype, m, s)
    return out


@njit
def _nb_sig(x):  # pragma: no cover - compiled
    x = min(max(x, -500.0), 500.0)
    return 1.0 / (1.0 + math.exp(-x))


@njit
def _nb_map(x, l0, b0, s0, sc, ttype, damped, stype, m, par):  # pragma: no cover - compiled
    """The optimiser's vector ``x`` to parameter row ``par`` (as ``_Param.cols``)."""
    i = 0
    a = ALPHA_LO + (ALPHA_HI - ALPHA_LO) * _nb_sig(x[i])
    i += 1
    par[0] = a
    par[1] = 0.0
    par[2] = 0.0
    par[3] = 1.0
    if ttype != 0:
        par[1] = ALPHA_LO + (a - ALPHA_LO) * _nb_sig(x[i])
        i += 1
    if stype != 0:
        par[2] = ALPHA_LO + (1.0 - a - 2 * ALPHA_LO) * _nb_sig(x[i])
        i += 1
    if ttype != 0 and damped:
        par[3] = PHI_LO + (PHI_HI - PHI_LO) * _nb_sig(x[i])
        i += 1
    par[4] = l0 + sc * x[i]
    i += 1
    par[5] = 0.0
    if ttype != 0:
        par[5] = b0 + sc * x[i]
        i += 1
    if stype != 0:
        f = sc if stype == 1 else 1.0
        tot = 0.0
        for j in range(m - 1):
            v = s0[j] + f * x[i + j]
            par[6 + j] = v
            tot += v
        par[6 + m - 1] = (0.0 if stype == 1 else float(m)) - tot
    else:
        par[6] = 0.0


@njit
def _nb_nm(
    yi, x0, steps, maxiter, reltol, l0, b0, s0, sc, etype, ttype, damped, stype, m
):  # pragma: no cover - compiled
    """Nelder-Mead for one series, the algorithm of :func:`_nelder_mead`."""
    k = x0.shape[0]
    S = np.empty((k + 1, k))
    F = np.empty(k + 1)
    par = np.empty(6 + max(m, 1))
    sw = np.empty(max(m, 1))
    for j in range(k + 1):
        for c in range(k):
            S[j, c] = x0[c]
        if j > 0:
            S[j, j - 1] += steps[j - 1]
        _nb_map(S[j], l0, b0, s0, sc, ttype, damped, stype, m, par)
        F[j] = _nb_negll(yi, par, etype, ttype, damped, stype, m, sw)
    cen = np.empty(k)
    xr = np.empty(k)
    xe = np.empty(k)
    xc = np.empty(k)
    it = 0
    for _ in range(maxiter):
        # sort the vertices by value (insertion sort, stable)
        for j in range(1, k + 1):
            fj = F[j]
            row = S[j].copy()
            i = j - 1
            while i >= 0 and F[i] > fj:
                F[i + 1] = F[i]
                S[i + 1] = S[i]
                i -= 1
            F[i + 1] = fj
            S[i + 1] = row
        spread = F[k] - F[0]
        if spread <= reltol * (abs(F[0]) + reltol):
            break
        it += 1
        for c in range(k):
            acc = 0.0
            for j in range(k):
                acc += S[j, c]
            cen[c] = acc / k
        for c in range(k):
            xr[c] = cen[c] + (cen[c] - S[k, c])
        _nb_map(xr, l0, b0, s0, sc, ttype, damped, stype, m, par)
        fr = _nb_negll(yi, par, etype, ttype, damped, stype, m, sw)
        shrink = False
        if fr >= F[0] and fr < F[k - 1]:
            S[k] = xr
            F[k] = fr
        elif fr < F[0]:
            for c in range(k):
                xe[c] = cen[c] + 2.0 * (cen[c] - S[k, c])
            _nb_map(xe, l0, b0, s0, sc, ttype, damped, stype, m, par)
            fe = _nb_negll(yi, par, etype, ttype, damped, stype, m, sw)
            if fe < fr:
                S[k] = xe
                F[k] = fe
            else:
                S[k] = xr
                F[k] = fr
        elif fr < F[k]:
            for c in range(k):
                xc[c] = cen[c] + 0.5 * (xr[c] - cen[c])
            _nb_map(xc, l0, b0, s0, sc, ttype, damped, stype, m, par)
            fc = _nb_negll(yi, par, etype, ttype, damped, stype, m, sw)
            if fc <= fr:
                S[k] = xc
                F[k] = fc
            else:
                shrink = True
        else:
            for c in range(k):
                xc[c] = cen[c] + 0.5 * (S[k, c] - cen[c])
            _nb_map(xc, l0, b0, s0, sc, ttype, damped, stype, m, par)
            fc = _nb_negll(yi, par, etype, ttype, damped, stype, m, sw)
            if fc < F[k]:
                S[k] = xc
                F[k] = fc
            else:
                shrink = True
        if shrink:
            for j in range(1, k + 1):
                for c in range(k):
                    S[j, c] = S[0, c] + 0.5 * (S[j, c] - S[0, c])
                _nb_map(S[j], l0, b0, s0, sc, ttype, damped, stype, m, par)
                F[j] = _nb_negll(yi, par, etype, ttype, damped, stype, m, sw)
    best = 0
    for j in range(1, k + 1):
        if F[j] < F[best]:
            best = j
    return S[best].copy(), F[best], it


@njit
def _nb_fit(
    y, x0, steps, maxiter, l0, b0, s0, sc, etype, ttype, damped, stype, m
):  # pragma: no cover - compiled
    """Nelder-Mead and one restart (steps / 4, maxiter / 2) for every series: x, f, iterations."""
    B, k = x0.shape
    X = np.empty((B, k))
    Fv = np.empty(B)
    It = np.empty(B, dtype=np.int64)
    st2 = steps * 0.25
    for i in range(B):
        x, f, it = _nb_nm(
            y[i],
            x0[i],
            steps,
            maxiter,
            1e-8,
            l0[i],
            b0[i],
            s0[i],
            sc[i],
            etype,
            ttype,
            damped,
            stype,
            m,
        )
        x2, f2, it2 = _nb_nm(
            y[i],
            x,
            st2,
            max(maxiter // 2, 1),
            1e-8,
            l0[i],
            b0[i],
            s0[i],
            sc[i],
            etype,
            ttype,
            damped,
            stype,
            m,
        )
        if f2 < f:
            x, f = x2, f2
        X[i] = x
        Fv[i] = f
        It[i] = it + it2
    return X, Fv, It


@warmer
def _warm() -> None:
    y = np.abs(np.sin(np.arange(24.0))) + 2.0
    fit_spec(y[None, :], Spec("M", "A", True, "M", 4), maxiter=5)


def _full_params_np(cols: dict, spec: Spec, B: int) -> np.ndarray:
    """(B, 6 + m) host rows alpha, beta, gamma, phi, l0, b0, s0..s_{m-1} for the kernel."""
    m = spec.m if spec.season != "N" else 1
    out = np.zeros((B, 6 + m))
    out[:, 0] = cols["alpha"]
    out[:, 1] = cols.get("beta", 0.0)
    out[:, 2] = cols.get("gamma", 0.0)
    out[:, 3] = cols.get("phi", 1.0)
    out[:, 4] = cols["l0"]
    out[:, 5] = cols.get("b0", 0.0)
    if spec.season != "N":
        out[:, 6:] = cols["s0"]
    return out


def _loglik_host(
    y: np.ndarray, cols: dict, spec: Spec, use_numba: bool | None = None
) -> np.ndarray:
    """(B,) log-likelihood on the host; ``-inf`` where the recursion breaks down."""
    use_numba = compiled.enabled() if use_numba is None else use_numba
    if use_numba:
        par = _full_params_np(cols, spec, y.shape[0])
        return _nb_loglik(
            y,
            par,
            1 if spec.error == "A" else 2,
            _TYPES[spec.trend],
            spec.damped,
            _TYPES[spec.season],
            spec.m if spec.season != "N" else 1,
        )
    args = _xp_args(y, cols, spec)
    with np.errstate(all="ignore"):
        yhat, *_ = _filter_xp(y, *args, spec)
        ll, _ = _loglik_from_yhat(y, yhat, spec.error)
        if spec.error == "M":
            ll = np.where(np.min(np.abs(yhat), axis=1) < 1e-10, -np.inf, ll)
    return np.where(np.isfinite(ll), ll, -np.inf)


def _xp_args(y, cols: dict, spec: Spec):
    """Parameters as (B,) arrays on ``y``'s backend, in ``_filter_xp`` order."""
    xp = get_namespace(y)
    B = y.shape[0]

    def col(v, default=0.0):
        v = default if v is None else v
        a = as_float(v, xp, like=y)
        return a if a.ndim == 1 else xp.broadcast_to(a, (B,)) + 0.0

    m = spec.m if spec.season != "N" else 1
    s0 = cols.get("s0")
    if s0 is None or spec.season == "N":
        s0a = xp.zeros((B, m), dtype=xp.float64, device=y.device)
    else:
        s0a = as_float(s0, xp, like=y)
        s0a = xp.broadcast_to(s0a, (B, m)) + 0.0 if s0a.ndim == 1 else s0a
    phi = cols.get("phi") if spec.damped else None
    return (
        col(cols["alpha"]),
        col(cols.get("beta")),
        col(cols.get("gamma")),
        col(phi, 1.0),
        col(cols["l0"]),
        col(cols.get("b0")),
        s0a,
    )


# ----------------------------------------------------------------------------- public API


def parse_model(model: str, damped: bool | None = None) -> tuple[list[str], list[tuple], list[str]]:
    """Parse ``"ZZZ"``, ``"AAdA"``, ``"MNM"``... into the candidate letters per component.

    Returns (errors, trends as (letter, damped) pairs, seasons).
    """
    if not isinstance(model, str):
        raise InvalidInput("model", f"expected a string like 'ZZZ' or 'AAdN', got {model!r}")
    s = model.strip()
    su = s.upper()
    if len(su) == 4 and su[2] == "D":
        e, t, d, se = su[0], su[1], True, su[3]
        if t not in "AZ":
            raise InvalidInput("model", f"a damped trend needs trend A or Z, got {model!r}")
    elif len(su) == 3:
        e, t, d, se = su[0], su[1], None, su[2]
    else:
        raise InvalidInput(
            "model", f"expected 3 letters (error, trend, season) like 'ZZZ', got {model!r}"
        )
    if e not in "AMZ" or t not in "NAZ" or se not in "NAMZ":
        raise InvalidInput(
            "model",
            f"{model!r}: error must be A, M or Z; trend N, A, Ad or Z; season N, A, M or Z "
            "(multiplicative trends are not offered)",
        )
    if damped is not None and d is not None and bool(damped) != d:
        raise InvalidInput("damped", "contradicts the model string")
    if d is None:
        d = damped
    errors = ["A", "M"] if e == "Z" else [e]
    seasons = ["N", "A", "M"] if se == "Z" else [se]
    tl = ["N", "A"] if t == "Z" else [t]
    trends = []
    for tt in tl:
        if tt == "N":
            if d:
                if t != "Z":
                    raise InvalidInput("damped", "a damped model needs a trend")
                continue
            trends.append(("N", False))
        else:
            for dd in [False, True] if d is None else [bool(d)]:
                trends.append(("A", dd))
    return errors, trends, seasons


def candidates(
    model: str, m: int, n: int, positive: bool, damped: bool | None = None
) -> list[Spec]:
    """The admissible :class:`Spec` list for a model string on data of length ``n``."""
    errors, trends, seasons = parse_model(model, damped)
    auto = model.strip().upper()
    out = []
    for e in errors:
        for t, d in trends:
            for s in seasons:
                if s != "N" and (m == 1 or n < 2 * m):
                    if auto[-1] == "Z":
                        continue
                    raise InvalidInput(
                        "season_length",
                        f"a seasonal ETS model needs season_length > 1 and at least 2 seasons "
                        f"({2 * m} points), got season_length={m}, n={n}",
                    )
                if (e == "M" or s == "M") and not positive:
                    if auto[0] == "Z" and e == "M" or auto[-1] == "Z" and s == "M":
                        continue
                    raise InvalidInput(
                        "values", "multiplicative error or season needs all values > 0"
                    )
                if e == "A" and s == "M":
                    if auto[0] == "Z" or auto[-1] == "Z":
                        continue
                spec = Spec(e, t, d, s, m if s != "N" else 1)
                if n <= spec.n_free + 2:
                    if len(errors) * len(trends) * len(seasons) > 1:
                        continue
                    raise InvalidInput(
                        "values",
                        f"{spec.name} has {spec.n_free} parameters and needs more than "
                        f"{spec.n_free + 2} points, got {n}",
                    )
                out.append(spec)
    if not out:
        raise InvalidInput("values", f"no admissible ETS model for {n} points")
    return out


def ets_loglike(
    y: Any,
    model: str,
    alpha: Any,
    beta: Any = None,
    gamma: Any = None,
    phi: Any = None,
    initial_level: Any = 0.0,
    initial_trend: Any = None,
    initial_seasonal: Any = None,
    season_length: int = 1,
) -> Any:
    """Exact concentrated Gaussian log-likelihood of an ETS model at given parameters.

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
    model : str
        A fully specified model, e.g. ``"AAdA"`` (no ``Z``).
    alpha, beta, gamma, phi, initial_level, initial_trend : scalar or (B,)
    initial_seasonal : array, shape (m,) or (B, m)
        ``s_{-1}, ..., s_{-m}`` (most recent first, statsmodels ``initial_seasonal.0`` first).
    season_length : int

    Returns
    -------
    array, shape (B,)
        On ``y``'s backend (array-API recursion); equals statsmodels ``ETSModel.loglike``.
    """
    y = as_batch(y)
    m = check_season_length(season_length)
    errors, trends, seasons = parse_model(model, damped=len(str(model).strip()) == 4)
    if len(errors) * len(trends) * len(seasons) != 1:
        raise InvalidInput("model", "needs a fully specified model (no Z)")
    spec = Spec(errors[0], trends[0][0], trends[0][1], seasons[0], m if seasons[0] != "N" else 1)
    cols = {
        "alpha": alpha,
        "beta": beta,
        "gamma": gamma,
        "phi": phi,
        "l0": initial_level,
        "b0": initial_trend,
        "s0": initial_seasonal,
    }
    args = _xp_args(y, cols, spec)
    yhat, *_ = _filter_xp(y, *args, spec)
    ll, _ = _loglik_from_yhat(y, yhat, spec.error)
    return ll


# ----------------------------------------------------------------------------- fitting


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -500.0, 500.0)))


def _logit(p):
    return np.log(p / (1.0 - p))


def _init_states(y: np.ndarray, spec: Spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R-style heuristic start: l0, b0 (B,), seasonal (B, m) most recent first."""
    B, n = y.shape
    m = spec.m
    if spec.season != "N":
        k = min(n // m, 3)
        Y = y[:, : k * m].reshape(B, k, m)
        mu = Y.mean(axis=2, keepdims=True)
        if spec.season == "A":
            idx = (Y - mu).mean(axis=1)
            idx = idx - idx.mean(axis=1, keepdims=True)
            pos = np.arange(n) % m
            ysa = y - idx[:, pos]
        else:
            idx = (Y / mu).mean(axis=1)
            idx = np.clip(idx / idx.mean(axis=1, keepdims=True), 1e-2, None)
            pos = np.arange(n) % m
            ysa = y / idx[:, pos]
        s0 = idx[:, ::-1].copy()  # s0[:, j] = season position m-1-j
    else:
        s0 = np.zeros((B, 1))
        ysa = y
    maxn = min(max(10, 2 * m), n)
    if spec.trend == "N":
        l0 = ysa[:, :maxn].mean(axis=1)
        b0 = np.zeros(B)
    else:
        t = np.arange(1, maxn + 1, dtype=float)
        tc = t - t.mean()
        yy = ysa[:, :maxn]
        b0 = (yy - yy.mean(axis=1, keepdims=True)) @ tc / (tc @ tc)
        l0 = yy.mean(axis=1) - b0 * t.mean()
        fix = np.abs(l0 + b0) < 1e-8
        l0 = np.where(fix, l0 * (1 + 1e-3), l0)
        b0 = np.where(fix, b0 * (1 - 1e-3), b0)
    return l0, b0, s0


class _Param:
    """Maps the optimiser's unconstrained vector (B, k) to model parameters."""

    def __init__(self, y: np.ndarray, spec: Spec):
        self.spec = spec
        l0, b0, s0 = _init_states(y, spec)
        self.l0, self.b0, self.s0 = l0, b0, s0
        sc = np.std(y, axis=1)
        self.scale = np.where(sc > 0, sc, np.maximum(np.abs(y.mean(axis=1)), 1.0))
        B = y.shape[0]
        m = spec.m
        alpha0 = 0.2 / (m if spec.season != "N" else 1) + 0.05
        x0 = [np.full(B, _logit((alpha0 - ALPHA_LO) / (ALPHA_HI - ALPHA_LO)))]
        steps = [1.0]
        if spec.trend != "N":
            x0.append(np.full(B, _logit(0.1)))  # beta = 0.1 alpha
            steps.append(1.0)
        if spec.season != "N":
            x0.append(np.full(B, _logit(0.05)))  # gamma = 0.05 (1 - alpha)
            steps.append(1.0)
        if spec.trend != "N" and spec.damped:
            x0.append(np.full(B, _logit((0.97 - PHI_LO) / (PHI_HI - PHI_LO))))
            steps.append(1.0)
        x0.append(np.zeros(B))  # l0
        steps.append(0.2)
        if spec.trend != "N":
            x0.append(np.zeros(B))  # b0
            steps.append(0.05)
        if spec.season != "N":
            for _ in range(m - 1):
                x0.append(np.zeros(B))
                steps.append(0.2)
        self.x0 = np.stack(x0, axis=1)
        self.steps = np.asarray(steps)

    def cols(self, x: np.ndarray, rows: np.ndarray | None = None) -> dict:
        spec = self.spec
        sel = slice(None) if rows is None else rows
        sc = self.scale[sel]
        i = 0
        out = {}
        a = ALPHA_LO + (ALPHA_HI - ALPHA_LO) * _sigmoid(x[:, i])
        out["alpha"] = a
        i += 1
        if spec.trend != "N":
            out["beta"] = ALPHA_LO + (a - ALPHA_LO) * _sigmoid(x[:, i])
            i += 1
        if spec.season != "N":
            out["gamma"] = ALPHA_LO + (1.0 - a - 2 * ALPHA_LO) * _sigmoid(x[:, i])
            i += 1
        if spec.trend != "N" and spec.damped:
            out["phi"] = PHI_LO + (PHI_HI - PHI_LO) * _sigmoid(x[:, i])
            i += 1
        out["l0"] = self.l0[sel] + sc * x[:, i]
        i += 1
        if spec.trend != "N":
            out["b0"] = self.b0[sel] + sc * x[:, i]
            i += 1
        if spec.season != "N":
            m = spec.m
            s0 = self.s0[sel]
            free = s0[:, : m - 1] + (sc[:, None] if spec.season == "A" else 1.0) * x[:, i:]
            last = (0.0 if spec.season == "A" else float(m)) - free.sum(axis=1)
            out["s0"] = np.concatenate([free, last[:, None]], axis=1)
        return out


def _nelder_mead(f, x0: np.ndarray, steps: np.ndarray, maxiter: int, reltol: float = 1e-8):
    """Batched Nelder-Mead minimisation in lock-step.

    ``f(x (b, k), rows (b,)) -> (b,)`` evaluates the objective for the listed series.
    Returns the best points (B, k), their values (B,) and the iterations each series ran.
    """
    B, k = x0.shape
    simplex = np.repeat(x0[:, None, :], k + 1, axis=1)
    for j in range(k):
        simplex[:, j + 1, j] += steps[j]
    all_rows = np.arange(B)
    fs = np.stack([f(simplex[:, j], all_rows) for j in range(k + 1)], axis=1)
    fs = np.where(np.isfinite(fs), fs, np.inf)
    active = np.ones(B, dtype=bool)
    iters = np.zeros(B, dtype=int)

    def ev(x, rows):
        v = f(x, rows)
        return np.where(np.isfinite(v), v, np.inf)

    for _ in range(maxiter):
        fmin = fs.min(axis=1)
        spread = fs.max(axis=1) - fmin
        conv = spread <= reltol * (np.abs(fmin) + reltol)  # inf - inf is NaN: not converged
        active &= ~conv
        rows = np.nonzero(active)[0]
        if rows.size == 0:
            break
        iters[rows] += 1
        F = fs[rows]
        order = np.argsort(F, axis=1, kind="stable")
        S = np.take_along_axis(simplex[rows], order[:, :, None], axis=1)
        F = np.take_along_axis(F, order, axis=1)
        c = S[:, :-1].mean(axis=1)
        w = S[:, -1]
        xr = c + (c - w)
        fr = ev(xr, rows)
        new_x = S[:, -1].copy()
        new_f = F[:, -1].copy()
        accept = np.zeros(rows.size, dtype=bool)
        # reflection accepted
        r_ok = (fr >= F[:, 0]) & (fr < F[:, -2])
        new_x[r_ok], new_f[r_ok], accept[r_ok] = xr[r_ok], fr[r_ok], True
        # expansion
        ex = fr < F[:, 0]
        if ex.any():
            xe = c[ex] + 2.0 * (c[ex] - w[ex])
            fe = ev(xe, rows[ex])
            use_e = fe < fr[ex]
            bx = np.where(use_e[:, None], xe, xr[ex])
            bf = np.where(use_e, fe, fr[ex])
            new_x[ex], new_f[ex], accept[ex] = bx, bf, True
        # contractions
        oc = (fr >= F[:, -2]) & (fr < F[:, -1])
        ic = fr >= F[:, -1]
        shrink = np.zeros(rows.size, dtype=bool)
        if oc.any():
            xo = c[oc] + 0.5 * (xr[oc] - c[oc])
            fo = ev(xo, rows[oc])
            ok = fo <= fr[oc]
            idx = np.nonzero(oc)[0]
            new_x[idx[ok]], new_f[idx[ok]], accept[idx[ok]] = xo[ok], fo[ok], True
            shrink[idx[~ok]] = True
        if ic.any():
            xi = c[ic] + 0.5 * (w[ic] - c[ic])
            fi = ev(xi, rows[ic])
            ok = fi < F[ic, -1]
            idx = np.nonzero(ic)[0]
            new_x[idx[ok]], new_f[idx[ok]], accept[idx[ok]] = xi[ok], fi[ok], True
            shrink[idx[~ok]] = True
        S[accept, -1] = new_x[accept]
        F[accept, -1] = new_f[accept]
        if shrink.any():
            sr = np.nonzero(shrink)[0]
            best = S[sr, :1]
            S[sr, 1:] = best + 0.5 * (S[sr, 1:] - best)
            for j in range(1, k + 1):
                F[sr, j] = ev(S[sr, j], rows[sr])
        simplex[rows] = S
        fs[rows] = F
    b = np.argmin(fs, axis=1)
    return simplex[np.arange(B), b], fs[np.arange(B), b], iters


@dataclass
class Fit:
    """One ETS model fitted to a batch: host parameter columns and criteria (all (B,))."""

    spec: Spec
    cols: dict
    loglik: np.ndarray
    aic: np.ndarray
    aicc: np.ndarray
    bic: np.ndarray
    iterations: np.ndarray


def fit_spec(
    y: np.ndarray, spec: Spec, maxiter: int | None = None, use_numba: bool | None = None
) -> Fit:
    """Fit one model to a host batch (B, n) by maximum likelihood (Nelder-Mead per series, and
    one restart from its optimum with steps / 4 and half the iterations).

    ``use_numba`` (default: when the compiled kernels are enabled) runs each series' simplex
    in compiled code; otherwise the same algorithm runs in lock-step for the whole batch in
    NumPy (:func:`_nelder_mead`).
    """
    par = _Param(y, spec)
    k = par.x0.shape[1]
    maxiter = maxiter or min(2000, max(500, 100 * k))
    use_numba = compiled.enabled() if use_numba is None else use_numba
    if use_numba:
        m = spec.m if spec.season != "N" else 1
        x, f, it = _nb_fit(
            np.ascontiguousarray(y),
            np.ascontiguousarray(par.x0),
            np.ascontiguousarray(par.steps, dtype=np.float64),
            int(maxiter),
            par.l0,
            par.b0,
            np.ascontiguousarray(par.s0, dtype=np.float64),
            par.scale,
            1 if spec.error == "A" else 2,
            _TYPES[spec.trend],
            spec.damped,
            _TYPES[spec.season],
            m,
        )
    else:

        def obj(x, rows):
            return -_loglik_host(y[rows], par.cols(x, rows), spec, False)

        x, f, it = _nelder_mead(obj, par.x0, par.steps, maxiter)
        x2, f2, it2 = _nelder_mead(obj, x, par.steps * 0.25, max(maxiter // 2, 1))
        better = f2 < f
        x = np.where(better[:, None], x2, x)
        f = np.where(better, f2, f)
        it = it + it2
    n = y.shape[1]
    ll = -f
    K = spec.n_free + 1
    aic = -2 * ll + 2 * K
    aicc = aic + 2 * K * (K + 1) / (n - K - 1) if n - K - 1 > 0 else np.full_like(aic, np.inf)
    bic = -2 * ll + math.log(n) * K
    return Fit(spec, par.cols(x), ll, aic, aicc, bic, it)


def _fit_rows(y: np.ndarray, spec: Spec, maxiter: int | None, rows: np.ndarray) -> Fit:
    """Fit ``spec`` to the series ``rows`` only; the others get NaN parameters and infinite
    criteria (never chosen)."""
    sub = fit_spec(y[rows], spec, maxiter)
    B = y.shape[0]

    def spread(a: np.ndarray, fill: float) -> np.ndarray:
        out = np.full((B,) + a.shape[1:], fill, dtype=a.dtype)
        out[rows] = a
        return out

    cols = {k: spread(v, np.nan) for k, v in sub.cols.items()}
    return Fit(
        spec,
        cols,
        spread(sub.loglik, -np.inf),
        spread(sub.aic, np.inf),
        spread(sub.aicc, np.inf),
        spread(sub.bic, np.inf),
        spread(sub.iterations, 0),
    )


# ----------------------------------------------------------------------------- forecasting


def _phi_sums(phi, h: int, spec: Spec, xp, like):
    """phi_j = sum_{i=1..j} phi^i for j = 1..h, shape (B, h) (j when undamped, 0 without trend)."""
    j = as_float(np.arange(1, h + 1, dtype=float), xp, like)
    if spec.trend == "N":
        return xp.zeros((phi.shape[0], h), dtype=xp.float64, device=like.device)
    if not spec.damped:
        return xp.broadcast_to(j[None, :], (phi.shape[0], h)) + 0.0
    pw = phi[:, None] ** j[None, :]
    return xp.cumulative_sum(pw, axis=1) if hasattr(xp, "cumulative_sum") else xp.cumsum(pw, axis=1)


def _point_forecast(lv, b, s, phi, h: int, spec: Spec):
    xp = get_namespace(lv)
    ph = _phi_sums(phi, h, spec, xp, lv)
    base = lv[:, None] + (ph * b[:, None] if spec.trend != "N" else 0.0 * ph)
    if spec.season == "N":
        return base
    m = spec.m
    idx = xp.asarray([m - 1 - (j % m) for j in range(h)], device=lv.device)
    sf = xp.take(s, idx, axis=1)
    return base + sf if spec.season == "A" else base * sf


def _simulate(lv, b, s, a, be, g, phi, sigma, h, spec, nsim, seed, level):
    """Quantiles of simulated future paths (B, h) for models with a multiplicative part."""
    xp = get_namespace(lv)
    B = lv.shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // max(1, nsim * h))
    lo_out, hi_out = [], []
    qlo, qhi = (1 - level) / 2, 1 - (1 - level) / 2
    for c0 in range(0, B, chunk):
        sl = slice(c0, min(B, c0 + chunk))
        nb = sl.stop - sl.start
        z = as_float(rng.standard_normal((nb, nsim, h)), xp, like=lv)
        L = xp.broadcast_to(lv[sl, None], (nb, nsim)) + 0.0
        Bt = xp.broadcast_to(b[sl, None], (nb, nsim)) + 0.0
        S = xp.broadcast_to(s[sl, None, :], (nb, nsim, s.shape[1])) + 0.0
        A, BE, G, PH = (v[sl, None] for v in (a, be, g, phi))
        sig = sigma[sl, None]
        paths = []
        m = spec.m
        for t in range(h):
            phib = PH * Bt if spec.trend != "N" else 0.0 * L
            q = L + phib
            if spec.season == "N":
                yhat = q
            else:
                sp = S[..., m - 1]
                yhat = q + sp if spec.season == "A" else q * sp
            eps = sig * z[..., t]
            yt = yhat + eps if spec.error == "A" else yhat * (1.0 + eps)
            paths.append(yt)
            if spec.season == "N":
                p = yt
            elif spec.season == "A":
                p = yt - sp
            else:
                p = yt / sp
            d = p - q
            L = q + A * d
            if spec.trend != "N":
                Bt = phib + BE * d
            if spec.season != "N":
                snew = sp + G * ((yt - q) - sp if spec.season == "A" else yt / q - sp)
                S = xp.concat([snew[..., None], S[..., : m - 1]], axis=-1)
        P = xp.sort(xp.stack(paths, axis=-1), axis=1)  # (nb, nsim, h)
        lo_out.append(_quantile_sorted(P, qlo, xp))
        hi_out.append(_quantile_sorted(P, qhi, xp))
    return xp.concat(lo_out, axis=0), xp.concat(hi_out, axis=0)


def _quantile_sorted(P, q: float, xp):
    """Linear-interpolated quantile (numpy's default) along axis 1 of sorted ``P``."""
    n = P.shape[1]
    pos = q * (n - 1)
    i = int(math.floor(pos))
    f = pos - i
    j = min(i + 1, n - 1)
    return P[:, i, :] * (1 - f) + P[:, j, :] * f


def _group_forecast(y, fit: Fit, rows: np.ndarray, h: int, level: float, nsim: int, seed: int):
    """Filter and forecast the series ``rows`` of ``y`` (xp) with one fitted model."""
    xp = get_namespace(y)
    spec = fit.spec
    yb = xp.take(y, xp.asarray(rows, device=y.device), axis=0)
    cols = {k: v[rows] for k, v in fit.cols.items()}
    args = _xp_args(yb, cols, spec)
    yhat, lv, b, s = _filter_xp(yb, *args, spec)
    _, e = _loglik_from_yhat(yb, yhat, spec.error)
    n = yb.shape[1]
    K = spec.n_free + 1
    sigma2 = xp.sum(e * e, axis=1) / max(n - K, 1)
    alpha, beta, gamma, phi = args[0], args[1], args[2], args[3]
    mean = _point_forecast(lv, b, s, phi, h, spec)
    if spec.additive_class:
        ph = _phi_sums(phi, h, spec, xp, yb)
        cj = alpha[:, None] + beta[:, None] * ph
        if spec.season != "N":
            dj = as_float(
                np.asarray([1.0 if (j + 1) % spec.m == 0 else 0.0 for j in range(h)]), xp, yb
            )
            cj = cj + gamma[:, None] * dj[None, :]
        c2 = cj[:, :-1] ** 2
        csum = (
            xp.cumulative_sum(c2, axis=1)
            if hasattr(xp, "cumulative_sum")
            else xp.cumsum(c2, axis=1)
        )
        csum = xp.concat(
            [xp.zeros((yb.shape[0], 1), dtype=xp.float64, device=yb.device), csum], axis=1
        )
        var = sigma2[:, None] * (1.0 + csum)
        lower, upper = normal_interval(mean, xp.sqrt(var), level)
    else:
        lower, upper = _simulate(
            lv, b, s, alpha, beta, gamma, phi, xp.sqrt(sigma2), h, spec, nsim, seed, level
        )
    return mean, lower, upper, yhat, sigma2


def ets(
    y: Any,
    horizon: int,
    level: float = 0.95,
    season_length: int = 1,
    model: str = "ZZZ",
    damped: bool | None = None,
    ic: str = "aicc",
    nsim: int = 2000,
    seed: int = 0,
    maxiter: int | None = None,
) -> Forecast:
    """Fit ETS models to a batch by maximum likelihood and forecast with intervals.

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
        Series of equal length on any backend.
    horizon : int
        Steps ahead ``h``.
    level : float
        Interval coverage.
    season_length : int
        Period ``m`` (1: no season).
    model : str
        ``"ZZZ"`` (automatic), or letters error/trend/season with ``Z`` where to choose, e.g.
        ``"AAdN"``, ``"MAM"``, ``"ZZN"``.
    damped : bool, optional
        Force (True) or forbid (False) a damped trend; None tries both where the trend is
        ``Z`` or ``A``.
    ic : {"aicc", "aic", "bic"}
        Criterion of the automatic choice.
    nsim : int
        Simulated paths per series for the intervals of multiplicative models.
    seed : int
        Seed of those simulations.
    maxiter : int, optional
        Nelder-Mead iterations of the first run (default ``100 k`` within 500..2000, ``k``
        free parameters; the restart gets half).

    Returns
    -------
    Forecast
        ``models[i]`` holds the chosen model's name, parameters, ``sigma2``, ``loglik``,
        ``aic``, ``aicc``, ``bic`` and the interval method.
    """
    h = check_horizon(horizon)
    level = check_level(level)
    m = check_season_length(season_length)
    if ic not in ("aicc", "aic", "bic"):
        raise InvalidInput("ic", f"must be aicc, aic or bic, got {ic!r}")
    if isinstance(nsim, bool) or int(nsim) != nsim or not 100 <= nsim <= 100_000:
        raise InvalidInput("nsim", f"must be an integer from 100 to 100000, got {nsim!r}")
    y = as_batch(y, min_length=4)
    yh = np.ascontiguousarray(to_numpy(y), dtype=np.float64)
    B, n = yh.shape
    pos_rows = np.all(yh > 0, axis=1)
    # multiplicative candidates when every series is positive, or (automatic choice) when some
    # are: series with a value <= 0 never get one
    auto_mult = model.strip().upper()[0] == "Z" or model.strip().upper()[-1] == "Z"
    positive = bool(pos_rows.all()) or (auto_mult and bool(pos_rows.any()))
    specs = candidates(model, m, n, positive, damped)
    fits = []
    for sp in specs:
        mult = sp.error == "M" or sp.season == "M"
        rows = np.nonzero(pos_rows)[0] if mult and not pos_rows.all() else None
        fits.append(fit_spec(yh, sp, maxiter) if rows is None else _fit_rows(yh, sp, maxiter, rows))
    crit = np.stack([getattr(f, ic) for f in fits], axis=0)  # (M, B)
    crit = np.where(np.isfinite(crit), crit, np.inf)
    choice = np.argmin(crit, axis=0)
    if not np.all(np.isfinite(crit[choice, np.arange(B)])):
        bad = int(np.nonzero(~np.isfinite(crit[choice, np.arange(B)]))[0][0])
        raise InvalidInput("values", f"no ETS model could be fitted to series {bad}")
    xp = get_namespace(y)
    mean = xp.zeros((B, h), dtype=xp.float64, device=y.device)
    lower, upper = mean + 0.0, mean + 0.0
    fitted = xp.zeros((B, n), dtype=xp.float64, device=y.device)
    models: list[dict] = [{} for _ in range(B)]
    # scatter by index arithmetic (array API has no item assignment on every backend the same way)
    parts = []
    for mi, fit in enumerate(fits):
        rows = np.nonzero(choice == mi)[0]
        if rows.size == 0:
            continue
        mu, lo, hi, fv, s2 = _group_forecast(y, fit, rows, h, level, nsim, seed)
        parts.append((rows, mu, lo, hi, fv))
        s2h = to_numpy(s2)
        for r_i, r in enumerate(rows):
            models[r] = _model_dict(fit, r, float(s2h[r_i]), m)
    order = np.concatenate([p[0] for p in parts])
    inv = np.empty(B, dtype=np.int64)
    inv[order] = np.arange(B)
    invx = xp.asarray(inv, device=y.device)

    def gather(i):
        return xp.take(xp.concat([p[i] for p in parts], axis=0), invx, axis=0)

    mean, lower, upper, fitted = gather(1), gather(2), gather(3), gather(4)
    return Forecast(
        mean=mean,
        lower=lower,
        upper=upper,
        level=level,
        method="ets",
        models=models,
        fitted=fitted,
        residuals=y - fitted,
    )


def _model_dict(fit: Fit, r: int, sigma2: float, m: int) -> dict:
    spec = fit.spec
    params = {}
    for k in ("alpha", "beta", "gamma", "phi"):
        if k in fit.cols:
            params[k] = float(fit.cols[k][r])
    params["initial_level"] = float(fit.cols["l0"][r])
    if "b0" in fit.cols:
        params["initial_trend"] = float(fit.cols["b0"][r])
    if "s0" in fit.cols:
        params["initial_seasonal"] = [float(v) for v in fit.cols["s0"][r]]
    return {
        "name": spec.name,
        "error": spec.error,
        "trend": spec.trend + ("d" if spec.damped else ""),
        "season": spec.season,
        "season_length": m if spec.season != "N" else 1,
        "params": params,
        "sigma2": sigma2,
        "loglik": float(fit.loglik[r]),
        "aic": float(fit.aic[r]),
        "aicc": float(fit.aicc[r]),
        "bic": float(fit.bic[r]),
        "intervals": "analytic" if spec.additive_class else "simulated",
    }


__all__ = ["ets", "ets_loglike", "fit_spec", "candidates", "parse_model", "Spec"]
