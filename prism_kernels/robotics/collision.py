"""Batched collision checking: points, spheres, segments and robot configurations against a
scene of axis-aligned boxes and spheres, inflated by a collision margin.

Every check is array math on the namespace of its query (NumPy, PyTorch, CuPy): one call
answers a whole batch (all the steps of an extension, every edge of a roadmap). The scene is
kept on the host (NumPy) and copied to the query's device per call.

Geometry (all exact, no sampling):

- point ``p`` against box ``[lo, hi]``: distance ``|max(|p - c| - h, 0)|`` (``c`` the centre,
  ``h`` the half size); it collides when the distance is ``<= margin + radius``;
- point against a sphere: ``|p - c| <= R + margin + radius``;
- segment ``a -> b`` against a box: the squared distance ``g(t)`` from ``a + t (b - a)`` to the
  box is a convex piecewise quadratic in ``t`` whose pieces change only where one coordinate
  crosses a face plane of the box (at most ``2 D`` knots in ``[0, 1]``). Within each piece ``g``
  is one quadratic, so its minimum is at the stationary point clipped to the piece; the
  minimum over all pieces (and the knots) is the exact distance from the segment to the box;
- segment against a sphere: closest point ``t = clip((c - a) . d / d . d, 0, 1)``.

A 2-D query (points of length 2) is checked against the scene projected on the x-y plane
(boxes become rectangles, spheres discs): the workspace of a planar mobile robot.

Robots (:class:`prism_kernels.robotics.models.RobotModel`):

- ``kind == "mobile"``: the robot is a sphere of radius ``model.radius`` (metres) at the
  configuration; an edge is checked exactly as a segment (a capsule swept by the sphere);
- ``kind == "arm"``: the robot is its link spheres
  (:func:`prism_kernels.robotics.kinematics.link_spheres`); a configuration collides when one
  sphere is within ``margin`` of an obstacle or when two spheres of non-adjacent links overlap
  (self-collision; the model lists the link pairs to skip). An edge is interpolated linearly in
  joint space with at most ``resolution`` radians per joint between samples, and every link
  sphere is swept as a capsule between consecutive samples (the segment between its two
  centres). The true motion of a sphere between two samples leaves that chord by a second
  order amount, about ``L * resolution**2 / 8`` for a point ``L`` metres from the moving axes
  (0.1 mm at 0.03 rad and 1 m); ``sweep_tolerance`` (default 0) adds that much radius to the
  capsules when a guarantee is wanted (it also blocks every edge that leaves a configuration
  closer than the tolerance to an obstacle, so it is off by default). Self-collision is
  checked at the samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from prism_kernels.arrays import device_of
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.robotics.kinematics import link_spheres
from prism_kernels.robotics.models import RobotModel

#: Largest number of (query, obstacle) pairs handled in one array call; larger batches are
#: cut into chunks of this many pairs so the temporaries stay a few hundred MB at most.
CHUNK_PAIRS = 1 << 18

#: Largest batch accepted by one check (queries), a guard against runaway sizes.
MAX_QUERIES = 50_000_000

OBSTACLE_TYPES = ("box", "sphere")


@dataclass(frozen=True, eq=False)
class Scene:
    """Obstacles: axis-aligned boxes and spheres (metres, world frame).

    Attributes
    ----------
    box_centres : ndarray (K, 3)
        Box centres.
    box_sizes : ndarray (K, 3)
        Full extents along x, y, z (not half sizes), each ``>= 0``.
    sphere_centres : ndarray (M, 3)
        Sphere centres.
    sphere_radii : ndarray (M,)
        Sphere radii, ``>= 0``.
    """

    box_centres: np.ndarray
    box_sizes: np.ndarray
    sphere_centres: np.ndarray
    sphere_radii: np.ndarray

    def __init__(
        self,
        box_centres: Any = None,
        box_sizes: Any = None,
        sphere_centres: Any = None,
        sphere_radii: Any = None,
    ) -> None:
        bc = _host(box_centres, "box_centres", (3,))
        bs = _host(box_sizes, "box_sizes", (3,))
        sc = _host(sphere_centres, "sphere_centres", (3,))
        sr = np.asarray(
            np.zeros(0) if sphere_radii is None else to_numpy(sphere_radii), dtype=np.float64
        ).reshape(-1)
        if bc.shape[0] != bs.shape[0]:
            raise InvalidInput("box_sizes", f"{bs.shape[0]} sizes for {bc.shape[0]} box centres")
        if sc.shape[0] != sr.shape[0]:
            raise InvalidInput(
                "sphere_radii", f"{sr.shape[0]} radii for {sc.shape[0]} sphere centres"
            )
        if not np.all(np.isfinite(sr)):
            raise InvalidInput("sphere_radii", "contains NaN or inf")
        if np.any(bs < 0):
            raise InvalidInput("box_sizes", "box sizes must be >= 0 (full extents, metres)")
        if np.any(sr < 0):
            raise InvalidInput("sphere_radii", "sphere radii must be >= 0 (metres)")
        for name, v in (("box_centres", bc), ("box_sizes", bs), ("sphere_centres", sc),
                        ("sphere_radii", sr)):  # fmt: skip
            v.setflags(write=False)
            object.__setattr__(self, name, v)

    @property
    def n_boxes(self) -> int:
        return int(self.box_centres.shape[0])

    @property
    def n_spheres(self) -> int:
        return int(self.sphere_centres.shape[0])

    @property
    def n_obstacles(self) -> int:
        return self.n_boxes + self.n_spheres

    @classmethod
    def from_obstacles(cls, obstacles: list[dict[str, Any]] | None) -> Scene:
        """A scene from the route's obstacle list.

        Each item is ``{"position": [x, y, z], "size": [sx, sy, sz], "obstacle_type": "box"}``
        (``position`` the box centre, ``size`` its full extents) or, for a sphere,
        ``{"position": ..., "obstacle_type": "sphere", "radius": r}`` or ``"size"`` giving
        the diameter (a number, or three equal numbers). Two-element positions and sizes are
        planar obstacles (``z = 0``, height 0). Errors name the item (``obstacles.3.size``).
        """
        obstacles = obstacles or []
        if not isinstance(obstacles, (list, tuple)):
            raise InvalidInput("obstacles", "expected a list of obstacles")
        bc, bs, sc, sr = [], [], [], []
        for i, ob in enumerate(obstacles):
            f = f"obstacles.{i}"
            if not isinstance(ob, dict):
                raise InvalidInput(f, "expected an object with position and size")
            kind = str(ob.get("obstacle_type", ob.get("type", "box"))).lower()
            if kind not in OBSTACLE_TYPES:
                raise InvalidInput(
                    f"{f}.obstacle_type", f"unknown type {kind!r}; one of {OBSTACLE_TYPES}"
                )
            pos = _vec3(ob.get("position"), f"{f}.position")
            if kind == "box":
                size = _vec3(ob.get("size"), f"{f}.size")
                if np.any(size < 0):
                    raise InvalidInput(f"{f}.size", "sizes must be >= 0 (full extents, metres)")
                bc.append(pos)
                bs.append(size)
            else:
                if ob.get("radius") is not None:
                    r = _scalar(ob["radius"], f"{f}.radius")
                else:
                    d = np.asarray(ob.get("size"), dtype=np.float64).reshape(-1)
                    if d.size == 0 or not np.all(np.isfinite(d)) or np.ptp(d) > 0:
                        raise InvalidInput(
                            f"{f}.size", "a sphere's size is its diameter: one number"
                        )
                    r = float(d[0]) / 2.0
                if r < 0:
                    raise InvalidInput(f"{f}.radius", "radius must be >= 0 (metres)")
                sc.append(pos)
                sr.append(r)
        return cls(
            np.array(bc).reshape(-1, 3),
            np.array(bs).reshape(-1, 3),
            np.array(sc).reshape(-1, 3),
            np.array(sr, dtype=np.float64),
        )

    def to_obstacles(self) -> list[dict[str, Any]]:
        """The inverse of :meth:`from_obstacles` (JSON-able)."""
        out: list[dict[str, Any]] = [
            {"position": c.tolist(), "size": s.tolist(), "obstacle_type": "box"}
            for c, s in zip(self.box_centres, self.box_sizes, strict=True)
        ]
        out += [
            {"position": c.tolist(), "radius": float(r), "obstacle_type": "sphere"}
            for c, r in zip(self.sphere_centres, self.sphere_radii, strict=True)
        ]
        return out


def _host(x: Any, field: str, tail: tuple[int, ...]) -> np.ndarray:
    a = np.zeros((0, *tail)) if x is None else np.asarray(to_numpy(x), dtype=np.float64)
    if a.size == 0:
        a = a.reshape(0, *tail)
    if a.ndim != 2 or a.shape[1:] != tail:
        raise InvalidInput(field, f"expected shape (n, {tail[0]}), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InvalidInput(field, "contains NaN or inf")
    return np.array(a, dtype=np.float64)


def _vec3(x: Any, field: str) -> np.ndarray:
    try:
        v = np.asarray(x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidInput(field, "expected 3 numbers") from None
    if v.size == 2:
        v = np.r_[v, 0.0]
    if v.size != 3:
        raise InvalidInput(field, f"expected 3 numbers, got {v.size}")
    if not np.all(np.isfinite(v)):
        raise InvalidInput(field, "contains NaN or inf")
    return v


def _scalar(x: Any, field: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InvalidInput(field, "expected a number") from None
    if not math.isfinite(v):
        raise InvalidInput(field, "must be finite")
    return v


def _check_margin(margin: float) -> float:
    m = _scalar(margin, "margin")
    if m < 0:
        raise InvalidInput("margin", "margin must be >= 0 (metres)")
    return m


def _query(p: Any, field: str) -> tuple[Any, Any]:
    """``p`` as a float64 array of its own namespace, last axis 2 or 3, finite."""
    xp = get_namespace(p)
    if not hasattr(p, "shape") or isinstance(p, np.generic):
        p = np.asarray(p, dtype=np.float64)
        xp = get_namespace(p)
    p = xp.asarray(p, dtype=xp.float64)
    if p.ndim < 1 or p.shape[-1] not in (2, 3):
        raise InvalidInput(field, f"expected shape (..., 3) or (..., 2), got {tuple(p.shape)}")
    if math.prod(p.shape[:-1]) > MAX_QUERIES:
        raise InvalidInput(field, f"more than {MAX_QUERIES} queries in one call")
    if not bool(xp.all(xp.isfinite(p))):
        raise InvalidInput(field, "contains NaN or inf")
    return xp, p


def _scene_arrays(scene: Scene, xp: Any, like: Any, dim: int) -> tuple[Any, Any, Any, Any]:
    dev = device_of(like)

    def put(a: np.ndarray) -> Any:
        return xp.asarray(np.array(a), dtype=xp.float64, device=dev)

    return (
        put(scene.box_centres[:, :dim]),
        put(scene.box_sizes[:, :dim] / 2.0),
        put(scene.sphere_centres[:, :dim]),
        put(scene.sphere_radii),
    )


def _radius(radius: Any, xp: Any, like: Any, batch: tuple[int, ...], field: str) -> Any:
    """Per-query radius broadcast to ``batch`` then flattened (N,)."""
    if isinstance(radius, (int, float, np.floating, np.integer)):
        r = _scalar(radius, field)
        if r < 0:
            raise InvalidInput(field, "radius must be >= 0 (metres)")
        return xp.full((math.prod(batch),), r, dtype=xp.float64, device=device_of(like))
    r = xp.asarray(
        to_numpy(radius) if get_namespace(radius) is not xp else radius,
        dtype=xp.float64,
        device=device_of(like),
    )
    try:
        r = xp.broadcast_to(r, batch)
    except (ValueError, RuntimeError):
        raise InvalidInput(
            field, f"radius of shape {tuple(r.shape)} does not broadcast to {batch}"
        ) from None
    if not bool(xp.all(xp.isfinite(r))) or bool(xp.any(r < 0)):
        raise InvalidInput(field, "radii must be finite and >= 0")
    return xp.reshape(r, (-1,))


def _sq(v: Any) -> Any:
    """``sum(v**2, axis=-1)`` for a short last axis, unrolled (a reduction along a last
    axis of 2 or 3 is several times slower than two adds on NumPy)."""
    out = v[..., 0] * v[..., 0]
    for i in range(1, int(v.shape[-1])):
        out = out + v[..., i] * v[..., i]
    return out


def _dot(u: Any, v: Any) -> Any:
    """``sum(u * v, axis=-1)`` for a short last axis, unrolled."""
    out = u[..., 0] * v[..., 0]
    for i in range(1, int(u.shape[-1])):
        out = out + u[..., i] * v[..., i]
    return out


def _box_dist2(x: Any, c: Any, h: Any, xp: Any) -> Any:
    """Squared distance from points ``x`` (..., D) to boxes (centre ``c``, half size ``h``)."""
    return _sq(xp.maximum(xp.abs(x - c) - h, 0.0))


def _chunks(n: int, per_query: int) -> list[tuple[int, int]]:
    step = max(1, CHUNK_PAIRS // max(1, per_query))
    return [(i, min(n, i + step)) for i in range(0, n, step)] or [(0, 0)]


def points_collide(scene: Scene, p: Any, margin: float = 0.0, radius: Any = 0.0) -> Any:
    """Which points (or spheres) are within ``margin`` of an obstacle.

    Parameters
    ----------
    scene : Scene
    p : array (..., 3) or (..., 2)
        Points (sphere centres), metres, on any array backend. Length 2: the scene
        projected on the x-y plane.
    margin : float
        Collision margin, metres, ``>= 0``: obstacles are inflated by it.
    radius : float or array broadcastable to ``p.shape[:-1]``
        Radius of the query spheres, metres (0 for points).

    Returns
    -------
    array of bool (...,)
        True where ``distance(point, obstacle) <= margin + radius`` for some obstacle.
    """
    margin = _check_margin(margin)
    xp, p = _query(p, "p")
    batch = tuple(p.shape[:-1])
    dim = int(p.shape[-1])
    r = _radius(radius, xp, p, batch, "radius")
    P = xp.reshape(p, (-1, dim))
    n = int(P.shape[0])
    bc, bh, sc, sr = _scene_arrays(scene, xp, p, dim)
    hit = xp.zeros((n,), dtype=xp.bool, device=device_of(p))
    if n == 0 or scene.n_obstacles == 0:
        return xp.reshape(hit, batch)
    out = []
    for i0, i1 in _chunks(n, scene.n_obstacles):
        x = P[i0:i1, None, :]
        rr = r[i0:i1] + margin
        h = xp.zeros((i1 - i0,), dtype=xp.bool, device=device_of(p))
        if scene.n_boxes:
            h = h | xp.any(_box_dist2(x, bc, bh, xp) <= (rr * rr)[:, None], axis=1)
        if scene.n_spheres:
            d = x - sc
            lim = rr[:, None] + sr[None, :]
            h = h | xp.any(_sq(d) <= lim * lim, axis=1)
        out.append(h)
    hit = out[0] if len(out) == 1 else xp.concat(out)
    return xp.reshape(hit, batch)


def _segment_box_dist2(a: Any, d: Any, c: Any, h: Any, xp: Any) -> Any:
    """Exact squared distance from segments ``a + t d`` (t in [0, 1]) to boxes.

    ``a``, ``d`` and the box centres ``c`` and half sizes ``h`` broadcast together to
    (..., D); returns (...).
    """
    lo = c - h
    hi = c + h
    nz = d != 0
    dsafe = xp.where(nz, d, 1.0)
    t_lo = xp.where(nz, (lo - a) / dsafe, 0.0)
    t_hi = xp.where(nz, (hi - a) / dsafe, 0.0)
    z = xp.zeros_like(t_lo[..., :1])
    knots = xp.concat([z, z + 1.0, t_lo, t_hi], axis=-1)  # (..., 2 + 2D)
    knots = xp.sort(xp.minimum(xp.maximum(knots, 0.0), 1.0), axis=-1)
    k0 = knots[..., :-1]
    k1 = knots[..., 1:]
    mid = 0.5 * (k0 + k1)  # (..., P): one point inside each piece
    a4 = a[..., None, :]
    d4 = d[..., None, :]
    lo4 = lo[..., None, :]
    hi4 = hi[..., None, :]
    x = a4 + mid[..., None] * d4  # (..., P, D)
    above = x > hi4
    below = x < lo4
    e = xp.where(above, hi4, lo4)
    w = xp.where(above | below, d4, 0.0)
    num = -_dot(w, a4 - e)
    den = _dot(w, d4)
    ts = xp.where(den > 0, num / xp.where(den > 0, den, 1.0), mid)
    ts = xp.minimum(xp.maximum(ts, k0), k1)  # the piece's minimiser
    cand = xp.concat([ts, knots], axis=-1)
    pts = a4 + cand[..., None] * d4
    g = _box_dist2(pts, c[..., None, :], h[..., None, :], xp)
    return xp.min(g, axis=-1)


def _row_any(flags: Any, counts: Any, xp: Any) -> Any:
    """``any`` over consecutive runs of ``counts[i]`` flags (all on the device)."""
    dev = device_of(flags)
    c = xp.cumulative_sum(xp.astype(flags, xp.int64), axis=0)
    c0 = xp.concat([xp.zeros((1,), dtype=xp.int64, device=dev), c])
    ends = xp.cumulative_sum(xp.astype(counts, xp.int64), axis=0)
    starts = ends - xp.astype(counts, xp.int64)
    return (xp.take(c0, ends) - xp.take(c0, starts)) > 0


def _segments_hit_boxes(a3: Any, d3: Any, rr: Any, bc: Any, bh: Any, xp: Any) -> Any:
    """Segments (n, 1, D) within ``rr`` (n,) of a box: exact distances only where a cheap
    bound cannot decide (the segment lies in the ball of radius ``|d| / 2`` round its
    midpoint: farther than that plus ``rr`` from the box is free; a midpoint within ``rr``
    hits)."""
    mid = a3 + 0.5 * d3
    half = 0.5 * xp.sqrt(_sq(d3))  # (n, 1)
    dm2 = _box_dist2(mid, bc, bh, xp)  # (n, K)
    r2 = rr[:, None]
    surely = dm2 <= r2 * r2
    lim = half + r2
    amb = (dm2 <= lim * lim) & ~surely
    hit = xp.any(surely, axis=1)
    ii, kk = xp.nonzero(amb)
    if int(ii.shape[0]) == 0:
        return hit
    g = _segment_box_dist2(
        xp.take(a3[:, 0, :], ii, axis=0),
        xp.take(d3[:, 0, :], ii, axis=0),
        xp.take(bc, kk, axis=0),
        xp.take(bh, kk, axis=0),
        xp,
    )
    rp = xp.take(rr, ii)
    return hit | _row_any(g <= rp * rp, xp.sum(xp.astype(amb, xp.int64), axis=1), xp)


def segment_box_distance(a: Any, b: Any, centre: Any, size: Any) -> Any:
    """Exact distance from segments ``a -> b`` (N, D) to boxes (K, D), metres: (N, K)."""
    xp = get_namespace(a, b)
    c = xp.asarray(centre, dtype=xp.float64, device=device_of(a))
    h = xp.asarray(size, dtype=xp.float64, device=device_of(a)) / 2.0
    return xp.sqrt(_segment_box_dist2(a[:, None, :], (b - a)[:, None, :], c, h, xp))


def segments_collide(scene: Scene, a: Any, b: Any, margin: float = 0.0, radius: Any = 0.0) -> Any:
    """Which segments ``a -> b`` pass within ``margin + radius`` of an obstacle (exact).

    Parameters
    ----------
    scene : Scene
    a, b : array (..., 3) or (..., 2)
        Segment ends, metres, same shape.
    margin : float
        Collision margin, metres, ``>= 0``.
    radius : float or array broadcastable to ``a.shape[:-1]``
        Radius of the swept sphere (a capsule), metres.

    Returns
    -------
    array of bool (...,)
    """
    margin = _check_margin(margin)
    xp, a = _query(a, "a")
    _, b = _query(b if get_namespace(b) is xp else xp.asarray(to_numpy(b)), "b")
    if tuple(a.shape) != tuple(b.shape):
        raise InvalidInput("b", f"shape {tuple(b.shape)} differs from a's {tuple(a.shape)}")
    batch = tuple(a.shape[:-1])
    dim = int(a.shape[-1])
    r = _radius(radius, xp, a, batch, "radius")
    A = xp.reshape(a, (-1, dim))
    D = xp.reshape(b, (-1, dim)) - A
    n = int(A.shape[0])
    bc, bh, sc, sr = _scene_arrays(scene, xp, a, dim)
    if n == 0 or scene.n_obstacles == 0:
        return xp.zeros(batch, dtype=xp.bool, device=device_of(a))
    per = (scene.n_boxes + scene.n_spheres) * dim
    out = []
    for i0, i1 in _chunks(n, per):
        a3 = A[i0:i1, None, :]
        d3 = D[i0:i1, None, :]
        rr = r[i0:i1] + margin
        h = xp.zeros((i1 - i0,), dtype=xp.bool, device=device_of(a))
        if scene.n_boxes:
            h = h | _segments_hit_boxes(a3, d3, rr, bc, bh, xp)
        if scene.n_spheres:
            dd = _sq(d3)  # (n, 1)
            t = _dot(sc - a3, d3) / xp.where(dd > 0, dd, 1.0)
            t = xp.where(dd > 0, xp.minimum(xp.maximum(t, 0.0), 1.0), 0.0)
            q = a3 + t[..., None] * d3 - sc
            lim = rr[:, None] + sr[None, :]
            h = h | xp.any(_sq(q) <= lim * lim, axis=1)
        out.append(h)
    hit = out[0] if len(out) == 1 else xp.concat(out)
    return xp.reshape(hit, batch)


# ------------------------------------------------------------------------------------------
# Robots: configurations and edges
# ------------------------------------------------------------------------------------------


def _configs(model: RobotModel, q: Any, field: str, xp: Any = None, like: Any = None) -> Any:
    """``q`` as float64 (..., dof) of its namespace (or of ``xp`` on ``like``'s device)."""
    if xp is None:
        if not hasattr(q, "shape") or isinstance(q, np.generic):
            q = np.asarray(q, dtype=np.float64)
        xp = get_namespace(q)
        q = xp.asarray(q, dtype=xp.float64)
    elif get_namespace(q) is not xp or not hasattr(q, "shape"):
        q = xp.asarray(np.asarray(to_numpy(q), dtype=np.float64), device=device_of(like))
    if q.ndim < 1 or int(q.shape[-1]) != model.dof:
        raise InvalidInput(
            field, f"expected shape (..., {model.dof}) for {model.name}, got {tuple(q.shape)}"
        )
    if math.prod(q.shape[:-1]) > MAX_QUERIES:
        raise InvalidInput(field, f"more than {MAX_QUERIES} configurations in one call")
    if not bool(xp.all(xp.isfinite(q))):
        raise InvalidInput(field, "contains NaN or inf")
    return q


_PAIRS: dict[int, tuple[RobotModel, np.ndarray, np.ndarray]] = {}


def self_collision_pairs(model: RobotModel) -> tuple[np.ndarray, np.ndarray]:
    """Sphere index pairs ``(i, j)`` (i < j) checked for self-collision: spheres of
    different links whose link pair is not in ``model.skip_pairs``. Host arrays (P,)."""
    hit = _PAIRS.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1], hit[2]
    pi, pj = _self_pairs(model)
    if len(_PAIRS) > 64:
        _PAIRS.clear()
    _PAIRS[id(model)] = (model, pi, pj)
    return pi, pj


