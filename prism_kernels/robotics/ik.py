"""Batched inverse kinematics: projected Levenberg-Marquardt from many seeds per target at once.

Every (target, seed) pair is one problem; all problems of a round advance together, one array
call per step (forward kinematics, geometric Jacobian, a small linear solve), on the namespace
of the targets (NumPy, PyTorch, CuPy). Problems that have converged or stalled leave the batch
(the active set is compacted every iteration), so the cost follows the problems still running.

The step (Chan's damping, the default of the Robotics Toolbox's ``ik_LM``)::

    e   = [p_target - p, rotvec(R_target R^T)]            (6,)  metres and radians, world frame
    E   = e . e / 2
    dq  = (J^T J + (lambda E + mu) I)^-1 J^T e            (dof,)
    q  <- clip(q + dq, q_min, q_max)                        joint limits by projection

with ``lambda = 1`` (``damping``) and ``mu = 1e-9``; joints that the step would push through
a limit stop at the limit and the step of the other joints is solved again without them (the
columns of the stopped joints removed from ``J``), so a solution on or near a limit is still
reached. A problem stops when its position error is below ``tol_position`` and its
orientation error below ``tol_orientation`` (success), when its error has not decreased by
0.1 % for ``patience`` steps (a local minimum or a limit), or after ``max_iters`` steps.
Results are within the joint limits by construction.

Seeds: ``q_hint`` (when given) is the first seed of every target; then the ``n_near``
configurations of a fixed table of the model (1,024 configurations uniform in the limits,
drawn once with seed 12345) whose tool poses are nearest the target (:func:`nearest_seeds`);
the others are uniform in the joint limits from ``numpy.random.default_rng(seed)``. With
``all_solutions=True`` every seed of every target runs in one batch and the distinct
solutions are returned (solutions closer than ``distinct_tol`` radians on every joint are
one); with ``all_solutions=False`` the seeds are spent in rounds (``seeds_per_round`` new
seeds for each target still unsolved, ``n_seeds`` in all, like the restarts of the Robotics
Toolbox's ``ik_LM``), which finds one solution per target at a fraction of the cost.

Large NumPy batches run on a compiled (numba) CPU path by default (``engine="auto"``,
:mod:`prism_kernels.robotics._ik_numba`): the same algorithm in scalar loops, equal to the
array path to rounding (tested); PyTorch and CuPy targets run the array path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import is_numpy_namespace

from prism_kernels import compiled
from prism_kernels.arrays import device_of
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.robotics import _ik_numba
from prism_kernels.robotics.kinematics import (
    _fk_jacobian,
    check_configuration,
    fk,
    pose_error,
    rotation_error_vector,
)
from prism_kernels.robotics.models import PANDA, RobotModel

MAX_TARGETS = 1_000_000
#: ``engine="auto"`` uses the compiled path for NumPy batches of at least this many
#: (target, seed) problems; smaller ones (a request with a few targets) run the array path
#: and never wait for numba's first compilation (tens of seconds, then cached on disk).
NUMBA_MIN_PROBLEMS = 2048
MAX_PROBLEMS = 4_000_000


@dataclass
class IKResult:
    """Inverse kinematics of ``T`` targets.

    Attributes
    ----------
    success : ndarray (T,) bool
        The best solution is within ``tol_position`` and ``tol_orientation`` of the target.
    q : array (T, dof)
        Best configuration per target (the one with the smallest error; within the joint
        limits), on the namespace of the targets.
    position_error : array (T,)
        Metres, of ``q``.
    orientation_error : array (T,)
        Radians (angle of ``R_target R(q)^T``), of ``q``.
    solutions : list of arrays (k_t, dof)
        The distinct successful configurations of each target (``k_t = 0`` when none); one at
        most with ``all_solutions=False``.
    iterations : int
        Levenberg-Marquardt steps taken by the longest-running problem.
    problems : int
        (target, seed) problems solved in all.
    """

    success: np.ndarray
    q: Any
    position_error: Any
    orientation_error: Any
    solutions: list = field(default_factory=list)
    iterations: int = 0
    problems: int = 0

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success)) if self.success.size else 0.0


def _check_targets(targets: Any) -> Any:
    if not hasattr(targets, "shape") or isinstance(targets, np.generic):
        try:
            targets = np.asarray(targets, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("targets", "expected (T, 4, 4) homogeneous transforms") from exc
    xp = get_namespace(targets)
    if targets.ndim == 2:
        targets = targets[None, ...]
    if targets.ndim != 3 or tuple(targets.shape[1:]) != (4, 4):
        raise InvalidInput("targets", f"expected (T, 4, 4) poses, got shape {tuple(targets.shape)}")
    if targets.shape[0] == 0:
        raise InvalidInput("targets", "no target pose given")
    if targets.shape[0] > MAX_TARGETS:
        raise InvalidInput("targets", f"at most {MAX_TARGETS} targets per call")
    targets = xp.asarray(targets, dtype=xp.float64)
    if not bool(xp.all(xp.isfinite(targets))):
        raise InvalidInput("targets", "contains NaN or inf")
    R = targets[:, :3, :3]
    ortho = R @ xp.moveaxis(R, -1, -2) - xp.eye(3, dtype=xp.float64, device=device_of(targets))
    if float(xp.max(xp.abs(ortho))) > 1e-6 or bool(xp.any(xp.linalg.det(R) < 0)):
        raise InvalidInput("targets", "rotation blocks must be proper rotations (R R^T = I)")
    return targets


def _lm(
    model: RobotModel,
    targets: Any,
    tidx: Any,
    q: Any,
    max_iters: int,
    tol_p: float,
    tol_o: float,
    damping: float,
    patience: int,
    stop_target_on_success: bool,
) -> tuple[Any, Any, Any, int]:
    """Run the projected LM on problems ``(tidx[i], q[i])``; returns the final q, position
    and orientation errors per problem and the number of iterations."""
    xp = get_namespace(q)
    dev = device_of(q)
    lo = xp.asarray(np.array(model.joint_limits[:, 0]), dtype=xp.float64, device=dev)
    hi = xp.asarray(np.array(model.joint_limits[:, 1]), dtype=xp.float64, device=dev)
    n = model.dof
    eye = xp.eye(n, dtype=xp.float64, device=dev)
    P = q.shape[0]
    q = xp.clip(q, lo, hi)
    best_E = xp.full((P,), float("inf"), dtype=xp.float64, device=dev)
    stall = xp.zeros((P,), dtype=xp.int64, device=dev)
    done = xp.zeros((P,), dtype=xp.bool, device=dev)
    solved_target = xp.zeros((targets.shape[0],), dtype=xp.bool, device=dev)
    active = xp.arange(P, device=dev)
    it = 0
    while active.shape[0] > 0 and it <= max_iters:
        qa = xp.take(q, active, axis=0)
        Ta = xp.take(targets, xp.take(tidx, active, axis=0), axis=0)
        T, J = _fk_jacobian(model, qa)
        ep = Ta[:, :3, 3] - T[:, :3, 3]
        eo = rotation_error_vector(T, Ta)
        e = xp.concat([ep, eo], axis=-1)
        pe = xp.linalg.vector_norm(ep, axis=-1)
        oe = xp.linalg.vector_norm(eo, axis=-1)
        E = 0.5 * xp.sum(e * e, axis=-1)
        ok = (pe < tol_p) & (oe < tol_o)
        improved = E < best_E[active] * (1 - 1e-3)
        best_a = xp.where(improved, E, best_E[active])
        stall_a = xp.where(improved, xp.zeros_like(stall[active]), stall[active] + 1)
        best_E[active] = best_a
        stall[active] = stall_a
        stop = ok | (stall_a > patience) | (it == max_iters)
        if stop_target_on_success:
            if bool(xp.any(ok)):
                solved_target[xp.take(tidx, active[ok], axis=0)] = True
            stop = stop | xp.take(solved_target, xp.take(tidx, active, axis=0), axis=0)
        done[active] = stop
        go = ~stop
        if not bool(xp.any(go)):
            break
        Jg, eg, Eg, ag = J[go], e[go], E[go], active[go]
        Jt = xp.moveaxis(Jg, -1, -2)
        A = Jt @ Jg + (damping * Eg + 1e-9)[:, None, None] * eye
        g = (Jt @ eg[..., None])[..., 0]
        dq = xp.linalg.solve(A, g[..., None])[..., 0]
        qa = q[ag]
        # joints the step pushes through a limit stop at it; the others are solved again
        hit = ((qa + dq) < lo) | ((qa + dq) > hi)
        rows = xp.any(hit, axis=-1)
        if bool(xp.any(rows)):
            fr = xp.astype(~hit[rows], xp.float64)
            Jf = Jg[rows] * fr[:, None, :]
            Jft = xp.moveaxis(Jf, -1, -2)
            Af = Jft @ Jf + (damping * Eg[rows] + 1e-9)[:, None, None] * eye
            gf = (Jft @ eg[rows][..., None])[..., 0]
            dqf = xp.linalg.solve(Af, gf[..., None])[..., 0]
            dq[rows] = xp.where(hit[rows], dq[rows], dqf)
        q[ag] = xp.clip(qa + dq, lo, hi)
        active = ag
        it += 1
    T = _fk_jacobian(model, q)[0]
    pe, oe = pose_error(T, xp.take(targets, tidx, axis=0))
    return q, pe, oe, it


SEED_TABLE_SIZE = 1024
#: Weight (metres per unit of rotation-matrix difference) of orientation in the seed distance.
SEED_ORIENTATION_WEIGHT = 0.2


@functools.lru_cache(maxsize=16)
def seed_table(model: RobotModel) -> tuple[np.ndarray, np.ndarray]:
    """Configurations ``(S, dof)`` uniform in the joint limits (seed 12345) and their pose
    features ``(S, 12)``: tool position (m) and ``SEED_ORIENTATION_WEIGHT`` times the rotation
    matrix, so that squared feature distances mix metres and rotation differences."""
    q = np.random.default_rng(12345).uniform(
        model.joint_limits[:, 0], model.joint_limits[:, 1], (SEED_TABLE_SIZE, model.dof)
    )
    return q, _features(np.asarray(fk(model, q)))


def _features(T: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [T[:, :3, 3], SEED_ORIENTATION_WEIGHT * T[:, :3, :3].reshape(-1, 9)], axis=1
    )


def nearest_seeds(
    model: RobotModel, targets: np.ndarray, k: int, chunk: int = 2048, engine: str = "numpy"
) -> np.ndarray:
    """The ``k`` configurations of :func:`seed_table` whose tool poses are nearest each target
    ``(T, 4, 4)`` (host NumPy), nearest first: ``(T, k, dof)``. ``engine="numba"`` runs the
    same search compiled (one pass per target, no (T, S) distance matrix)."""
    q, feat = seed_table(model)
    k = min(k, q.shape[0])
    A = _features(np.asarray(targets, dtype=np.float64))
    if engine == "numba":
        return q[_ik_numba.nearest(np.ascontiguousarray(A), np.ascontiguousarray(feat), k)]
    out = np.empty((A.shape[0], k, model.dof))
    f2 = np.sum(feat * feat, axis=1)
    for a in range(0, A.shape[0], chunk):
        d = f2[None, :] - 2.0 * (A[a : a + chunk] @ feat.T)
        idx = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.argsort(d, 1)
        order = np.argsort(np.take_along_axis(d, idx, axis=1), axis=1, kind="stable")
        out[a : a + chunk] = q[np.take_along_axis(idx, order, axis=1)]
    return out


def _distinct(qs: np.ndarray, err: np.ndarray, tol: float) -> np.ndarray:
    order = np.argsort(err, kind="stable")
    keep: list[np.ndarray] = []
    for i in order:
        if all(np.max(np.abs(qs[i] - k)) > tol for k in keep):
            keep.append(qs[i])
    return np.array(keep).reshape(-1, qs.shape[1])


def solve_ik(
    model: RobotModel,
    targets: Any,
    n_seeds: int = 32,
    seed: int = 0,
    max_iters: int = 50,
    tol_position: float = 1e-4,
    tol_orientation: float = 1e-3,
    q_hint: Any = None,
    all_solutions: bool = True,
    distinct_tol: float = 1e-2,
    damping: float = 1.0,
    patience: int = 8,
    seeds_per_round: int = 1,
    n_near: int = 4,
    engine: str = "auto",
) -> IKResult:
    """Joint configurations of an arm that reach target tool poses.

    Parameters
    ----------
    model : RobotModel
        An arm (``kind == "arm"``).
    targets : array (T, 4, 4) or (4, 4)
        Target tool poses in the world frame (metres); see
        :func:`prism_kernels.robotics.kinematics.pose_from_position_quaternion` for poses
        given as position + quaternion (x, y, z, w).
    n_seeds : int
        Seeds per target (1..1024).
    seed : int
        Seed of the random starting configurations.
    max_iters : int
        Most LM steps per seed.
    tol_position, tol_orientation : float
        Success thresholds (m, rad).
    q_hint : array (dof,) or (T, dof), optional
        First seed of every target (e.g. the current configuration); must be within the
        joint limits.
    all_solutions : bool
        Run every seed and return the distinct solutions (True), or stop each target at its
        first solution, spending seeds in rounds (False).
    distinct_tol : float
        Solutions whose joints all differ by less than this (rad) count as one.
    damping : float
        Chan's ``lambda`` (the damping is ``lambda E``).
    patience : int
        A seed stops after this many steps without a 0.1 % decrease of its error.
    n_near : int
        Seeds taken from the model's seed table (:func:`nearest_seeds`, after ``q_hint``)
        before the random ones.
    seeds_per_round : int
        With ``all_solutions=False``: seeds tried at once per unsolved target in each round.
    engine : {"auto", "array", "numba"}
        ``"array"``: the array-API path on the targets' namespace; ``"numba"``: the compiled
        CPU path (NumPy targets only; same algorithm, equal to rounding); ``"auto"``: numba
        for NumPy batches of at least ``NUMBA_MIN_PROBLEMS`` (target, seed) problems, the
        array path otherwise.

    Returns
    -------
    IKResult

    Raises
    ------
    InvalidInput
        A mobile model (``model``), targets of the wrong shape or with NaN/inf or improper
        rotations (``targets``), a ``q_hint`` of the wrong length, NaN or outside the limits
        (``q_hint``), non-positive counts or tolerances (named).
    """
    if model.kind != "arm":
        raise InvalidInput(
            "model", f"inverse kinematics needs an arm, {model.name} is {model.kind}"
        )
    for name, v, lo_, hi_ in (
        ("n_seeds", n_seeds, 1, 1024),
        ("max_iters", max_iters, 1, 10_000),
        ("patience", patience, 1, 10_000),
        ("seeds_per_round", seeds_per_round, 1, 1024),
        ("n_near", n_near, 0, 64),
    ):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not lo_ <= v <= hi_:
            raise InvalidInput(name, f"expected an integer in [{lo_}, {hi_}]")
    for name, v in (
        ("tol_position", tol_position),
        ("tol_orientation", tol_orientation),
        ("distinct_tol", distinct_tol),
        ("damping", damping),
    ):
        if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
            raise InvalidInput(name, "expected a positive finite number")
    if engine not in ("auto", "array", "numba"):
        raise InvalidInput("engine", "choose 'auto', 'array' or 'numba'")
    targets = _check_targets(targets)
    xp = get_namespace(targets)
    is_np = is_numpy_namespace(xp)
    if engine == "numba" and not is_np:
        raise InvalidInput("engine", "the numba engine runs on NumPy targets only")
    first_batch = int(targets.shape[0]) * (
        n_seeds if all_solutions else min(seeds_per_round, n_seeds)
    )
    use_numba = is_np and (
        engine == "numba"
        or (engine == "auto" and first_batch >= NUMBA_MIN_PROBLEMS and compiled.enabled())
    )
    dev = device_of(targets)
    T = int(targets.shape[0])
    if T * n_seeds > MAX_PROBLEMS and all_solutions:
        raise InvalidInput("n_seeds", f"targets x n_seeds above {MAX_PROBLEMS}")
    hint = None
    if q_hint is not None:
        hint = to_numpy(check_configuration(model, q_hint, "q_hint", check_limits=True))
        if hint.ndim == 1:
            hint = np.broadcast_to(hint, (T, model.dof))
        if hint.shape != (T, model.dof):
            raise InvalidInput("q_hint", f"expected ({model.dof},) or ({T}, {model.dof})")
    rng = np.random.default_rng(seed)
    lim = model.joint_limits
    n_fixed = (hint is not None) + min(n_near, n_seeds)
    fixed = np.zeros((T, n_fixed, model.dof))
    if hint is not None:
        fixed[:, 0] = hint
    if n_near:
        fixed[:, hint is not None :] = nearest_seeds(
            model, to_numpy(targets), min(n_near, n_seeds), engine="numba" if use_numba else "numpy"
        )

    def seeds_for(tg: np.ndarray, k: int, start: int) -> np.ndarray:
        """Seeds number start..start+k-1 of targets tg: the fixed ones, then random."""
        s = rng.uniform(lim[:, 0], lim[:, 1], (tg.size, k, model.dof))
        for j in range(k):
            if start + j < n_fixed:
                s[:, j] = fixed[tg, start + j]
        return s.reshape(-1, model.dof)

    args = (max_iters, tol_position, tol_orientation, damping, patience)

    def run(sub: Any, k: int, q0: np.ndarray, stop_on_success: bool):
        if use_numba:
            q, pe, oe, steps = _ik_numba.lm_round(
                np.ascontiguousarray(model.dh),
                model.dh_convention == "modified",
                np.ascontiguousarray(model.base),
                np.ascontiguousarray(model.tool),
                np.ascontiguousarray(model.joint_limits[:, 0]),
                np.ascontiguousarray(model.joint_limits[:, 1]),
                np.ascontiguousarray(to_numpy(sub)),
                int(k),
                np.ascontiguousarray(q0),
                int(max_iters),
                float(tol_position),
                float(tol_orientation),
                float(damping),
                int(patience),
                bool(stop_on_success),
            )
            return q, pe, oe, int(steps.max()) if steps.size else 0
        n_sub = int(sub.shape[0])
        tidx = xp.asarray(np.repeat(np.arange(n_sub), k), device=dev)
        qx = xp.asarray(q0, dtype=xp.float64, device=dev)
        return _lm(model, sub, tidx, qx, *args, stop_on_success)

    best_q = np.zeros((T, model.dof))
    best_err = np.full(T, np.inf)
    best_pe = np.full(T, np.inf)
    best_oe = np.full(T, np.inf)
    sols: list[np.ndarray] = [np.zeros((0, model.dof)) for _ in range(T)]
    iters = 0
    problems = 0

    def absorb(tg: np.ndarray, k: int, q: Any, pe: Any, oe: Any) -> np.ndarray:
        qn = to_numpy(q).reshape(tg.size, k, model.dof)
        pen = to_numpy(pe).reshape(tg.size, k)
        oen = to_numpy(oe).reshape(tg.size, k)
        err = pen / tol_position + oen / tol_orientation
        j = np.argmin(err, axis=1)
        r = np.arange(tg.size)
        better = err[r, j] < best_err[tg]
        upd = tg[better]
        best_q[upd] = qn[r, j][better]
        best_err[upd] = err[r, j][better]
        best_pe[upd] = pen[r, j][better]
        best_oe[upd] = oen[r, j][better]
        return qn, pen, oen

    if all_solutions:
        tg = np.arange(T)
        q, pe, oe, iters = run(targets, n_seeds, seeds_for(tg, n_seeds, 0), False)
        problems = T * n_seeds
        qn, pen, oen = absorb(tg, n_seeds, q, pe, oe)
        okm = (pen < tol_position) & (oen < tol_orientation)
        err = pen / tol_position + oen / tol_orientation
        for t in np.nonzero(okm.any(axis=1))[0]:
            sols[t] = _distinct(qn[t][okm[t]], err[t][okm[t]], distinct_tol)
    else:
        unsolved = np.arange(T)
        spent = 0
        while unsolved.size and spent < n_seeds:
            k = min(seeds_per_round, n_seeds - spent)
            sub = xp.take(targets, xp.asarray(unsolved, device=dev), axis=0)
            q, pe, oe, it = run(sub, k, seeds_for(unsolved, k, spent), True)
            iters = max(iters, it)
            problems += unsolved.size * k
            absorb(unsolved, k, q, pe, oe)
            spent += k
            unsolved = unsolved[
                ~((best_pe[unsolved] < tol_position) & (best_oe[unsolved] < tol_orientation))
            ]
        for t in np.nonzero((best_pe < tol_position) & (best_oe < tol_orientation))[0]:
            sols[t] = best_q[t][None]
    success = (best_pe < tol_position) & (best_oe < tol_orientation)
    return IKResult(
        success=success,
        q=xp.asarray(best_q, dtype=xp.float64, device=dev),
        position_error=xp.asarray(best_pe, dtype=xp.float64, device=dev),
        orientation_error=xp.asarray(best_oe, dtype=xp.float64, device=dev),
        solutions=[xp.asarray(s, dtype=xp.float64, device=dev) for s in sols],
        iterations=int(iters),
        problems=int(problems),
    )


@compiled.warmer
def _warm() -> None:
    """Compile the scalar IK loops (a few Panda targets)."""
    q = np.asarray(PANDA.home, dtype=np.float64)[None, :]
    solve_ik(PANDA, np.asarray(fk(PANDA, q)), n_seeds=2, engine="numba")
