"""A multi-target tracker built from swappable parts, in the style of Stone Soup.

Parts (small classes; swap any of them):

* **Predictor** -- :class:`KalmanPredictor` (one motion model) or :class:`IMMPredictor`
  (CV/CA/ballistic IMM). ``initial_state(x, P)``, ``predict(state, dt)``.
* **Updater** -- :class:`KalmanUpdater` / :class:`IMMUpdater` for 3-D position
  measurements ``z = H x + v``. ``predict_measurement(state, R)``, ``update(state, z, R)``.
* **Associator** -- :class:`GNNAssociator`: chi-square gate on the squared Mahalanobis
  distance, then global nearest neighbour (``scipy.optimize.linear_sum_assignment``, a host
  edge; see :mod:`.association`).
* **Initiator** -- :class:`MofNInitiator`: unassociated measurements become candidates;
  a candidate that a later measurement confirms (within a maximum-speed gate) becomes a
  tentative track by two-point initialisation; a tentative track is confirmed after M hits
  in its first N scans and dropped when it can no longer reach M.
* **Deleter** -- :class:`MissCovarianceDeleter`: a track is lost after ``max_misses``
  consecutive missed scans or when its position variance exceeds a bound.

Track states are kept as batched arrays (``x`` (N, n), ``P`` (N, n, n), plus IMM mode
arrays) on the tracker's backend, so one scan of a thousand tracks is a handful of batched
kernel calls. :meth:`Tracker.step` runs one scan: a (K, 3) array of measurements from one
sensor, or a mapping ``{sensor_id: (K, 3)}`` whose sensors are fused sequentially
(Kalman updates one sensor after the other at the same timestamp).

Everything the tracker holds serialises with :meth:`Tracker.to_dict` /
:meth:`Tracker.from_dict` (plain lists and numbers, JSON-ready).
"""

from __future__ import annotations

import base64
import collections
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from prism_kernels.arrays import as_float, device_of, mT, mv
from prism_kernels.backend import asarray as backend_asarray
from prism_kernels.backend import get_namespace as namespace_of
from prism_kernels.backend import namespace, to_numpy
from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.pwsa.association import (
    Assignment,
    chi2_gate,
    euclidean_matrix,
    gnn_assign,
    mahalanobis_matrix,
)
from prism_kernels.pwsa.imm import IMM, IMMState
from prism_kernels.pwsa.kalman import kf_predict, kf_update
from prism_kernels.pwsa.models import Ballistic, ConstantVelocity, MotionModel, position_selector

TENTATIVE = "tentative"
CONFIRMED = "confirmed"
LOST = "lost"

# --------------------------------------------------------------------------- tracks


