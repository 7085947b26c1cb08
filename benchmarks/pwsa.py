"""PWSA tracking benchmarks: ours against FilterPy and Stone Soup, same data, one process.

(a) Kalman predict + update of many 6-state constant-velocity tracks with 3-D position
    measurements: our batched kernel (one call) against FilterPy's ``KalmanFilter`` looped
    per track. ``extra`` holds the largest state/covariance difference.
(b) One full tracker scan (3 sensors, GNN, M-of-N initiation, deletion) on a seeded
    ballistic scenario: our :class:`~prism_kernels.pwsa.tracker.Tracker` against Stone
    Soup's ``MultiTargetTracker`` with the same constant-velocity model, Kalman predictor /
    updater, Mahalanobis ``DistanceHypothesiser`` and ``GNNWith2DAssignment`` (the kd-tree
    gated variant ``DetectionKDTreeGNN2D`` for large scenes), a ``MultiMeasurementInitiator``
    and an ``UpdateTimeStepsDeleter``. Time per scan and mean GOSPA (c = 2 km, p = 2,
    alpha = 2) over the scans after a warm-up of 4 scans.

The scenario generator :func:`make_scenario` (seeded truth + measurements) is also used by
``tests/pwsa/test_tracker.py``.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass

import numpy as np

from benchmarks.harness import Case, timeit
from prism_kernels.pwsa.kalman import kf_predict, kf_update
from prism_kernels.pwsa.metrics import gospa
from prism_kernels.pwsa.models import GRAVITY, ConstantVelocity
from prism_kernels.pwsa.tracker import (
    GNNAssociator,
    KalmanPredictor,
    MissCovarianceDeleter,
    MofNInitiator,
    Tracker,
)

GOSPA_C = 2000.0
WARMUP_SCANS = 4

# ----------------------------------------------------------------------------- scenario


@dataclass
class Scenario:
    """Seeded multi-sensor scenario.

    Attributes
    ----------
    times : (T,) scan times (s)
    truth : (T, n_targets, 6) true ``[x, y, z, vx, vy, vz]`` (m, m/s)
    scans : list of T dicts ``{sensor_id: (K, 3) measured positions}``
    sensors : dict sensor_id -> (3, 3) noise covariance (m^2)
    """

    times: np.ndarray
    truth: np.ndarray
    scans: list[dict[str, np.ndarray]]
    sensors: dict[str, np.ndarray]


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def make_scenario(
    n_targets: int = 20,
    n_sensors: int = 3,
    n_scans: int = 30,
    dt: float = 2.0,
    p_detect: float = 0.9,
    clutter_per_scan: float = 5.0,
    seed: int = 0,
) -> Scenario:
    """Ballistic (gravity) targets over a 2000 km x 2000 km area seen by ``n_sensors``
    position sensors with anisotropic noise (std 600 m along a line of sight, 60 m across),
    detection probability ``p_detect`` and uniform Poisson clutter."""
    rng = np.random.default_rng(seed)
    side = 2.0e6
    pos = np.column_stack(
        [
            rng.uniform(0, side, n_targets),
            rng.uniform(0, side, n_targets),
            rng.uniform(8e4, 2e5, n_targets),
        ]
    )
    speed = rng.uniform(2000.0, 5000.0, n_targets)
    head = rng.uniform(0, 2 * np.pi, n_targets)
    vel = np.column_stack(
        [speed * np.cos(head), speed * np.sin(head), rng.uniform(500.0, 2000.0, n_targets)]
    )
    times = np.arange(n_scans) * dt
    g = np.array([0.0, 0.0, -GRAVITY])
    truth = np.empty((n_scans, n_targets, 6))
    for k, t in enumerate(times):
        truth[k, :, :3] = pos + vel * t + 0.5 * g * t**2
        truth[k, :, 3:] = vel + g * t
    sensors = {}
    for s in range(n_sensors):
        Q = _rotation(rng)
        sensors[f"sat-{s + 1}"] = Q @ np.diag([600.0**2, 60.0**2, 60.0**2]) @ Q.T
    lo = np.array([-2e5, -2e5, 0.0])
    hi = np.array([side + 2e5, side + 2e5, 4e5])
    scans = []
    for k in range(n_scans):
        scan = {}
        for sid, R in sensors.items():
            L = np.linalg.cholesky(R)
            det = rng.random(n_targets) < p_detect
            z = truth[k, det, :3] + rng.normal(size=(int(det.sum()), 3)) @ L.T
            nc = rng.poisson(clutter_per_scan)
            clutter = lo + rng.random((nc, 3)) * (hi - lo)
            meas = np.concatenate([z, clutter])
            scan[sid] = meas[rng.permutation(len(meas))]
        scans.append(scan)
    return Scenario(times, truth, scans, sensors)


def make_tracker(sc: Scenario, q: float = 400.0, **kw) -> Tracker:
    """Our tracker with the benchmark's settings (CV, q m^2/s^3, 3-of-4, 3 misses)."""
    return Tracker(
        KalmanPredictor(ConstantVelocity(q)),
        associator=GNNAssociator(0.999),
        initiator=MofNInitiator(m=3, n=4, max_speed=8000.0),
        deleter=MissCovarianceDeleter(max_misses=3),
        sensors=sc.sensors,
        **kw,
    )


