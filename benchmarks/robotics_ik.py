"""Robotics IK: ours (batched) against the Robotics Toolbox's C++ ``ik_LM`` looped, same poses.

Targets: the Franka Panda's hand-TCP poses of 10,000 configurations drawn uniformly in the
joint limits (seed 2026), so every target has a solution (``--quick``: 500).

- ours: :func:`prism_kernels.robotics.ik.solve_ik` on all targets in one call, one solution per
  target (``all_solutions=False``: the seeds of the model's seed table nearest the target, then
  random restarts, at most 100 seeds per target, at most 50 steps per seed, stopping below
  7e-5 m and 7e-5 rad so that the combined error is as small as the toolbox's), NumPy in,
  ``engine="numba"`` (the compiled one-thread path that ``"auto"`` picks for batches of 2,048
  problems or more); timed after a warm-up call on other targets
  (compilation and the seed table excluded), median of 3 runs; CPU time (``process_time``) of
  one run in the note, since wall time on a shared machine moves with the load. The
  array-API path on NumPy (``engine="array"``) is timed too (one run).
- peer: ``roboticstoolbox`` 1.5 ``ETS.ik_LM`` (C++) of ``rtb.models.Panda()`` to its flange
  ``panda_link8``, one call per target in a Python loop, on the flange pose ``T_tcp tool^-1``
  (the same problem: our tool transform is the Franka Hand's TCP; the flange frames of the
  two models agree within 1e-9, tests/robotics/test_kinematics.py, 3e-16 measured), with its
  defaults (Chan's damping ``k = 1``, 30 iterations per search, 100 searches, joint limits
  on) and ``tol = 5e-9`` on its error ``E = e.e / 2`` (so a converged pose is within 1e-4 of
  the target in position and orientation; the default 1e-6 would accept 1.4 mm); one run,
  random restarts from ``np.random.seed(0)``.

Both are scored the same way by :func:`prism_kernels.robotics.kinematics.pose_error` on the
TCP: success = position error < 0.1 mm, orientation error < 1e-3 rad and every joint within the
limits. ``extra`` holds each side's success rate and its median and largest position and
orientation errors over the successes.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.harness import Case, timeit
from prism_kernels.robotics import ik
from prism_kernels.robotics.kinematics import fk, pose_error
from prism_kernels.robotics.models import PANDA

TOL_P = 1e-4
TOL_O = 1e-3
#: Ours stops at |position error| and |orientation error| below 7e-5 each, so that the
#: combined error is below 1e-4 like the toolbox's (E = e.e / 2 < 5e-9).
OURS_TOL = 7e-5


def _targets(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lim = PANDA.joint_limits
    return np.asarray(fk(PANDA, rng.uniform(lim[:, 0], lim[:, 1], (n, PANDA.dof))))


def _score(q: np.ndarray, targets: np.ndarray, prefix: str) -> dict:
    pe, oe = pose_error(np.asarray(fk(PANDA, q)), targets)
    lim = PANDA.joint_limits
    inl = np.all((q >= lim[:, 0] - 1e-12) & (q <= lim[:, 1] + 1e-12), axis=1)
    ok = (pe < TOL_P) & (oe < TOL_O) & inl
    return {
        f"{prefix}success": float(ok.mean()),
        f"{prefix}pos_err_median_m": float(np.median(pe[ok])) if ok.any() else None,
        f"{prefix}pos_err_max_m": float(pe[ok].max()) if ok.any() else None,
        f"{prefix}ori_err_median_rad": float(np.median(oe[ok])) if ok.any() else None,
        f"{prefix}ori_err_max_rad": float(oe[ok].max()) if ok.any() else None,
    }


def _ours(targets: np.ndarray, engine: str = "numba") -> ik.IKResult:
    return ik.solve_ik(
        PANDA,
        targets,
        n_seeds=100,
        seed=0,
        all_solutions=False,
        max_iters=50,
        tol_position=OURS_TOL,
        tol_orientation=OURS_TOL,
        engine=engine,
    )


def _rtb(targets: np.ndarray) -> tuple[np.ndarray, float, float]:
    import roboticstoolbox as rtb

    ets = rtb.models.Panda().ets(end="panda_link8")
    flange = targets @ np.linalg.inv(PANDA.tool)
    np.random.seed(0)
    out = np.empty((targets.shape[0], PANDA.dof))
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(targets.shape[0]):
        sol = ets.ik_LM(flange[i], ilimit=30, slimit=100, tol=5e-9, joint_limits=True)
        out[i] = sol.q
    return out, time.perf_counter() - t0, time.process_time() - c0


def run(quick: bool = False) -> list[Case]:
    n = 500 if quick else 10_000
    targets = _targets(n, 2026)
    _ours(_targets(64, 7))  # compile (or load from numba's cache) and build the seed table
    _ours(_targets(64, 8), engine="array")
    q_rtb, rtb_s, rtb_cpu = _rtb(targets)
    peer = _score(q_rtb, targets, "peer_")
    c0 = time.process_time()
    res = _ours(targets)
    ours_cpu = time.process_time() - c0
    ours_s = timeit(lambda: _ours(targets), repeat=3, warmup=0)
    cases = [
        Case(
            "robotics_ik",
            f"panda {n} poses, one solution each (compiled path)",
            ours_s,
            "rtb ik_LM (C++) looped",
            rtb_s,
            note=f"ours {n / ours_s:,.0f} poses/s, rtb {n / rtb_s:,.0f} poses/s (wall); CPU "
            f"time ours {ours_cpu:.2f} s, rtb {rtb_cpu:.2f} s ({rtb_cpu / ours_cpu:.1f}x); "
            f"ours {res.problems / n:.2f} seeds/pose",
            extra={**_score(np.asarray(res.q), targets, "ours_"), **peer},
        )
    ]
    t0 = time.perf_counter()
    res = _ours(targets, engine="array")
    arr_s = time.perf_counter() - t0
    cases.append(
        Case(
            "robotics_ik",
            f"panda {n} poses, one solution each (array-API path on NumPy)",
            arr_s,
            "rtb ik_LM (C++) looped",
            rtb_s,
            note="one run",
            extra={**_score(np.asarray(res.q), targets, "ours_"), **peer},
        )
    )
    return cases
