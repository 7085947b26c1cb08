"""Robotics planning and collision checking: ours against OMPL's RRT-Connect, one process.

(b) planning: a seeded set of problems (100; ``--quick``: 20) for the mobile sphere robot
    (radius 0.25 m) in a cluttered 3-D scene (60 boxes and 15 spheres in [-10, 10]^3 m), and
    for the Franka Panda in front of a table with a two-board shelf, a post and a side box.
    Starts and goals are seeded random collision-free configurations whose straight path is
    blocked (trivial problems are left out: both planners would return at once). Ours:
    :func:`prism_kernels.robotics.planners.plan` (``rrt_connect``, seed = problem index,
    batched checks, shortcutting included in the time). OMPL 2.0.1:
    ``ompl.geometric.RRTConnect`` in a ``SimpleSetup`` whose state validity checker is a
    per-state NumPy check written here (the same geometry: the sphere robot or the Panda's
    link spheres against the boxes and spheres, plus self-collision), motion checks every
    0.05 m (mobile) or 0.03 rad (Panda; ours: exact capsules for the mobile robot, swept link
    spheres at 0.03 rad per joint for the Panda); its time is ``solve`` plus
    ``simplifySolution`` (the comparable shortcutting step). Same time limit per problem for
    both. Reported: success rate, median and 95th-percentile time (over all problems, a
    failure counting as the limit), median path length (configuration space: metres or
    radians) over the problems both solved; OMPL's paths are re-checked with our exact checks
    (``ompl_paths_colliding``).
(c) collision checks per second for edge batches: 10,000 mobile edges (exact capsules) and
    1,000 Panda edges (about 0.3 rad, swept at 0.03 rad) in one call, on NumPy, on PyTorch CPU
    and on a CUDA device when one answers; the peer is OMPL's ``checkMotion`` called per edge
    with the per-state checker (timed on a sample of edges, scaled).

Timings from a shared machine are noisy; the note of each row says what ran.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks.harness import Case, timeit
from prism_kernels import backend
from prism_kernels.robotics.collision import (
    Scene,
    configs_collide,
    edges_collide,
    segments_collide,
    self_collision_pairs,
)
from prism_kernels.robotics.kinematics import link_spheres
from prism_kernels.robotics.models import MOBILE, PANDA, RobotModel
from prism_kernels.robotics.planners import plan

TIME_LIMIT_S = float(os.environ.get("PRISM_BENCH_PLAN_LIMIT_S", "3.0"))
ARM_RES = 0.03
MOBILE_STEP = 0.05


def mobile_scene(seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    return Scene(
        rng.uniform(-8.5, 8.5, (60, 3)),
        rng.uniform(0.5, 3.0, (60, 3)),
        rng.uniform(-8.5, 8.5, (15, 3)),
        rng.uniform(0.3, 1.2, 15),
    )


def panda_scene() -> Scene:
    """Table top at z = 0 in front of the arm, a shelf on it (two boards, two side panels,
    a back panel), a post on the right and a box on the left (metres)."""
    boxes = [
        ((0.6, 0.0, -0.02), (0.6, 1.4, 0.04)),  # table top
        ((0.7, 0.0, 0.25), (0.3, 0.6, 0.02)),  # shelf board 1
        ((0.7, 0.0, 0.5), (0.3, 0.6, 0.02)),  # shelf board 2
        ((0.7, 0.3, 0.25), (0.3, 0.02, 0.5)),  # side panels
        ((0.7, -0.3, 0.25), (0.3, 0.02, 0.5)),
        ((0.86, 0.0, 0.25), (0.02, 0.6, 0.5)),  # back panel
        ((0.1, -0.55, 0.35), (0.06, 0.06, 0.7)),  # post
        ((-0.1, 0.55, 0.2), (0.3, 0.2, 0.4)),  # side box
    ]
    c, s = zip(*boxes, strict=True)
    return Scene(np.array(c), np.array(s))


def problems(model: RobotModel, scene: Scene, n: int, seed: int) -> list[tuple]:
    """``n`` seeded (start, goal) pairs: free configurations whose straight path collides."""
    rng = np.random.default_rng(seed)
    lo, hi = model.joint_limits.T
    out = []
    while len(out) < n:
        q = lo + rng.random((256, model.dof)) * (hi - lo)
        q = q[~configs_collide(model, scene, q)]
        if q.shape[0] < 2:
            continue
        a, b = q[0::2][: q.shape[0] // 2], q[1::2][: q.shape[0] // 2]
        far = np.linalg.norm(b - a, axis=1) > (10.0 if model.kind == "mobile" else 1.5)
        blocked = edges_collide(model, scene, a, b, 0.0, ARM_RES)
        for i in np.flatnonzero(far & blocked):
            out.append((a[i], b[i]))
    return out[:n]


def state_checker(model: RobotModel, scene: Scene, margin: float = 0.0):
    """A per-state validity function (NumPy, one configuration): the same geometry as ours."""
    c, h = scene.box_centres, scene.box_sizes / 2
    sc, sr = scene.sphere_centres, scene.sphere_radii
    if model.kind == "mobile":
        r = model.radius + margin

        def valid(q: np.ndarray) -> bool:
            e = np.maximum(np.abs(q - c) - h, 0.0)
            if np.any(np.einsum("ij,ij->i", e, e) <= r * r):
                return False
            d = q - sc
            return not np.any(np.einsum("ij,ij->i", d, d) <= (sr + r) ** 2)

        return valid
    pi, pj = self_collision_pairs(model)

    def valid_arm(q: np.ndarray) -> bool:
        cen, rad = link_spheres(model, q)
        e = np.maximum(np.abs(cen[:, None, :] - c) - h, 0.0)
        if np.any(np.sum(e * e, axis=-1) <= ((rad + margin) ** 2)[:, None]):
            return False
        d = cen[pi] - cen[pj]
        return not np.any(np.einsum("ij,ij->i", d, d) < (rad[pi] + rad[pj]) ** 2)

    return valid_arm


def _ompl_setup(model: RobotModel, scene: Scene, step: float):
    from ompl import base as ob
    from ompl import geometric as og

    space = ob.RealVectorStateSpace(model.dof)
    b = ob.RealVectorBounds(model.dof)
    for j, (lo, hi) in enumerate(model.joint_limits):
        b.setLow(j, float(lo))
        b.setHigh(j, float(hi))
    space.setBounds(b)
    ss = og.SimpleSetup(space)
    check = state_checker(model, scene)
    dof = model.dof
    buf = np.empty(dof)

    def valid(s) -> bool:
        for j in range(dof):
            buf[j] = s[j]
        return bool(check(buf))

    ss.setStateValidityChecker(valid)
    si = ss.getSpaceInformation()
    si.setStateValidityCheckingResolution(step / space.getMaximumExtent())
    ss.setPlanner(og.RRTConnect(si))
    return ss, space


def _ompl_solve(model, scene, s, g, step, limit):
    ss, space = _ompl_setup(model, scene, step)
    st, gl = space.allocState(), space.allocState()
    for j in range(model.dof):
        st[j] = float(s[j])
        gl[j] = float(g[j])
    ss.setStartAndGoalStates(st, gl)
    ss.setup()
    t0 = time.perf_counter()
    res = ss.solve(limit)
    t_solve = time.perf_counter() - t0
    exact = bool(res) and "Exact" in str(res)
    if not exact:
        return False, t_solve, t_solve, None
    ss.simplifySolution()
    t_all = time.perf_counter() - t0
    p = ss.getSolutionPath()
    path = np.array(
        [[p.getState(i)[j] for j in range(model.dof)] for i in range(p.getStateCount())]
    )
    return True, t_solve, t_all, path


def _planning(name: str, model: RobotModel, scene: Scene, n: int, limit: float) -> list[Case]:
    from ompl import util as ou

    ou.setLogLevel(ou.LogLevel.LOG_ERROR) if hasattr(ou, "LogLevel") else None
    probs = problems(model, scene, n, seed=1)
    step = MOBILE_STEP if model.kind == "mobile" else ARM_RES
    ours_t, ours_ok, ours_len, ours_search_t = [], [], [], []
    om_t, om_solve_t, om_ok, om_len, om_bad = [], [], [], [], 0
    for i, (s, g) in enumerate(probs):
        t0 = time.perf_counter()
        r = plan(model, scene, s, g, "rrt_connect", seed=i, time_budget_s=limit, resolution=ARM_RES)
        dt = time.perf_counter() - t0
        ours_ok.append(r.success)
        search = r.stats.get("search_ms", r.stats["time_ms"]) / 1000.0
        ours_search_t.append(search if r.success else max(dt, limit))
        ours_t.append(dt if r.success else max(dt, limit))
        ours_len.append(r.stats["path_length"] if r.success else np.nan)
        ok, ts, ta, path = _ompl_solve(model, scene, s, g, step, limit)
        om_ok.append(ok)
        om_t.append(ta if ok else max(ta, limit))
        om_solve_t.append(ts if ok else max(ts, limit))
        if ok:
            om_len.append(float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum()))
            if edges_collide(model, scene, path[:-1], path[1:], 0.0, ARM_RES / 4).any():
                om_bad += 1
        else:
            om_len.append(np.nan)
    ours_t, om_t = np.array(ours_t), np.array(om_t)
    both = np.array(ours_ok) & np.array(om_ok)
    extra = {
        "problems": len(probs),
        "ours_success": float(np.mean(ours_ok)),
        "ompl_success": float(np.mean(om_ok)),
        "ours_p95_s": float(np.percentile(ours_t, 95)),
        "ompl_p95_s": float(np.percentile(om_t, 95)),
        "ours_median_search_only_s": float(np.median(ours_search_t)),
        "ompl_median_solve_only_s": float(np.median(om_solve_t)),
        "ours_median_length": float(np.nanmedian(np.array(ours_len)[both])) if both.any() else None,
        "ompl_median_length": float(np.nanmedian(np.array(om_len)[both])) if both.any() else None,
        "ompl_paths_colliding": om_bad,
        "time_limit_s": limit,
    }
    note = (
        f"{len(probs)} seeded problems, straight path blocked; ours rrt_connect (batched "
        f"checks + shortcutting) vs OMPL RRTConnect + simplifySolution with a per-state NumPy "
        f"checker; median time over all problems (failure = limit)"
    )
    return [
        Case(
            "robotics",
            f"plan {name}",
            float(np.median(ours_t)),
            "ompl RRTConnect",
            float(np.median(om_t)),
            note=note,
            extra=extra,
        )
    ]


def _device_xp():
    for name in ("cupy", "torch"):
        try:
            if name == "cupy" and backend._cupy_available():
                return backend.namespace("cupy")
            if name == "torch" and backend._torch_cuda_available():
                return backend.namespace("torch")
        except Exception:  # noqa: BLE001 - no device: the CPU rows only
            pass
    return None


def _ompl_motion_rate(model, scene, qa, qb, step, n_sample=200) -> float:
    """Seconds per edge of OMPL's ``checkMotion`` (per-state checker), on ``n_sample`` edges."""
    ss, space = _ompl_setup(model, scene, step)
    ss.setup()
    si = ss.getSpaceInformation()
    sa, sb = space.allocState(), space.allocState()
    m = min(n_sample, qa.shape[0])
    t0 = time.perf_counter()
    for i in range(m):
        for j in range(model.dof):
            sa[j] = float(qa[i, j])
            sb[j] = float(qb[i, j])
        si.checkMotion(sa, sb)
    return (time.perf_counter() - t0) / m


