"""Sampling-based motion planning with batched collision checks: a straight path when it is
free, RRT-Connect, a lazy PRM, and path shortcutting.

The trees and the roadmap are host NumPy bookkeeping; every collision query goes through
:mod:`prism_kernels.robotics.collision` as a batch:

- RRT-Connect (Kuffner & LaValle 2000): each extension from the nearest node towards a
  sample is cut into ``n_sub`` steps and every step is checked in one call; the free prefix
  joins the tree. The other tree then *connects* to the new node: the whole line, in steps,
  checked in one call. Trees swap every iteration.
- Lazy PRM (Bohlin & Kavraki 2000): configurations are sampled and checked in batches, joined
  to their ``k`` nearest neighbours without checking; the shortest path in the roadmap
  (Dijkstra) has its unchecked edges checked in one call, blocked edges are removed, and the
  search repeats; when the roadmap has no path, another batch of samples is added.
- Shortcutting: each round draws ``shortcut_batch`` random pairs of points along the path
  (vertices or interior points), checks all the candidate shortcuts in one call and applies
  the one that saves the most length.

Mobile edges are checked exactly (capsules); arm edges by swept link spheres at
``resolution`` radians (see :mod:`prism_kernels.robotics.collision`), after a first pass at
``COARSE`` times the resolution that rejects most colliding steps and shortcuts cheaply (a
coarse hit only ever makes the planner more cautious; every edge kept is checked at the full
resolution). A seed fixes every
random draw, so the same seed gives the same path as long as the time budget is not reached
(the budget is the only wall-clock input). A start or goal outside the limits is an
:class:`~prism_kernels.errors.InvalidInput`; a start or goal in collision, or no path within
the budget, is a :class:`PlanResult` with ``success=False`` and a ``reason`` (sampling planners
cannot prove that no path exists, so an enclosed goal reads ``"time budget spent"`` or
``"iteration limit reached"``).
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.robotics.collision import Scene, configs_collide, edges_collide
from prism_kernels.robotics.models import RobotModel

PLANNERS = ("rrt_connect", "prm")

REASONS = (
    "start in collision",
    "goal in collision",
    "time budget spent",
    "iteration limit reached",
)


@dataclass
class PlanResult:
    """What :func:`plan` returns.

    Attributes
    ----------
    success : bool
    path : ndarray (k, dof)
        Waypoints from the start to the goal (straight edges between them, each checked);
        empty ``(0, dof)`` on failure.
    planner : str
        ``"straight"`` when the straight path was free, else the planner that ran.
    stats : dict
        ``iterations``, ``nodes``, ``collision_checks`` (configurations + edges checked),
        ``edge_checks``, ``config_checks``, ``time_ms`` (all of it), ``search_ms`` (until the
        first path, before shortcutting), ``path_length`` (configuration-space length: metres
        or radians), ``shortcut_rounds``.
    reason : str or None
        Why it failed (one of :data:`REASONS`), None on success.
    """

    success: bool
    path: np.ndarray
    planner: str
    stats: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


class _Checker:
    """Counts and runs the batched checks on the chosen array backend (host NumPy in/out)."""

    def __init__(self, model, scene, margin, resolution, xp=None):
        self.model, self.scene, self.margin, self.res = model, scene, margin, resolution
        self.xp = xp
        self.configs = 0
        self.edges = 0

    def _put(self, a: np.ndarray) -> Any:
        if self.xp is None:
            return a
        return self.xp.asarray(a)

    def configs_free(self, q: np.ndarray) -> np.ndarray:
        self.configs += int(q.shape[0])
        if q.shape[0] == 0:
            return np.zeros(0, dtype=bool)
        return ~to_numpy(configs_collide(self.model, self.scene, self._put(q), self.margin))

    @property
    def coarse(self) -> bool:
        """Arms: a cheap first pass at ``COARSE x resolution`` can reject edges early (a hit
        there is a real hit or a conservative one: the chord of a longer step)."""
        return self.model.kind == "arm"

    def edges_free(self, qa: np.ndarray, qb: np.ndarray, factor: float = 1.0) -> np.ndarray:
        self.edges += int(qa.shape[0])
        if qa.shape[0] == 0:
            return np.zeros(0, dtype=bool)
        hit = edges_collide(
            self.model, self.scene, self._put(qa), self._put(qb), self.margin, self.res * factor
        )
        return ~to_numpy(hit)


class _Tree:
    def __init__(self, root: np.ndarray):
        self.q = np.empty((1024, root.size))
        self.parent = np.empty(1024, dtype=np.int64)
        self.q[0] = root
        self.parent[0] = -1
        self.n = 1

    def add_chain(self, qs: np.ndarray, parent: int) -> int:
        """Append ``qs`` (m, dof) as a chain below ``parent``; index of the last node."""
        m = qs.shape[0]
        while self.n + m > self.q.shape[0]:
            self.q = np.concatenate([self.q, np.empty_like(self.q)])
            self.parent = np.concatenate([self.parent, np.empty_like(self.parent)])
        idx = np.arange(self.n, self.n + m)
        self.q[idx] = qs
        self.parent[idx] = np.r_[parent, idx[:-1]]
        self.n += m
        return int(idx[-1])

    def nearest(self, q: np.ndarray) -> int:
        d = self.q[: self.n] - q
        return int(np.argmin(np.einsum("ij,ij->i", d, d)))

    def branch(self, i: int) -> np.ndarray:
        out = []
        while i >= 0:
            out.append(self.q[i])
            i = int(self.parent[i])
        return np.array(out)  # from node i to the root


def _as_config(model: RobotModel, q: Any, field: str) -> np.ndarray:
    try:
        a = np.asarray(to_numpy(q), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidInput(field, f"expected {model.dof} numbers") from None
    if a.size != model.dof:
        raise InvalidInput(field, f"expected {model.dof} values for {model.name}, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise InvalidInput(field, "contains NaN or inf")
    lo, hi = model.joint_limits[:, 0], model.joint_limits[:, 1]
    bad = np.flatnonzero((a < lo - 1e-12) | (a > hi + 1e-12))
    if bad.size:
        j = int(bad[0])
        raise InvalidInput(
            f"{field}.{j}",
            f"{a[j]:.6g} outside the limits [{lo[j]:.6g}, {hi[j]:.6g}] of {model.name}",
        )
    return a


def path_length(path: np.ndarray) -> float:
    """Configuration-space length of a polyline (k, dof): metres or radians."""
    path = np.asarray(path, dtype=np.float64)
    if path.shape[0] < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())


def plan(
    model: RobotModel,
    scene: Scene,
    start: Any,
    goal: Any,
    planner: str = "rrt_connect",
    margin: float = 0.0,
    seed: int = 0,
    time_budget_s: float = 5.0,
    resolution: float = 0.02,
    max_iterations: int | None = None,
    shortcut: bool = True,
    shortcut_rounds: int = 40,
    shortcut_batch: int = 16,
    range_fraction: float = 0.2,
    n_sub: int = 8,
    prm_batch: int = 200,
    prm_k: int = 10,
    xp: Any = None,
) -> PlanResult:
    """Plan a collision-free path from ``start`` to ``goal``.

    Parameters
    ----------
    model : RobotModel
        Mobile robot (configurations are positions, metres) or arm (joint angles, radians).
    scene : Scene
        Obstacles.
    start, goal : array (dof,)
        Inside ``model.joint_limits`` (else :class:`InvalidInput` naming the joint).
    planner : {"rrt_connect", "prm"}
    margin : float
        Collision margin, metres, ``>= 0``.
    seed : int
        Seeds every random draw (same seed, same path).
    time_budget_s : float
        Wall-clock budget for the search (s, > 0).
    resolution : float
        Arms: joint step between checked samples of an edge (radians).
    max_iterations : int, optional
        Cap on planner iterations (RRT extensions or PRM searches).
    shortcut : bool
        Shorten the path (``shortcut_rounds`` rounds of ``shortcut_batch`` candidates).
    range_fraction : float
        RRT-Connect extension length as a fraction of the diagonal of the limits (OMPL's
        default is 0.2).
    n_sub : int
        Steps per RRT extension (checked together; the free prefix is kept).
    prm_batch, prm_k : int
        PRM samples per batch and neighbours per node.
    xp : array namespace, optional
        Backend of the collision checks (default NumPy).

    Returns
    -------
    PlanResult
    """
    t0 = time.perf_counter()
    if planner not in PLANNERS:
        raise InvalidInput("planner", f"unknown planner {planner!r}; one of {PLANNERS}")
    if not (isinstance(time_budget_s, (int, float)) and math.isfinite(time_budget_s)) or (
        time_budget_s <= 0
    ):
        raise InvalidInput("time_budget_s", "must be a positive number of seconds")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise InvalidInput("margin", "must be a finite number of metres >= 0")
    if not (isinstance(resolution, (int, float)) and resolution > 0):
        raise InvalidInput("resolution", "must be > 0")
    if max_iterations is not None and int(max_iterations) < 1:
        raise InvalidInput("max_iterations", "must be >= 1")
    s = _as_config(model, start, "start")
    g = _as_config(model, goal, "goal")
    chk = _Checker(model, scene, float(margin), float(resolution), xp)
    stats: dict[str, Any] = {"iterations": 0, "nodes": 0, "shortcut_rounds": 0}

    def done(ok: bool, path: np.ndarray, name: str, reason: str | None) -> PlanResult:
        stats.update(
            collision_checks=chk.configs + chk.edges,
            config_checks=chk.configs,
            edge_checks=chk.edges,
            time_ms=1000.0 * (time.perf_counter() - t0),
            path_length=path_length(path) if ok else None,
        )
        if not ok:
            path = np.zeros((0, model.dof))
        return PlanResult(ok, path, name, stats, reason)

    free = chk.configs_free(np.stack([s, g]))
    if not free[0]:
        return done(False, np.zeros((0, model.dof)), planner, "start in collision")
    if not free[1]:
        return done(False, np.zeros((0, model.dof)), planner, "goal in collision")
    if chk.edges_free(s[None], g[None])[0]:
        return done(True, np.stack([s, g]), "straight", None)
    rng = np.random.default_rng(seed)
    deadline = t0 + float(time_budget_s)
    max_it = int(max_iterations) if max_iterations is not None else None
    if planner == "rrt_connect":
        path, reason = _rrt_connect(model, chk, s, g, rng, deadline, max_it, stats,
                                    range_fraction, max(1, int(n_sub)))  # fmt: skip
    else:
        path, reason = _lazy_prm(model, chk, s, g, rng, deadline, max_it, stats,
                                 max(2, int(prm_batch)), max(2, int(prm_k)))  # fmt: skip
    if path is None:
        return done(False, np.zeros((0, model.dof)), planner, reason)
    stats["search_ms"] = 1000.0 * (time.perf_counter() - t0)
    if shortcut:
        path = shortcut_path(chk, path, rng, shortcut_rounds, shortcut_batch, deadline, stats)
    return done(True, path, planner, None)


def _sample(model: RobotModel, rng: np.random.Generator, n: int) -> np.ndarray:
    lo, hi = model.joint_limits[:, 0], model.joint_limits[:, 1]
    return lo + rng.random((n, model.dof)) * (hi - lo)


def _steps(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """``n`` points from ``a`` (excluded) to ``b`` (included), equally spaced: (n, dof)."""
    t = np.arange(1, n + 1)[:, None] / n
    return a + t * (b - a)


#: Arms: the coarse first pass checks edges at this multiple of the resolution.
COARSE = 4.0


def _free_prefix(chk: _Checker, a: np.ndarray, pts: np.ndarray) -> int:
    """How many of the consecutive steps ``a -> pts[0] -> pts[1] ...`` are free (batched:
    arms first check all steps coarsely, then the steps before the first coarse hit)."""
    prev = np.vstack([a[None], pts[:-1]])
    m = int(pts.shape[0])
    if chk.coarse:
        bad = np.flatnonzero(~chk.edges_free(prev, pts, COARSE))
        m = int(bad[0]) if bad.size else m
        if m == 0:
            return 0
    ok = chk.edges_free(prev[:m], pts[:m])
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if bad.size else m


def _rrt_connect(model, chk, s, g, rng, deadline, max_it, stats, range_fraction, n_sub):
    extent = model.joint_limits[:, 1] - model.joint_limits[:, 0]
    rng_len = max(1e-9, float(range_fraction) * float(np.linalg.norm(extent)))
    step = rng_len / n_sub
    ta, tb = _Tree(s), _Tree(g)  # ta grows from the start
    a_is_start = True
    it = 0
    while True:
        if time.perf_counter() > deadline:
            return None, "time budget spent"
        if max_it is not None and it >= max_it:
            return None, "iteration limit reached"
        it += 1
        stats["iterations"] = it
        qr = _sample(model, rng, 1)[0]
        i = ta.nearest(qr)
        qn = ta.q[i]
        d = float(np.linalg.norm(qr - qn))
        if d > 1e-12:
            target = qn + (qr - qn) * min(1.0, rng_len / d)
            m = max(1, math.ceil(min(d, rng_len) / step))
            pts = _steps(qn, target, m)
            k = _free_prefix(chk, qn, pts)
            if k > 0:
                new = ta.add_chain(pts[:k], i)
                qnew = ta.q[new]
                # connect the other tree to the new node: the whole line, in steps, at once
                j = tb.nearest(qnew)
                qj = tb.q[j]
                dd = float(np.linalg.norm(qnew - qj))
                mm = max(1, math.ceil(dd / step))
                pts2 = _steps(qj, qnew, mm)
                k2 = _free_prefix(chk, qj, pts2)
                if k2 == mm:
                    last = tb.add_chain(pts2[:-1], j) if mm > 1 else j
                    pa = ta.branch(new)[::-1]  # root of ta ... qnew
                    pb = tb.branch(last)  # node next to qnew ... root of tb
                    path = np.vstack([pa, pb])
                    stats["nodes"] = ta.n + tb.n
                    return (path if a_is_start else path[::-1].copy()), None
                if k2 > 0:
                    tb.add_chain(pts2[:k2], j)
        stats["nodes"] = ta.n + tb.n
        ta, tb = tb, ta
        a_is_start = not a_is_start


def _lazy_prm(model, chk, s, g, rng, deadline, max_it, stats, batch, k):
    nodes = np.stack([s, g])
    status: dict[tuple[int, int], int] = {}  # 1 free, -1 blocked (checked edges only)
    it = 0
    while True:
        if time.perf_counter() > deadline:
            return None, "time budget spent"
        if max_it is not None and it >= max_it:
            return None, "iteration limit reached"
        cand = _sample(model, rng, batch)
        nodes = np.vstack([nodes, cand[chk.configs_free(cand)]])
        stats["nodes"] = int(nodes.shape[0])
        tree = cKDTree(nodes)
        kk = min(k + 1, nodes.shape[0])
        dist, nb = tree.query(nodes, kk)
        adj: list[dict[int, float]] = [dict() for _ in range(nodes.shape[0])]
        for u in range(nodes.shape[0]):
            for dv, v in zip(dist[u, 1:], nb[u, 1:], strict=True):
                v = int(v)
                key = (min(u, v), max(u, v))
                if status.get(key, 0) >= 0 and v != u:
                    adj[u][v] = float(dv)
                    adj[v][u] = float(dv)
        while True:
            if time.perf_counter() > deadline:
                return None, "time budget spent"
            if max_it is not None and it >= max_it:
                return None, "iteration limit reached"
            it += 1
            stats["iterations"] = it
            route = _dijkstra(adj, 0, 1)
            if route is None:
                break  # more samples
            pairs = [(min(a, b), max(a, b)) for a, b in zip(route[:-1], route[1:], strict=True)]
            unchecked = [p for p in pairs if p not in status]
            if unchecked:
                ua = np.array([p[0] for p in unchecked])
                ub = np.array([p[1] for p in unchecked])
                ok = chk.edges_free(nodes[ua], nodes[ub])
                for p, o in zip(unchecked, ok, strict=True):
                    status[p] = 1 if o else -1
                    if not o:
                        adj[p[0]].pop(p[1], None)
                        adj[p[1]].pop(p[0], None)
            if all(status[p] == 1 for p in pairs):
                return nodes[np.array(route)], None


def _dijkstra(adj: list[dict[int, float]], src: int, dst: int) -> list[int] | None:
    dist = {src: 0.0}
    prev: dict[int, int] = {}
    heap = [(0.0, src)]
    seen = set()
    while heap:
        d, u = heapq.heappop(heap)
        if u in seen:
            continue
        seen.add(u)
        if u == dst:
            out = [u]
            while u != src:
                u = prev[u]
                out.append(u)
            return out[::-1]
        for v, w in adj[u].items():
            nd = d + w
            if nd < dist.get(v, math.inf):
                dist[v] = nd
                prev[v] = u
                heapq.heappush(heap, (nd, v))
    return None


def _dedupe(path: np.ndarray) -> np.ndarray:
    keep = np.r_[True, np.linalg.norm(np.diff(path, axis=0), axis=1) > 1e-12]
    keep[-1] = True
    return path[keep]


def shortcut_path(
    chk: _Checker,
    path: np.ndarray,
    rng: np.random.Generator,
    rounds: int = 40,
    batch: int = 16,
    deadline: float | None = None,
    stats: dict | None = None,
) -> np.ndarray:
    """Shorten a free path: per round, ``batch`` random shortcuts checked in one call, the
    best free one applied. The result's edges are all checked; ends unchanged."""
    path = _dedupe(np.asarray(path, dtype=np.float64))
    # first drop the intermediate nodes of straight runs (collinear: nothing to check)
    if path.shape[0] > 2:
        d1 = np.diff(path, axis=0)
        n1 = d1 / np.linalg.norm(d1, axis=1, keepdims=True)
        straight = np.einsum("ij,ij->i", n1[:-1], n1[1:]) > 1 - 1e-12
        path = path[np.r_[True, ~straight, True]]
    stale = 0
    for r in range(int(rounds)):
        if path.shape[0] < 3 or (deadline is not None and time.perf_counter() > deadline):
            break
        if stats is not None:
            stats["shortcut_rounds"] = r + 1
        seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
        cum = np.r_[0.0, np.cumsum(seg)]
        L = cum[-1]
        u = np.sort(rng.random((batch, 2)) * L, axis=1)
        # half the candidates join vertices (the classic shortcut), half interior points
        iv = np.searchsorted(cum, u, side="right") - 1
        iv = np.minimum(iv, path.shape[0] - 2)
        half = batch // 2
        u[:half] = cum[np.minimum(iv[:half] + np.array([0, 1]), path.shape[0] - 1)]
        iv = np.minimum(np.searchsorted(cum, u, side="right") - 1, path.shape[0] - 2)
        f = (u - cum[iv]) / np.maximum(seg[iv], 1e-300)
        p = path[iv] + np.clip(f, 0, 1)[..., None] * (path[iv + 1] - path[iv])
        gain = (u[:, 1] - u[:, 0]) - np.linalg.norm(p[:, 1] - p[:, 0], axis=1)
        useful = (gain > 1e-9) & (iv[:, 1] > iv[:, 0])
        if not useful.any():
            stale += 1
            if stale >= 5:
                break
            continue
        cidx = np.flatnonzero(useful)
        if chk.coarse:  # reject most colliding candidates cheaply, verify the best survivors
            cidx = cidx[chk.edges_free(p[cidx, 0], p[cidx, 1], COARSE)]
            cidx = cidx[np.argsort(-gain[cidx], kind="stable")][:3]
            ok = np.zeros(cidx.size, dtype=bool)
            for j in range(cidx.size):
                ok[j] = chk.edges_free(p[cidx[j : j + 1], 0], p[cidx[j : j + 1], 1])[0]
                if ok[j]:
                    break
        else:
            ok = chk.edges_free(p[cidx, 0], p[cidx, 1])
        if not ok.any():
            stale += 1
            if stale >= 5:
                break
            continue
        best = int(cidx[np.flatnonzero(ok)[np.argmax(gain[cidx][ok])]])
        # rounds that save less than 0.1 % of the length count towards stopping
        stale = stale + 1 if gain[best] < 1e-3 * L else 0
        i0, i1 = int(iv[best, 0]), int(iv[best, 1])
        a, b = p[best, 0], p[best, 1]
        path = _dedupe(np.vstack([path[: i0 + 1], a[None], b[None], path[i1 + 1 :]]))
        if stale >= 5:
            break
    return path