@dataclass
class Track:
    """One track (host copy; the tracker keeps the live state batched).

    Attributes
    ----------
    track_id : str
    status : {"tentative", "confirmed", "lost"}
    state : dict of NumPy arrays
        ``x`` (n,), ``P`` (n, n); for the IMM also ``xm`` (M, n), ``Pm`` (M, n, n), ``mu`` (M,).
    time : float
        Time of ``state`` (s).
    last_updated : float
        Time of the last measurement update (s).
    created : float
    hits : list of bool
        Hit (True) or miss per scan since creation (most recent last; bounded).
    consecutive_misses : int
    nis_avg : float
        Exponential moving average of the normalised innovation squared.
    log_likelihood : float
        Log-likelihood of the last update.
    sensors : list of str
        Sensors that have updated the track.
    """

    track_id: str
    status: str
    state: dict[str, np.ndarray]
    time: float
    last_updated: float
    created: float
    hits: list[bool] = field(default_factory=list)
    consecutive_misses: int = 0
    nis_avg: float = 3.0
    log_likelihood: float = 0.0
    sensors: list[str] = field(default_factory=list)

    @property
    def position(self) -> np.ndarray:
        """Position (3,), m."""
        return self.state["x"][:3]

    @property
    def velocity(self) -> np.ndarray:
        """Velocity (3,), m/s."""
        return self.state["x"][3:6]

    @property
    def covariance(self) -> np.ndarray:
        """State covariance (n, n)."""
        return self.state["P"]

    @property
    def confidence(self) -> float:
        """Track confidence in [0, 1] from the hit history and the innovation statistics.

        ``(hits + 1) / (scans + 2)`` over the last 10 scans (Laplace-smoothed hit rate),
        times ``exp(-max(0, nis_avg / m - 1) / 2)`` with ``m = 3`` (1 for a consistent filter,
        smaller when the innovations are larger than the filter predicts).
        """
        window = self.hits[-10:]
        rate = (sum(window) + 1.0) / (len(window) + 2.0)
        return float(rate * math.exp(-0.5 * max(0.0, self.nis_avg / 3.0 - 1.0)))

    @property
    def mode_probabilities(self) -> np.ndarray | None:
        """IMM mode probabilities (M,) or ``None`` for a single-model track."""
        return self.state.get("mu")

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python (JSON-ready) form."""
        return {
            "track_id": self.track_id,
            "status": self.status,
            "state": {k: np.asarray(v).tolist() for k, v in self.state.items()},
            "time": float(self.time),
            "last_updated": float(self.last_updated),
            "created": float(self.created),
            "hits": [bool(h) for h in self.hits],
            "consecutive_misses": int(self.consecutive_misses),
            "nis_avg": float(self.nis_avg),
            "log_likelihood": float(self.log_likelihood),
            "sensors": list(self.sensors),
            "position": self.position.tolist(),
            "velocity": self.velocity.tolist(),
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Track:
        """Inverse of :meth:`to_dict` (derived fields are ignored)."""
        try:
            return cls(
                track_id=str(d["track_id"]),
                status=str(d["status"]),
                state={k: np.asarray(v, dtype=np.float64) for k, v in d["state"].items()},
                time=float(d["time"]),
                last_updated=float(d["last_updated"]),
                created=float(d["created"]),
                hits=[bool(h) for h in d.get("hits", [])],
                consecutive_misses=int(d.get("consecutive_misses", 0)),
                nis_avg=float(d.get("nis_avg", 3.0)),
                log_likelihood=float(d.get("log_likelihood", 0.0)),
                sensors=[str(s) for s in d.get("sensors", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("track", f"not a serialised track: {exc}") from exc


# --------------------------------------------------------------------------- parts


class Predictor(Protocol):
    ndim_state: int

    def initial_state(self, x: Any, P: Any) -> dict[str, Any]: ...

    def predict(self, state: dict[str, Any], dt: Any) -> dict[str, Any]: ...


class Updater(Protocol):
    def predict_measurement(self, state: dict[str, Any], R: Any) -> tuple[Any, Any]: ...

    def update(self, state: dict[str, Any], z: Any, R: Any) -> tuple[dict[str, Any], Any, Any]: ...


def _any_negative(dt: Any) -> bool:
    """True when some step in ``dt`` (scalar or array, any backend) is negative."""
    if isinstance(dt, (int, float)):
        return dt < 0
    return bool(np.any(to_numpy(dt) < 0))


def retrodict(x: Any, P: Any, F: Any, Q: Any, u: Any = None) -> tuple[Any, Any]:
    """Prediction back in time, for a scan that arrives late.

    With ``F, Q, u`` the motion model over ``|dt|`` (forward: ``x' = F x + u``), the state
    ``|dt|`` earlier is ``x = F^+ (x' - u)`` with covariance ``F^+ P F^+T + Q`` (``F^+`` the
    pseudo-inverse: the inverse, except for a model embedded in a larger state, whose
    transition zeroes the extra components and so leaves them zero going back too). Adding
    ``Q`` (rather than the exact, smaller correction for the process noise shared with
    the later scans) keeps the retrodicted covariance conservative.
    """
    xp = namespace_of(x)
    Finv = xp.linalg.pinv(as_float(F, xp, x))
    ub = None if u is None else -mv(Finv, as_float(u, xp, x))
    return kf_predict(x, P, Finv, Q, ub, validate=False)


class KalmanPredictor:
    """Kalman prediction with one :class:`~.models.MotionModel` (per-track ``dt``)."""

    def __init__(self, model: MotionModel) -> None:
        self.model = model
        self.ndim_state = model.ndim_state

    def initial_state(self, x: Any, P: Any) -> dict[str, Any]:
        return {"x": x, "P": P}

    def predict(self, state: dict[str, Any], dt: Any) -> dict[str, Any]:
        """Predict over ``dt`` (s, per track); a negative ``dt`` retrodicts (a late scan)."""
        if not _any_negative(dt):
            F, Q, u = self.model.matrices(dt, like=state["x"])
            x, P = kf_predict(state["x"], state["P"], F, Q, u, validate=False)
            return {"x": x, "P": P}
        xp = namespace_of(state["x"])
        back = as_float(dt, xp, state["x"]) < 0
        F, Q, u = self.model.matrices(xp.abs(as_float(dt, xp, state["x"])), like=state["x"])
        xf, Pf = kf_predict(state["x"], state["P"], F, Q, u, validate=False)
        xb, Pb = retrodict(state["x"], state["P"], F, Q, u)
        return {
            "x": xp.where(back[..., None], xb, xf),
            "P": xp.where(back[..., None, None], Pb, Pf),
        }

    def config(self) -> dict[str, Any]:
        return {
            "type": "kalman",
            "kind": self.model.kind,
            "q": self.model.q,
            "embed": self.model.embed,
        }


class KalmanUpdater:
    """Linear Kalman update for 3-D position measurements (Joseph form)."""

    def __init__(self, ndim_state: int, joseph: bool = True) -> None:
        self.ndim_state = ndim_state
        self.joseph = joseph
        self._H = position_selector(ndim_state)

    def _h(self, like: Any) -> Any:
        return as_float(self._H, namespace_of(like), like)

    def predict_measurement(self, state: dict[str, Any], R: Any) -> tuple[Any, Any]:
        xp = namespace_of(state["x"])
        H = self._h(state["x"])
        zhat = state["x"][..., :3]
        S = xp.matmul(xp.matmul(H, state["P"]), mT(H)) + R
        return zhat, S

    def update(self, state: dict[str, Any], z: Any, R: Any) -> tuple[dict[str, Any], Any, Any]:
        up = kf_update(
            state["x"], state["P"], z, self._h(state["x"]), R, joseph=self.joseph, validate=False
        )
        return {"x": up.x, "P": up.P}, up.nis, up.log_likelihood


class IMMPredictor:
    """IMM mixing + mode-matched prediction (default: CV/CA/ballistic, 9 states)."""

    def __init__(self, imm: IMM | None = None) -> None:
        self.imm = imm or IMM.cv_ca_ballistic()
        self.ndim_state = self.imm.ndim_state

    def initial_state(self, x: Any, P: Any) -> dict[str, Any]:
        s = self.imm.initiate(x, P)
        return {"x": x, "P": P, "xm": s.xm, "Pm": s.Pm, "mu": s.mu}

    def predict(self, state: dict[str, Any], dt: Any) -> dict[str, Any]:
        """Mix and predict over ``dt`` (s, per track); a negative ``dt`` retrodicts every
        mode without mixing (the mode probabilities stay)."""
        s0 = IMMState(state["xm"], state["Pm"], state["mu"])
        if not _any_negative(dt):
            s = self.imm.predict(s0, dt)
            return {"x": s.x, "P": s.P, "xm": s.xm, "Pm": s.Pm, "mu": s.mu}
        xp = namespace_of(state["xm"])
        dt = as_float(dt, xp, state["xm"])
        back = dt < 0
        f = self.imm.predict(s0, xp.abs(dt))
        F, Q, u = self.imm.matrices(xp.abs(dt), xp, state["xm"])
        xb, Pb = retrodict(s0.xm, s0.Pm, F, Q, u)
        s = IMMState(
            xp.where(back[..., None, None], xb, f.xm),
            xp.where(back[..., None, None, None], Pb, f.Pm),
            xp.where(back[..., None], s0.mu, f.mu),
        )
        return {"x": s.x, "P": s.P, "xm": s.xm, "Pm": s.Pm, "mu": s.mu}

    def config(self) -> dict[str, Any]:
        return {
            "type": "imm",
            "models": [{"kind": m.kind, "q": m.q, "embed": m.embed} for m in self.imm.models],
            "transition": self.imm.transition.tolist(),
        }


class IMMUpdater(KalmanUpdater):
    """Mode-matched IMM update; the gate uses the combined (moment-matched) prediction."""

    def __init__(self, imm: IMM) -> None:
        super().__init__(imm.ndim_state)
        self.imm = imm

    def update(self, state: dict[str, Any], z: Any, R: Any) -> tuple[dict[str, Any], Any, Any]:
        s = IMMState(state["xm"], state["Pm"], state["mu"])
        zhat, S = self.predict_measurement(state, R)
        s, loglik = self.imm.update(s, z, self._h(state["x"]), R)
        xp = namespace_of(z)
        d = z - zhat
        Sinv = xp.linalg.inv(S)
        nis = xp.sum(xp.matmul(d[..., None, :], Sinv)[..., 0, :] * d, axis=-1)
        return {"x": s.x, "P": s.P, "xm": s.xm, "Pm": s.Pm, "mu": s.mu}, nis, loglik


class GNNAssociator:
    """Chi-square gate on squared Mahalanobis distance, then global nearest neighbour."""

    def __init__(self, gate_probability: float = 0.999) -> None:
        self.gate_probability = gate_probability
        self.threshold = chi2_gate(3, gate_probability)

    def associate(self, zhat: Any, S: Any, Z: Any) -> Assignment:
        """Assignment of measurements ``Z`` (K, 3) to tracks (``zhat`` (N, 3), ``S`` (N, 3, 3))."""
        if zhat.shape[0] == 0 or Z.shape[0] == 0:
            return gnn_assign(np.zeros((zhat.shape[0], Z.shape[0])), gate=self.threshold)
        d2, _ = mahalanobis_matrix(zhat, S, Z)
        return gnn_assign(d2, gate=self.threshold)

    def config(self) -> dict[str, Any]:
        return {"gate_probability": self.gate_probability}


class MofNInitiator:
    """Candidates from unassociated measurements, two-point initialisation, M-of-N confirmation.

    Parameters
    ----------
    m, n : int
        Confirm a tentative track after ``m`` hits in its first ``n`` scans (the two
        initialising measurements count as two hits).
    max_speed : float
        Largest target speed (m/s): a candidate pairs with a later measurement only within
        ``max_speed * dt`` plus 3 sigma of the measurement noise.
    max_gap : float
        Candidates older than this (s) are dropped.
    acc_std : float
        Prior standard deviation of acceleration (m/s^2) for 9-state models.
    merge_probability : float
        Chi-square gate for merging same-time measurements from several sensors into one
        candidate (information-weighted).
    """

    def __init__(
        self,
        m: int = 3,
        n: int = 4,
        max_speed: float = 8000.0,
        max_gap: float = 10.0,
        acc_std: float = 30.0,
        merge_probability: float = 0.999,
    ) -> None:
        if not 1 <= m <= n:
            raise InvalidInput("m", "need 1 <= m <= n")
        self.m, self.n = int(m), int(n)
        self.max_speed = float(max_speed)
        self.max_gap = float(max_gap)
        self.acc_std = float(acc_std)
        self.merge_probability = merge_probability
        self._merge_gate = chi2_gate(3, merge_probability)
        self.candidates: list[dict[str, Any]] = []  # {"z": (3,), "R": (3,3), "time": float}

    def config(self) -> dict[str, Any]:
        return {
            "m": self.m,
            "n": self.n,
            "max_speed": self.max_speed,
            "max_gap": self.max_gap,
            "acc_std": self.acc_std,
            "merge_probability": self.merge_probability,
        }

    def status_after_scan(self, track: Track) -> str:
        """``confirmed`` / ``tentative`` / ``lost`` for a tentative track after a scan."""
        first = track.hits[: self.n]
        hits = sum(first)
        if hits >= self.m:
            return CONFIRMED
        if hits + (self.n - len(first)) < self.m:
            return LOST
        return TENTATIVE

    def initiate(
        self, Z: np.ndarray, R: np.ndarray, time: float, ndim_state: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Consume unassociated measurements ``Z`` (K, 3) with noise ``R`` (K, 3, 3) at ``time``.

        1. Candidates from earlier scans pair with the measurements by GNN on Euclidean
           distance within ``max_speed * dt + 3 sigma``; each pair starts a tentative track
           (:func:`two_point_init`).
        2. Remaining measurements merge (information-weighted) into candidates from the same
           time (another sensor saw the same object), by GNN within the chi-square gate.
        3. The rest become new candidates.

        Returns the ``(x, P)`` of the new tentative tracks (host arrays).
        """
        Z = np.asarray(Z, dtype=np.float64).reshape(-1, 3)
        R = np.asarray(R, dtype=np.float64).reshape(-1, 3, 3)
        keep = [c for c in self.candidates if time - c["time"] <= self.max_gap]
        old = [c for c in keep if c["time"] < time]
        same = [c for c in keep if c["time"] >= time]
        out: list[tuple[np.ndarray, np.ndarray]] = []
        free = np.ones(len(Z), dtype=bool)
        if old and len(Z):
            Zc = np.stack([c["z"] for c in old])
            Rc = np.stack([c["R"] for c in old])
            dt = time - np.array([c["time"] for c in old])
            dist = euclidean_matrix(Zc, Z)
            sig = (
                np.sqrt(np.trace(Rc, axis1=1, axis2=2))[:, None]
                + np.sqrt(np.trace(R, axis1=1, axis2=2))[None, :]
            )
            reach = self.max_speed * dt[:, None] + 3.0 * sig
            a = gnn_assign(dist, gate=dist <= reach, miss_cost=float(reach.max()) + 1.0)
            for ci, k in zip(a.tracks, a.measurements, strict=True):
                out.append(
                    two_point_init(
                        Zc[ci], Rc[ci], Z[k], R[k], float(dt[ci]), ndim_state, self.acc_std
                    )
                )
            free[a.measurements] = False
            taken = np.zeros(len(old), dtype=bool)
            taken[a.tracks] = True
            old = [c for c, t in zip(old, taken, strict=True) if not t]
        idx = np.flatnonzero(free)
        if same and len(idx):
            Zs = np.stack([c["z"] for c in same])
            Rs = np.stack([c["R"] for c in same])
            Zu, Ru = Z[idx], R[idx]
            # exact d2 only for pairs that can pass the gate: d2 <= g needs
            # |d|^2 <= g * lambda_max(Rs + Ru) <= g * (trace Rs + trace Ru)
            bound = self._merge_gate * (
                np.trace(Rs, axis1=1, axis2=2)[:, None] + np.trace(Ru, axis1=1, axis2=2)[None, :]
            )
            ci, ki = np.nonzero(euclidean_matrix(Zs, Zu) ** 2 <= bound)
            d2 = np.full((len(same), len(idx)), np.inf)
            if len(ci):
                d = Zu[ki] - Zs[ci]
                d2[ci, ki] = np.einsum(
                    "pi,pi->p", d, np.linalg.solve(Rs[ci] + Ru[ki], d[..., None])[..., 0]
                )
            a = gnn_assign(d2, gate=self._merge_gate)
            if len(a.tracks):
                ca, ka = a.tracks, idx[a.measurements]
                Ia, Ib = np.linalg.inv(Rs[ca]), np.linalg.inv(R[ka])
                Rf = np.linalg.inv(Ia + Ib)
                zf = (Rf @ ((Ia @ Zs[ca][..., None]) + (Ib @ Z[ka][..., None])))[..., 0]
                Rf = 0.5 * (Rf + Rf.transpose(0, 2, 1))
                for j, ci in enumerate(ca):
                    same[ci]["z"], same[ci]["R"] = zf[j], Rf[j]
            free[idx[a.measurements]] = False
        for k in np.flatnonzero(free):
            same.append({"z": Z[k].copy(), "R": R[k].copy(), "time": float(time)})
        self.candidates = old + same
        return out

    def to_dict(self) -> list[dict[str, Any]]:
        return [
            {"z": c["z"].tolist(), "R": c["R"].tolist(), "time": c["time"]} for c in self.candidates
        ]

    def load(self, data: list[Mapping[str, Any]]) -> None:
        self.candidates = [
            {
                "z": np.asarray(c["z"], float),
                "R": np.asarray(c["R"], float),
                "time": float(c["time"]),
            }
            for c in data
        ]


def two_point_init(
    z1: np.ndarray,
    R1: np.ndarray,
    z2: np.ndarray,
    R2: np.ndarray,
    dt: float,
    ndim_state: int,
    acc_std: float = 30.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-point initialisation: position ``z2``, velocity ``(z2 - z1) / dt``.

    Covariance: ``P_pp = R2``, ``P_pv = R2 / dt``, ``P_vv = (R1 + R2) / dt^2`` and, for a
    9-state model, zero acceleration with variance ``acc_std^2``.
    """
    if dt <= 0:
        raise InvalidInput("dt", "two-point initialisation needs a positive time difference")
    x = np.zeros(ndim_state)
    x[:3] = z2
    x[3:6] = (z2 - z1) / dt
    P = np.zeros((ndim_state, ndim_state))
    P[:3, :3] = R2
    P[:3, 3:6] = R2 / dt
    P[3:6, :3] = R2 / dt
    P[3:6, 3:6] = (R1 + R2) / dt**2
    if ndim_state >= 9:
        P[6:9, 6:9] = np.eye(3) * acc_std**2
    return x, P


class MissCovarianceDeleter:
    """Lose a confirmed track after ``max_misses`` consecutive misses or when its position
    variance (largest diagonal element of the position block, m^2) exceeds ``max_position_var``."""

    def __init__(self, max_misses: int = 3, max_position_var: float = 1e10) -> None:
        self.max_misses = int(max_misses)
        self.max_position_var = float(max_position_var)

    def config(self) -> dict[str, Any]:
        return {"max_misses": self.max_misses, "max_position_var": self.max_position_var}

    def delete(self, track: Track) -> bool:
        if track.consecutive_misses >= self.max_misses:
            return True
        return float(np.max(np.diag(track.state["P"])[:3])) > self.max_position_var


# --------------------------------------------------------------------------- tracker


@dataclass
class StepResult:
    """What one scan changed. ``tracks`` holds the confirmed tracks after the scan."""

    timestamp: float
    new: list[Track]
    confirmed: list[Track]
    lost: list[Track]
    tracks: list[Track]
    n_measurements: int = 0
    n_associated: int = 0


class Tracker:
    """Multi-target tracker: predictor, updater, associator, initiator, deleter.

    Parameters
    ----------
    predictor, updater, associator, initiator, deleter : parts (see module doc)
        Defaults: constant-velocity Kalman (``q = 400`` m^2/s^3, enough for gravity over
        a few seconds), Joseph-form updates, GNN with a 0.999 gate,
        3-of-4 initiator, 3-miss deleter.
    sensors : mapping sensor_id -> (3, 3) measurement noise covariance (m^2), optional
    default_R : (3, 3) noise covariance for sensors not in ``sensors``
    backend : array backend name (default: the configured one)
    id_prefix : str
        Track ids are ``f"{id_prefix}{counter:06d}"``.
    max_lost_history : int
        Lost tracks kept for :meth:`get`.
    late_tolerance : float
        How late (s) a scan may be behind the tracker's clock (its newest scan): a late scan
        is processed at its own time, the tracks retrodicted to it (:func:`retrodict`) and
        predicted forward again by the next scan. Later than that, or with the default 0, a
        scan earlier than the clock is refused.
    """

    def __init__(
        self,
        predictor: Any = None,
        updater: Any = None,
        associator: Any = None,
        initiator: Any = None,
        deleter: Any = None,
        *,
        sensors: Mapping[str, Any] | None = None,
        default_R: Any = None,
        backend: str | None = None,
        id_prefix: str = "trk-",
        max_lost_history: int = 1000,
        late_tolerance: float = 0.0,
    ) -> None:
        self.predictor = predictor or KalmanPredictor(ConstantVelocity(400.0))
        if updater is None:
            if isinstance(self.predictor, IMMPredictor):
                updater = IMMUpdater(self.predictor.imm)
            else:
                updater = KalmanUpdater(self.predictor.ndim_state)
        self.updater = updater
        self.associator = associator or GNNAssociator()
        self.initiator = initiator or MofNInitiator()
        self.deleter = deleter or MissCovarianceDeleter()
        self.backend = backend
        self.xp = namespace(backend)
        self.sensors: dict[str, np.ndarray] = {}
        for sid, R in (sensors or {}).items():
            self.add_sensor(sid, R)
        self.default_R = self._check_R(
            default_R if default_R is not None else np.eye(3) * 100.0**2, "default_R"
        )
        self.id_prefix = id_prefix
        self._counter = 0
        self._meta: list[Track] = []  # metadata; state lives in self._state
        self._state: dict[str, Any] = {}
        self.lost: collections.deque[Track] = collections.deque(maxlen=max_lost_history)
        self.time: float | None = None
        if not (math.isfinite(late_tolerance) and late_tolerance >= 0):
            raise InvalidInput("late_tolerance", "must be a finite number of seconds >= 0")
        self.late_tolerance = float(late_tolerance)

    # ---- configuration
    @staticmethod
    def _check_R(R: Any, field: str) -> np.ndarray:
        R = np.asarray(to_numpy(R), dtype=np.float64)
        if R.shape != (3, 3):
            raise InvalidInput(field, f"expected a (3, 3) covariance, got shape {R.shape}")
        if not np.all(np.isfinite(R)):
            raise InvalidInput(field, "contains NaN or inf")
        if not np.allclose(R, R.T) or np.linalg.eigvalsh(R).min() <= 0:
            raise InvalidInput(field, "must be symmetric positive definite")
        return R

    def add_sensor(self, sensor_id: str, R: Any) -> None:
        """Register a sensor's (3, 3) position-noise covariance (m^2)."""
        self.sensors[str(sensor_id)] = self._check_R(R, f"sensors.{sensor_id}")

    # ---- views
    @property
    def n_tracks(self) -> int:
        """Live tracks (tentative and confirmed)."""
        return len(self._meta)

    def count(self, status: str | None = None) -> int:
        """Live tracks with ``status`` (``confirmed`` or ``tentative``; ``None``: both)."""
        return sum(1 for m in self._meta if status is None or m.status == status)

    def candidate_positions(self) -> np.ndarray:
        """Positions (K, 3) in metres of the measurements waiting for another scan to start a
        track (the initiator's candidates)."""
        c = self.initiator.candidates
        return np.array([np.asarray(x["z"], dtype=float) for x in c]).reshape(-1, 3)

    def check_time(self, timestamp: Any) -> float:
        """``timestamp`` as seconds if the tracker can take a scan at it; changes nothing.

        Raises :class:`InvalidInput` (field ``timestamp``) when it is not a finite number or
        is earlier than the tracker's clock by more than :attr:`late_tolerance`.
        """
        try:
            t = float(timestamp)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("timestamp", "must be a number (seconds)") from exc
        if not math.isfinite(t):
            raise InvalidInput("timestamp", "must be finite")
        if self.time is not None and t < self.time - self.late_tolerance:
            late = (
                f" (scans may be up to {self.late_tolerance:g} s late)"
                if self.late_tolerance
                else ""
            )
            raise InvalidInput(
                "timestamp",
                f"scan at {t} is earlier than the tracker time {self.time}{late}",
            )
        return t

    # ---- all-or-nothing scans
    def checkpoint(self) -> dict[str, Any]:
        """A copy of everything :meth:`step` and :meth:`add_sensor` change (cheap: the
        batched arrays are replaced, never written in place, so they are shared)."""
        return {
            "time": self.time,
            "counter": self._counter,
            "state": dict(self._state),
            "meta": [_copy_track(m) for m in self._meta],
            "lost": list(self.lost),
            "candidates": [dict(c) for c in self.initiator.candidates],
            "sensors": dict(self.sensors),
        }

    def restore(self, cp: Mapping[str, Any]) -> None:
        """Return to a :meth:`checkpoint` (after a scan that failed half-way)."""
        self.time = cp["time"]
        self._counter = cp["counter"]
        self._state = dict(cp["state"])
        self._meta = [_copy_track(m) for m in cp["meta"]]
        self.lost.clear()
        self.lost.extend(cp["lost"])
        self.initiator.candidates = [dict(c) for c in cp["candidates"]]
        self.sensors = dict(cp["sensors"])

    def _snapshot(self, idx: list[int] | None = None) -> list[Track]:
        if not self._meta:
            return []
        host = {k: to_numpy(v) for k, v in self._state.items()}
        idx = range(len(self._meta)) if idx is None else idx
        out = []
        for i in idx:
            t = self._meta[i]
            out.append(
                Track(
                    t.track_id,
                    t.status,
                    {k: np.array(v[i]) for k, v in host.items()},
                    t.time,
                    t.last_updated,
                    t.created,
                    list(t.hits),
                    t.consecutive_misses,
                    t.nis_avg,
                    t.log_likelihood,
                    list(t.sensors),
                )
            )
        return out

    def tracks(self, status: str | None = CONFIRMED) -> list[Track]:
        """Host snapshots of the live tracks (``status=None``: tentative and confirmed)."""
        tr = self._snapshot()
        return [t for t in tr if status is None or t.status == status]

    def get(self, track_id: str) -> Track:
        """One track by id (live or recently lost)."""
        for i, t in enumerate(self._meta):
            if t.track_id == track_id:
                return self._snapshot([i])[0]
        for t in self.lost:
            if t.track_id == track_id:
                return t
        raise NotFound("track", track_id)

    # ---- one scan
    def step(self, measurements: Any, timestamp: float, sensor_id: str | None = None) -> StepResult:
        """Run one scan.

        Parameters
        ----------
        measurements : (K, 3) array of positions (m) from ``sensor_id``, or a mapping
            ``{sensor_id: (K, 3)}`` fused sequentially in the mapping's order.
        timestamp : float
            Scan time (s); at most :attr:`late_tolerance` before the tracker's clock.
        sensor_id : str, optional
            Which registered sensor (its R); unknown or ``None`` uses ``default_R``.

        Returns
        -------
        StepResult
            Tracks created, confirmed and lost in this scan, and the confirmed tracks.
        """
        t = self.check_time(timestamp)
        if isinstance(measurements, Mapping):
            batches = [
                (str(k), self._check_Z(v, f"measurements.{k}")) for k, v in measurements.items()
            ]
        else:
            batches = [
                (
                    None if sensor_id is None else str(sensor_id),
                    self._check_Z(measurements, "measurements"),
                )
            ]
        self.time = t if self.time is None else max(self.time, t)
        before = {m.track_id: m.status for m in self._meta}
        for m in self._meta:
            m.hits.append(False)
            m.hits = m.hits[-64:]
        new_ids: list[str] = []
        n_meas = n_assoc = 0
        for sid, Z in batches:
            R = self.sensors.get(sid, self.default_R) if sid is not None else self.default_R
            n_meas += len(Z)
            n_assoc += self._scan_one(Z, R, t, sid or "default", new_ids)
        # confirmation and deletion once per scan
        confirmed_ids, lost_idx = [], []
        snap = self._snapshot()
        for i, (m, s) in enumerate(zip(self._meta, snap, strict=True)):
            m.consecutive_misses = 0 if m.hits[-1] else m.consecutive_misses + 1
            s.consecutive_misses = m.consecutive_misses
            if m.status == TENTATIVE:
                st = self.initiator.status_after_scan(m)
                if st == CONFIRMED:
                    m.status = s.status = CONFIRMED
                    confirmed_ids.append(m.track_id)
                elif st == LOST:
                    lost_idx.append(i)
            elif m.status == CONFIRMED and self.deleter.delete(s):
                lost_idx.append(i)
        lost_set = set(lost_idx)
        lost = [snap[i] for i in lost_idx]
        self._remove(lost_idx, lost)
        snap = [s for i, s in enumerate(snap) if i not in lost_set]
        idx_of = {s.track_id: i for i, s in enumerate(snap)}
        new = [snap[idx_of[k]] for k in new_ids if k in idx_of]
        conf = [
            snap[idx_of[k]] for k in confirmed_ids if k in idx_of and before.get(k) != CONFIRMED
        ]
        return StepResult(
            timestamp=t,
            new=new,
            confirmed=conf,
            lost=lost,
            tracks=[s for s in snap if s.status == CONFIRMED],
            n_measurements=n_meas,
            n_associated=n_assoc,
        )

    def _check_Z(self, Z: Any, field: str) -> np.ndarray:
        Z = (
            np.asarray(to_numpy(Z), dtype=np.float64)
            if not isinstance(Z, np.ndarray)
            else Z.astype(np.float64)
        )
        if Z.ndim == 1 and Z.size == 0:
            Z = Z.reshape(0, 3)
        if Z.ndim != 2 or Z.shape[1] != 3:
            raise InvalidInput(field, f"expected shape (K, 3) positions, got {Z.shape}")
        if not np.all(np.isfinite(Z)):
            raise InvalidInput(field, "contains NaN or inf")
        return Z

    def _scan_one(
        self, Z: np.ndarray, R: np.ndarray, t: float, sid: str, new_ids: list[str]
    ) -> int:
        xp = self.xp
        n_assoc = 0
        unassigned = np.arange(len(Z))
        if self._meta:
            like = self._state["x"]
            dt = as_float(np.array([t - m.time for m in self._meta]), xp, like)
            pred = self.predictor.predict(self._state, dt)
            Rx = as_float(R, xp, like)
            zhat, S = self.updater.predict_measurement(pred, Rx)
            Zx = as_float(Z, xp, like)
            a = self.associator.associate(zhat, S, Zx)
            if len(a.tracks):
                ti = xp.asarray(a.tracks, device=device_of(like))
                mi = xp.asarray(a.measurements, device=device_of(like))
                sub = {k: xp.take(v, ti, axis=0) for k, v in pred.items()}
                post, nis, ll = self.updater.update(sub, xp.take(Zx, mi, axis=0), Rx)
                nis_h, ll_h = to_numpy(nis), to_numpy(ll)
                for k in pred:
                    pred[k] = _scatter(xp, pred[k], ti, post[k])
                for j, i in enumerate(a.tracks):
                    m = self._meta[int(i)]
                    m.hits[-1] = True
                    m.last_updated = t
                    m.nis_avg = 0.7 * m.nis_avg + 0.3 * float(nis_h[j])
                    m.log_likelihood = float(ll_h[j])
                    if sid not in m.sensors:
                        m.sensors.append(sid)
                n_assoc = len(a.tracks)
            self._state = pred
            for m in self._meta:
                m.time = t
            unassigned = a.unassigned_measurements
        if len(unassigned):
            Ru = np.broadcast_to(R, (len(unassigned), 3, 3))
            born = self.initiator.initiate(Z[unassigned], Ru, t, self.predictor.ndim_state)
            if born:
                self._add([b[0] for b in born], [b[1] for b in born], t, sid, new_ids)
        return n_assoc

    def _add(
        self, xs: list[np.ndarray], Ps: list[np.ndarray], t: float, sid: str, new_ids: list[str]
    ) -> None:
        xp = self.xp
        X = self._to_backend(np.stack(xs))
        P = self._to_backend(np.stack(Ps))
        st = self.predictor.initial_state(X, P)
        if self._state:
            self._state = {k: xp.concat([self._state[k], st[k]], axis=0) for k in self._state}
        else:
            self._state = st
        for _ in xs:
            self._counter += 1
            tid = f"{self.id_prefix}{self._counter:06d}"
            # the candidate scan and this scan: two hits
            self._meta.append(Track(tid, TENTATIVE, {}, t, t, t, [True, True], 0, 3.0, 0.0, [sid]))
            new_ids.append(tid)

    def _to_backend(self, a: np.ndarray) -> Any:
        """Host array -> the tracker's backend and device (CUDA for torch/cupy when present)."""
        if "x" in self._state:
            return as_float(a, self.xp, self._state["x"])
        return backend_asarray(a, backend=self.backend, dtype="float64")

    def _remove(self, idx: list[int], gone: list[Track]) -> None:
        if not idx:
            return
        for g in gone:
            g.status = LOST
            self.lost.append(g)
        keep = np.setdiff1d(np.arange(len(self._meta)), np.asarray(idx))
        xp = self.xp
        if len(keep):
            ki = xp.asarray(keep, device=device_of(self._state["x"]))
            self._state = {k: xp.take(v, ki, axis=0) for k, v in self._state.items()}
        else:
            self._state = {}
        self._meta = [self._meta[i] for i in keep]

    # ---- serialisation
    def to_dict(self, compact: bool = False) -> dict[str, Any]:
        """Everything the tracker holds (tracks, candidates, lost history, counters), JSON-ready.

        With ``compact``, the live track states and the candidates are written as packed
        float64 arrays (:func:`pack_array`: base64 of the raw bytes) and the hit histories as
        strings of 0s and 1s: the same content, read back by :meth:`load_dict`, about five
        times faster to write than lists of numbers (a server commits it after every scan).
        """
        out: dict[str, Any] = {
            "time": self.time,
            "counter": self._counter,
            "id_prefix": self.id_prefix,
            "sensors": {k: v.tolist() for k, v in self.sensors.items()},
            "default_R": self.default_R.tolist(),
        }
        if not compact:
            out["tracks"] = [t.to_dict() for t in self._snapshot()]
            out["lost"] = [t.to_dict() for t in self.lost]
            out["candidates"] = self.initiator.to_dict()
            return out
        host = {k: to_numpy(v) for k, v in self._state.items()}
        out["tracks"], out["states"] = _pack_tracks(self._meta, host)
        lost = list(self.lost)
        keys = lost[0].state if lost else {}
        out["lost"], out["lost_states"] = _pack_tracks(
            lost, {k: np.stack([t.state[k] for t in lost]) for k in keys}
        )
        c = self.initiator.candidates
        out["candidates"] = {
            "z": pack_array(np.array([x["z"] for x in c]).reshape(-1, 3)),
            "R": pack_array(np.array([x["R"] for x in c]).reshape(-1, 3, 3)),
            "time": [float(x["time"]) for x in c],
        }
        return out

    def load_dict(self, d: Mapping[str, Any]) -> None:
        """Restore the state saved by :meth:`to_dict` (either form; the parts stay as
        constructed)."""
        try:
            if "states" in d:  # compact
                tracks, states = _unpack_tracks(d["tracks"], d["states"])
                lost, _ = _unpack_tracks(d.get("lost", []), d.get("lost_states", {}), keep=True)
                c = d.get("candidates", {})
                zs, Rs = unpack_array(c["z"]), unpack_array(c["R"])
                candidates = [
                    {"z": z, "R": R, "time": tm} for z, R, tm in zip(zs, Rs, c["time"], strict=True)
                ]
            else:
                tracks = [Track.from_dict(t) for t in d["tracks"]]
                states = (
                    {k: np.stack([t.state[k] for t in tracks]) for k in tracks[0].state}
                    if tracks
                    else {}
                )
                lost = [Track.from_dict(t) for t in d.get("lost", [])]
                candidates = d.get("candidates", [])
            self.time = None if d.get("time") is None else float(d["time"])
            self._counter = int(d.get("counter", 0))
            self.id_prefix = str(d.get("id_prefix", self.id_prefix))
            self.sensors = {}
            for k, v in d.get("sensors", {}).items():
                self.add_sensor(k, v)
            if d.get("default_R") is not None:
                self.default_R = self._check_R(d["default_R"], "default_R")
            self.initiator.load(candidates)
            self.lost.clear()
            self.lost.extend(lost)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput("tracker", f"not a serialised tracker: {exc}") from exc
        self._meta = []
        self._state = {}
        if tracks:
            self._state = {k: self._to_backend(v) for k, v in states.items()}
            for t in tracks:
                t.state = {}
                self._meta.append(t)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], **parts: Any) -> Tracker:
        """A tracker built with ``parts`` (constructor arguments) and the state of ``d``."""
        tr = cls(**parts)
        tr.load_dict(d)
        return tr