def _self_pairs(model: RobotModel) -> tuple[np.ndarray, np.ndarray]:
    S = int(model.sphere_radii.shape[0])
    if model.kind != "arm" or S < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    i, j = np.triu_indices(S, 1)
    li, lj = model.sphere_link[i], model.sphere_link[j]
    lo, hi = np.minimum(li, lj), np.maximum(li, lj)
    skip = {(int(a), int(b)) for a, b in model.skip_pairs}
    keep = (lo != hi) & np.array(
        [(int(a), int(b)) not in skip for a, b in zip(lo, hi, strict=True)], dtype=bool
    )
    return i[keep].astype(np.int64), j[keep].astype(np.int64)


def _self_collide(model: RobotModel, centres: Any, radii: Any, xp: Any) -> Any:
    """Self-collision of sphere sets (..., S, 3): True where two checked spheres overlap."""
    pi, pj = self_collision_pairs(model)
    batch = tuple(centres.shape[:-2])
    if pi.size == 0:
        return xp.zeros(batch, dtype=xp.bool, device=device_of(centres))
    dev = device_of(centres)
    ii = xp.asarray(pi, device=dev)
    jj = xp.asarray(pj, device=dev)
    d = xp.take(centres, ii, axis=-2) - xp.take(centres, jj, axis=-2)
    lim = xp.take(radii, ii) + xp.take(radii, jj)
    return xp.any(_sq(d) < lim * lim, axis=-1)