def _edge_rates(quick: bool) -> list[Case]:
    rng = np.random.default_rng(5)
    cases = []
    sc = mobile_scene()
    E = 2000 if quick else 10_000
    a = rng.uniform(-9.5, 9.5, (E, 3))
    b = np.clip(a + rng.normal(0, 1.0, (E, 3)), -10, 10)
    per = _ompl_motion_rate(MOBILE, sc, a, b, MOBILE_STEP)
    t_np = timeit(lambda: segments_collide(sc, a, b, 0.0, MOBILE.radius), repeat=3)
    hits = segments_collide(sc, a, b, 0.0, MOBILE.radius)
    rows = [("numpy", t_np)]
    tx = backend.namespace("torch")
    at, bt = tx.asarray(a), tx.asarray(b)
    rows.append(("torch cpu", timeit(lambda: segments_collide(sc, at, bt, 0.0, 0.25), repeat=3)))
    dev = _device_xp()
    if dev is not None:
        ad, bd = backend.asarray(a, backend=backend.backend_name(dev.zeros(1))), None
        bd = backend.asarray(b, backend=backend.backend_name(dev.zeros(1)))
        sync = lambda: backend.synchronize(ad)  # noqa: E731
        rows.append(
            ("device", timeit(lambda: segments_collide(sc, ad, bd, 0.0, 0.25), repeat=3, sync=sync))
        )
    for label, t in rows:
        cases.append(
            Case(
                "robotics",
                f"mobile edge checks, {E} edges x 75 obstacles ({label})",
                t,
                "ompl checkMotion loop",
                per * E,
                note=f"exact capsules, one call; OMPL samples every {MOBILE_STEP} m, timed on "
                f"200 edges and scaled",
                extra={"edges_per_s": E / t, "colliding": int(np.sum(backend.to_numpy(hits)))},
            )
        )
    ps = panda_scene()
    E2 = 200 if quick else 1000
    lo, hi = PANDA.joint_limits.T
    qa = rng.uniform(lo, hi, (E2, 7))
    qb = np.clip(qa + rng.uniform(-0.3, 0.3, qa.shape), lo, hi)
    per2 = _ompl_motion_rate(PANDA, ps, qa, qb, ARM_RES, n_sample=100)
    t2 = timeit(lambda: edges_collide(PANDA, ps, qa, qb, 0.0, ARM_RES), repeat=3)
    rows2 = [("numpy", t2)]
    qat, qbt = tx.asarray(qa), tx.asarray(qb)
    rows2.append(
        ("torch cpu", timeit(lambda: edges_collide(PANDA, ps, qat, qbt, 0.0, ARM_RES), repeat=3))
    )
    if dev is not None:
        nm = backend.backend_name(dev.zeros(1))
        qad, qbd = backend.asarray(qa, backend=nm), backend.asarray(qb, backend=nm)
        sync = lambda: backend.synchronize(qad)  # noqa: E731
        rows2.append(
            (
                "device",
                timeit(
                    lambda: edges_collide(PANDA, ps, qad, qbd, 0.0, ARM_RES), repeat=3, sync=sync
                ),
            )
        )
    samples = int((np.ceil(np.abs(qb - qa).max(1) / ARM_RES) + 1).sum())
    for label, t in rows2:
        cases.append(
            Case(
                "robotics",
                f"Panda edge checks, {E2} edges of <= 0.3 rad ({label})",
                t,
                "ompl checkMotion loop",
                per2 * E2,
                note=f"{samples} samples x 29 swept link spheres x 8 boxes + self-collision in one "
                f"call; OMPL every {ARM_RES} rad, timed on 100 edges and scaled",
                extra={"edges_per_s": E2 / t, "samples_per_s": samples / t},
            )
        )
    return cases


def run(quick: bool = False) -> list[Case]:
    import threadpoolctl

    threads = int(os.environ.get("PRISM_BENCH_BLAS_THREADS", "1"))
    n = int(os.environ.get("PRISM_BENCH_PLAN_PROBLEMS", "20" if quick else "100"))
    with threadpoolctl.threadpool_limits(threads):
        cases: list[Case] = []
        cases += _planning(
            "mobile robot, cluttered 3-D scene", MOBILE, mobile_scene(), n, TIME_LIMIT_S
        )
        cases += _planning("Panda, table + shelf + post", PANDA, panda_scene(), n, TIME_LIMIT_S)
        cases += _edge_rates(quick)
        return cases