def pack_array(a: np.ndarray) -> dict[str, Any]:
    """A float64 array as JSON-ready ``{shape, data}`` (``data``: base64 of its little-endian
    bytes), exact and fast to write; :func:`unpack_array` reads it back."""
    a = np.ascontiguousarray(a, dtype="<f8")
    return {"shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


def unpack_array(d: Mapping[str, Any]) -> np.ndarray:
    """The array :func:`pack_array` wrote."""
    raw = base64.b64decode(d["data"], validate=True)
    return np.frombuffer(raw, dtype="<f8").reshape(d["shape"]).astype(np.float64)


def _pack_tracks(
    tracks: list[Track], states: Mapping[str, np.ndarray]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Compact form of tracks: their metadata (hits as a 0/1 string) and their stacked
    states (``states[k]`` row ``i`` is track ``i``'s) as packed arrays."""
    meta = [
        {
            "track_id": m.track_id,
            "status": m.status,
            "time": float(m.time),
            "last_updated": float(m.last_updated),
            "created": float(m.created),
            "hits": "".join("1" if h else "0" for h in m.hits),
            "consecutive_misses": int(m.consecutive_misses),
            "nis_avg": float(m.nis_avg),
            "log_likelihood": float(m.log_likelihood),
            "sensors": list(m.sensors),
        }
        for m in tracks
    ]
    return meta, {k: pack_array(v) for k, v in states.items()}


def _unpack_tracks(
    meta: list[Mapping[str, Any]], packed: Mapping[str, Any], keep: bool = False
) -> tuple[list[Track], dict[str, np.ndarray]]:
    """Inverse of :func:`_pack_tracks`; with ``keep`` each track also gets its own state rows."""
    states = {k: unpack_array(v) for k, v in packed.items()}
    if any(len(v) != len(meta) for v in states.values()):
        raise ValueError("track states and tracks differ in number")
    tracks = [
        Track.from_dict({**t, "state": {}, "hits": [h == "1" for h in t.get("hits", "")]})
        for t in meta
    ]
    if keep:
        for i, t in enumerate(tracks):
            t.state = {k: v[i].copy() for k, v in states.items()}
    return tracks, states


def _copy_track(m: Track) -> Track:
    """A copy of a track's metadata that shares nothing mutable with it."""
    return Track(
        m.track_id,
        m.status,
        dict(m.state),
        m.time,
        m.last_updated,
        m.created,
        list(m.hits),
        m.consecutive_misses,
        m.nis_avg,
        m.log_likelihood,
        list(m.sensors),
    )


def _scatter(xp: Any, base: Any, idx: Any, values: Any) -> Any:
    """``base`` with rows ``idx`` replaced by ``values`` (functional; works on every backend)."""
    n = base.shape[0]
    mask_np = np.zeros(n, dtype=bool)
    mask_np[to_numpy(idx)] = True
    pos = np.zeros(n, dtype=np.int64)
    pos[to_numpy(idx)] = np.arange(len(to_numpy(idx)))
    dev = device_of(base)
    mask = xp.asarray(mask_np, device=dev)
    gathered = xp.take(values, xp.asarray(pos, device=dev), axis=0)
    shape = (n,) + (1,) * (base.ndim - 1)
    return xp.where(xp.reshape(mask, shape), gathered, base)


# --------------------------------------------------------------------------- building one

#: What :func:`build_tracker` builds when given nothing (the service's tracker).
DEFAULT_TRACKER: dict[str, Any] = {
    "predictor": "cv",
    "q": 400.0,
    "gate_probability": 0.999,
    "confirm_m": 3,
    "confirm_n": 4,
    "max_speed": 8000.0,
    "max_misses": 3,
    "measurement_sigma": 100.0,
    "max_lost_history": 50,
    "late_tolerance": 5.0,
}

PREDICTORS = ("cv", "ballistic", "imm")


def build_tracker(
    predictor: str = "cv",
    q: float = 400.0,
    gate_probability: float = 0.999,
    confirm_m: int = 3,
    confirm_n: int = 4,
    max_speed: float = 8000.0,
    max_misses: int = 3,
    measurement_sigma: float = 100.0,
    max_lost_history: int = 50,
    late_tolerance: float = 5.0,
    backend: str | None = None,
) -> Tracker:
    """A :class:`Tracker` from named parts.

    Parameters
    ----------
    predictor : {"cv", "ballistic", "imm"}
        Constant velocity, constant velocity plus gravity, or the CV/CA/ballistic IMM.
    q : float
        Process-noise intensity (m^2/s^3) of the CV / ballistic model.
    gate_probability : float
        Chi-square gate of the GNN association.
    confirm_m, confirm_n : int
        M-of-N confirmation.
    max_speed : float
        Largest speed (m/s) for pairing two measurements into a new track.
    max_misses : int
        Consecutive missed scans before a confirmed track is lost.
    measurement_sigma : float
        Position noise (m, per axis) of measurements that carry no covariance.
    max_lost_history : int
        Lost tracks kept for lookup.
    late_tolerance : float
        How late (s) a scan may arrive behind the newest one (see :class:`Tracker`).
    backend : str, optional
        Array backend of the track states.
    """
    name = str(predictor).lower()
    if name == "cv":
        pred: Any = KalmanPredictor(ConstantVelocity(q))
    elif name == "ballistic":
        pred = KalmanPredictor(Ballistic(q))
    elif name == "imm":
        pred = IMMPredictor(IMM.cv_ca_ballistic(10.0, 10.0, 1.0))
    else:
        raise InvalidInput("predictor", f"expected one of {', '.join(PREDICTORS)}")
    if not (math.isfinite(measurement_sigma) and measurement_sigma > 0):
        raise InvalidInput("measurement_sigma", "must be a positive number of metres")
    return Tracker(
        pred,
        associator=GNNAssociator(gate_probability),
        initiator=MofNInitiator(m=confirm_m, n=confirm_n, max_speed=max_speed),
        deleter=MissCovarianceDeleter(max_misses=max_misses),
        default_R=np.eye(3) * float(measurement_sigma) ** 2,
        backend=backend,
        max_lost_history=max_lost_history,
        late_tolerance=late_tolerance,
    )