def configs_collide(
    model: RobotModel,
    scene: Scene,
    q: Any,
    margin: float = 0.0,
    self_collision: bool = True,
) -> Any:
    """Which configurations collide with the scene (or with the robot itself).

    Parameters
    ----------
    model : RobotModel
    scene : Scene
    q : array (..., dof)
        Positions (mobile robots, metres) or joint angles (arms, radians).
    margin : float
        Collision margin, metres, ``>= 0``.
    self_collision : bool
        Arms: also check sphere pairs of non-adjacent links (``model.skip_pairs`` skipped).

    Returns
    -------
    array of bool (...,)
    """
    margin = _check_margin(margin)
    q = _configs(model, q, "q")
    xp = get_namespace(q)
    if model.kind == "mobile":
        return points_collide(scene, q, margin, model.radius)
    centres, radii = link_spheres(model, q)
    radii = xp.asarray(radii, dtype=xp.float64, device=device_of(centres))
    hit = xp.any(points_collide(scene, centres, margin, radii), axis=-1)
    if self_collision:
        hit = hit | _self_collide(model, centres, radii, xp)
    return hit


def _per_edge_any(flags: Any, counts: np.ndarray, xp: Any) -> Any:
    """``any`` over consecutive runs of ``counts[e]`` flags (host counts, device flags)."""
    dev = device_of(flags)
    c = xp.cumulative_sum(xp.astype(flags, xp.int64), axis=0)
    c0 = xp.concat([xp.zeros((1,), dtype=xp.int64, device=dev), c])
    ends = np.cumsum(counts)
    starts = ends - counts
    total = xp.take(c0, xp.asarray(ends, device=dev)) - xp.take(c0, xp.asarray(starts, device=dev))
    return total > 0