def run_ours(sc: Scenario, tracker: Tracker | None = None) -> tuple[list[float], list[float]]:
    """Run our tracker over the scenario: (seconds per scan, GOSPA per scan)."""
    tr = tracker or make_tracker(sc)
    secs, scores = [], []
    for k, t in enumerate(sc.times):
        t0 = time.perf_counter()
        res = tr.step(sc.scans[k], float(t))
        secs.append(time.perf_counter() - t0)
        est = np.array([trk.position for trk in res.tracks]).reshape(-1, 3)
        scores.append(gospa(est, sc.truth[k, :, :3], GOSPA_C, 2.0).gospa)
    return secs, scores


def run_stonesoup(
    sc: Scenario, q: float = 400.0, kd_tree: bool | None = None
) -> tuple[list[float], list[float]]:
    """Stone Soup's GNN MultiTargetTracker on the same scenario and models."""
    from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
    from stonesoup.dataassociator.tree import DetectionKDTreeGNN2D
    from stonesoup.deleter.time import UpdateTimeStepsDeleter
    from stonesoup.hypothesiser.distance import DistanceHypothesiser
    from stonesoup.initiator.simple import MultiMeasurementInitiator
    from stonesoup.measures import Mahalanobis
    from stonesoup.models.measurement.linear import LinearGaussian
    from stonesoup.models.transition.linear import CombinedLinearGaussianTransitionModel
    from stonesoup.models.transition.linear import ConstantVelocity as SSConstantVelocity
    from stonesoup.predictor.kalman import KalmanPredictor as SSKalmanPredictor
    from stonesoup.tracker.simple import MultiTargetTracker
    from stonesoup.types.detection import Detection
    from stonesoup.types.state import GaussianState
    from stonesoup.updater.kalman import KalmanUpdater as SSKalmanUpdater

    if kd_tree is None:
        kd_tree = sc.truth.shape[1] > 100
    transition = CombinedLinearGaussianTransitionModel([SSConstantVelocity(q)] * 3)
    models = {
        sid: LinearGaussian(ndim_state=6, mapping=(0, 2, 4), noise_covar=R)
        for sid, R in sc.sensors.items()
    }
    predictor = SSKalmanPredictor(transition)
    updater = SSKalmanUpdater(measurement_model=None)
    gate = 16.27  # chi-square 0.999, 3 dof, on the squared distance -> Mahalanobis sqrt
    hyp = DistanceHypothesiser(
        predictor, updater, measure=Mahalanobis(), missed_distance=float(np.sqrt(gate))
    )
    if kd_tree:
        assoc = DetectionKDTreeGNN2D(hyp, predictor, updater, max_distance=30_000.0)
        init_assoc = DetectionKDTreeGNN2D(hyp, predictor, updater, max_distance=30_000.0)
    else:
        assoc = GNNWith2DAssignment(hyp)
        init_assoc = GNNWith2DAssignment(hyp)
    prior = GaussianState(
        np.zeros((6, 1)), np.diag([0.0, 5000.0**2, 0.0, 5000.0**2, 0.0, 5000.0**2])
    )
    n_sens = len(sc.sensors)
    initiator = MultiMeasurementInitiator(
        prior_state=prior,
        deleter=UpdateTimeStepsDeleter(2 * n_sens),
        data_associator=init_assoc,
        updater=updater,
        min_points=3,
    )
    deleter = UpdateTimeStepsDeleter(3 * n_sens)
    t0 = datetime.datetime(2026, 1, 1)
    feed = []
    for k, t in enumerate(sc.times):
        ts = t0 + datetime.timedelta(seconds=float(t))
        for sid, Z in sc.scans[k].items():
            feed.append(
                (
                    ts,
                    {
                        Detection(z.reshape(3, 1), timestamp=ts, measurement_model=models[sid])
                        for z in Z
                    },
                )
            )

    class _Feed:
        def __iter__(self):
            return iter(feed)

    tracker = MultiTargetTracker(
        initiator=initiator,
        deleter=deleter,
        detector=_Feed(),
        data_associator=assoc,
        updater=updater,
    )
    secs, scores = [], []
    it = iter(tracker)
    for k in range(len(sc.times)):
        tic = time.perf_counter()
        for _ in range(n_sens):
            _, tracks = next(it)
        secs.append(time.perf_counter() - tic)
        est = np.array(
            [np.asarray(tr.state_vector, float).ravel()[[0, 2, 4]] for tr in tracks]
        ).reshape(-1, 3)
        scores.append(gospa(est, sc.truth[k, :, :3], GOSPA_C, 2.0).gospa)
    return secs, scores