def edge_steps(model: RobotModel, qa: Any, qb: Any, resolution: float) -> np.ndarray:
    """Number of interpolation steps per arm edge: ``ceil(max_j |qb_j - qa_j| / resolution)``
    (at least 1), host int64 (E,)."""
    d = to_numpy(qb) - to_numpy(qa)
    n = np.ceil(np.max(np.abs(d.reshape(-1, model.dof)), axis=-1) / resolution)
    return np.maximum(n, 1).astype(np.int64)


def edges_collide(
    model: RobotModel,
    scene: Scene,
    qa: Any,
    qb: Any,
    margin: float = 0.0,
    resolution: float = 0.02,
    sweep_tolerance: float = 0.0,
    self_collision: bool = True,
) -> Any:
    """Which straight edges ``qa -> qb`` (in configuration space) collide, all in one batch.

    Parameters
    ----------
    model : RobotModel
    scene : Scene
    qa, qb : array (..., dof)
        Edge ends.
    margin : float
        Collision margin, metres, ``>= 0``.
    resolution : float
        Arms: largest joint step between checked samples, radians (> 0). Mobile edges are
        exact (a capsule against the inflated obstacles) and ignore it.
    sweep_tolerance : float
        Arms: extra radius (metres) on the capsules swept by each link sphere between
        consecutive samples (covers the deviation of the motion from the chord; default 0).
    self_collision : bool
        Arms: check self-collision at every sample.

    Returns
    -------
    array of bool (...,)
        True where the edge touches an inflated obstacle (or self-collides), ends included.
    """
    margin = _check_margin(margin)
    qa = _configs(model, qa, "qa")
    xp = get_namespace(qa)
    qb = _configs(model, qb, "qb", xp=xp, like=qa)
    if tuple(qa.shape) != tuple(qb.shape):
        raise InvalidInput("qb", f"shape {tuple(qb.shape)} differs from qa's {tuple(qa.shape)}")
    if model.kind == "mobile":
        return segments_collide(scene, qa, qb, margin, model.radius)
    res = _scalar(resolution, "resolution")
    if res <= 0:
        raise InvalidInput("resolution", "must be > 0 radians")
    tol = _scalar(sweep_tolerance, "sweep_tolerance")
    if tol < 0:
        raise InvalidInput("sweep_tolerance", "must be >= 0 metres")
    batch = tuple(qa.shape[:-1])
    A = xp.reshape(qa, (-1, model.dof))
    B = xp.reshape(qb, (-1, model.dof))
    E = int(A.shape[0])
    dev = device_of(qa)
    if E == 0:
        return xp.zeros(batch, dtype=xp.bool, device=dev)
    n = edge_steps(model, A, B, res)  # (E,) steps; n + 1 samples per edge
    m = n + 1
    T = int(m.sum())
    if T > MAX_QUERIES:
        raise InvalidInput("resolution", f"more than {MAX_QUERIES} samples; use a coarser step")
    idx = np.repeat(np.arange(E), m)
    start = np.cumsum(m) - m
    t = (np.arange(T) - start[idx]) / n[idx]
    ix = xp.asarray(idx, device=dev)
    tt = xp.asarray(t, dtype=xp.float64, device=dev)
    Q = xp.take(A, ix, axis=0) + tt[:, None] * xp.take(B - A, ix, axis=0)  # (T, dof)
    centres, radii = link_spheres(model, Q)  # (T, S, 3), (S,)
    radii = xp.asarray(radii, dtype=xp.float64, device=dev)
    # consecutive samples of the same edge: sample k -> k + 1 for k not the last of its edge
    last = np.cumsum(m) - 1
    keep = np.ones(T, dtype=bool)
    keep[last] = False
    first = xp.asarray(np.flatnonzero(keep), device=dev)
    ca = xp.take(centres, first, axis=0)
    cb = xp.take(centres, first + 1, axis=0)
    swept = xp.any(segments_collide(scene, ca, cb, margin, radii + tol), axis=-1)  # (sum n,)
    hit = _per_edge_any(swept, n, xp)
    if self_collision:
        hit = hit | _per_edge_any(_self_collide(model, centres, radii, xp), m, xp)
    return xp.reshape(hit, batch)