# ----------------------------------------------------------------------------- cases


def _kalman_case(n_tracks: int, seed: int = 0, joseph: bool = False, dims: int = 3) -> Case:
    """CV filters in ``dims`` dimensions (state 2*dims, position measurement of size dims).

    ``dims=2`` is the configuration measured in domain-anchors.md (4-state CV, 2-D position).
    """
    from filterpy.kalman import KalmanFilter

    rng = np.random.default_rng(seed)
    n = 2 * dims
    dt, q = 1.0, 10.0
    F = np.kron(np.array([[1.0, dt], [0.0, 1.0]]), np.eye(dims))
    Q = np.kron(q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]), np.eye(dims))
    H = np.eye(dims, n)
    A = rng.normal(size=(n_tracks, dims, dims))
    R = A @ A.transpose(0, 2, 1) + 25.0 * np.eye(dims)
    x0 = rng.normal(size=(n_tracks, n)) * 100.0
    P0 = np.broadcast_to(np.diag([100.0] * dims + [25.0] * dims), (n_tracks, n, n)).copy()
    z = x0[:, :dims] + rng.normal(size=(n_tracks, dims)) * 5.0

    def ours():
        xp_, Pp = kf_predict(x0, P0, F, Q)
        return kf_update(xp_, Pp, z, H, R, joseph=joseph)

    filters = []
    for i in range(n_tracks):
        kf = KalmanFilter(dim_x=n, dim_z=dims)
        kf.F, kf.Q, kf.H, kf.R = F, Q, H, R[i]
        filters.append(kf)

    def peer():
        out_x = np.empty((n_tracks, n))
        out_P = np.empty((n_tracks, n, n))
        for i, kf in enumerate(filters):
            kf.x = x0[i].copy()
            kf.P = P0[i].copy()
            kf.predict()
            kf.update(z[i])
            out_x[i], out_P[i] = kf.x, kf.P
        return out_x, out_P

    t_ours = timeit(ours, repeat=7)
    t_peer = timeit(peer, repeat=3)
    up = ours()
    px, pP = peer()
    return Case(
        "pwsa",
        f"kalman predict+update, {n_tracks} tracks, {n}-state CV, {dims}-D position"
        f" ({'Joseph' if joseph else 'symmetric, default'} form)",
        t_ours,
        "filterpy KalmanFilter (loop)",
        t_peer,
        extra={
            "max_abs_diff_x": float(np.abs(up.x - px).max()),
            "max_abs_diff_P": float(np.abs(up.P - pP).max()),
        },
    )


def _tracker_case(n_targets: int, n_scans: int, seed: int = 1) -> Case:
    sc = make_scenario(n_targets=n_targets, n_sensors=3, n_scans=n_scans, seed=seed)
    ours_s, ours_g = run_ours(sc)
    note = ""
    try:
        ss_s, ss_g = run_stonesoup(sc)
        peer_s = float(np.median(ss_s[WARMUP_SCANS:]))
        ss_gospa = float(np.mean(ss_g[WARMUP_SCANS:]))
        peer = "stonesoup MultiTargetTracker GNN" + (" (kd-tree)" if n_targets > 100 else "")
    except Exception as exc:  # a failing peer is reported, not hidden
        peer_s, ss_gospa, peer, note = (
            None,
            float("nan"),
            "stonesoup",
            f"peer failed: {exc!r}"[:200],
        )
    return Case(
        "pwsa",
        f"tracker scan, {n_targets} targets x 3 sensors ({n_scans} scans)",
        float(np.median(ours_s[WARMUP_SCANS:])),
        peer,
        peer_s,
        note=note,
        extra={"gospa_ours": float(np.mean(ours_g[WARMUP_SCANS:])), "gospa_peer": ss_gospa},
    )


def run(quick: bool = False) -> list[Case]:
    """Benchmark rows (``quick``: small sizes, well under 20 s)."""
    if quick:
        return [_kalman_case(1000), _tracker_case(20, 6)]
    return [
        _kalman_case(10_000),
        _kalman_case(10_000, joseph=True),
        _kalman_case(10_000, dims=2),
        _tracker_case(20, 30),
        _tracker_case(1000, 8),
    ]
