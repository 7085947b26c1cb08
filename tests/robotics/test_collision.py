"""Batched collision checks against independent references written here: closed-form point
distances, dense sampling of segments, and a per-pair Python loop for self-collision."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.robotics import collision as C
from prism_kernels.robotics.kinematics import link_spheres
from prism_kernels.robotics.models import MOBILE, PANDA, UR5E, mobile_model


def _scene(rng: np.random.Generator, k: int = 15, m: int = 5) -> C.Scene:
    return C.Scene(
        rng.uniform(-1.5, 1.5, (k, 3)),
        rng.uniform(0.05, 0.8, (k, 3)),
        rng.uniform(-1.5, 1.5, (m, 3)),
        rng.uniform(0.05, 0.4, m),
    )


def _ref_point_dist(scene: C.Scene, p: np.ndarray) -> np.ndarray:
    """Distance from points (N, D) to the nearest obstacle (closed form, loops over obstacles)."""
    D = p.shape[1]
    best = np.full(p.shape[0], np.inf)
    for c, s in zip(scene.box_centres, scene.box_sizes, strict=True):
        e = np.maximum(np.abs(p - c[:D]) - s[:D] / 2, 0.0)
        best = np.minimum(best, np.sqrt((e**2).sum(1)))
    for c, r in zip(scene.sphere_centres, scene.sphere_radii, strict=True):
        best = np.minimum(best, np.linalg.norm(p - c[:D], axis=1) - r)
    return best


def _ref_segment_dist(scene, a, b, n=4001):
    """Dense sampling: distance and the sampling error bound (half a step along the segment)."""
    t = np.linspace(0, 1, n)
    pts = a[:, None, :] + t[None, :, None] * (b - a)[:, None, :]
    d = _ref_point_dist(scene, pts.reshape(-1, a.shape[1])).reshape(a.shape[0], n).min(1)
    return d, np.linalg.norm(b - a, axis=1) / (n - 1) / 2


def test_points_match_closed_form(xp, to_xp, rng):
    sc = _scene(rng)
    p = rng.uniform(-2, 2, (3000, 3))
    r = rng.uniform(0, 0.2, 3000)
    got = to_numpy(C.points_collide(sc, to_xp(p), 0.05, to_xp(r)))
    ref = _ref_point_dist(sc, p) <= 0.05 + r
    assert np.array_equal(got, ref)
    assert got.any() and not got.all()


def test_points_batch_shape_and_2d(xp, to_xp, rng):
    sc = _scene(rng)
    p = rng.uniform(-2, 2, (20, 30, 2))
    got = to_numpy(C.points_collide(sc, to_xp(p), 0.1, 0.2))
    assert got.shape == (20, 30)
    ref = _ref_point_dist(sc, p.reshape(-1, 2)).reshape(20, 30) <= 0.3
    assert np.array_equal(got, ref)


def test_segments_match_dense_sampling(xp, to_xp, rng):
    sc = _scene(rng)
    a = rng.uniform(-2, 2, (600, 3))
    b = a + rng.normal(0, 0.6, (600, 3))
    b[:30] = a[:30]  # degenerate segments (points)
    b[30:60, 1:] = a[30:60, 1:]  # axis-parallel
    lim = 0.03 + 0.1
    got = to_numpy(C.segments_collide(sc, to_xp(a), to_xp(b), 0.03, 0.1))
    d, err = _ref_segment_dist(sc, a, b)
    # exact check: a hit means the true distance <= lim, a miss means > lim
    assert np.all(d[got] - err[got] <= lim + 1e-12)
    assert np.all(d[~got] > lim - 1e-12)
    assert 0.1 < got.mean() < 0.9


def test_segment_box_distance_exact(rng):
    a = rng.uniform(-2, 2, (200, 3))
    b = rng.uniform(-2, 2, (200, 3))
    c = rng.uniform(-1, 1, (7, 3))
    s = rng.uniform(0.1, 1, (7, 3))
    got = C.segment_box_distance(a, b, c, s)
    for k in range(7):
        sc = C.Scene(c[k : k + 1], s[k : k + 1])
        d, err = _ref_segment_dist(sc, a, b, n=20001)
        assert np.all(got[:, k] <= d + 1e-12)
        assert np.all(got[:, k] >= d - err - 1e-12)


def test_backends_agree(to_xp, rng):
    sc = _scene(rng)
    a = rng.uniform(-2, 2, (500, 3))
    b = rng.uniform(-2, 2, (500, 3))
    ref = C.segments_collide(sc, a, b, 0.02, 0.05)
    assert np.array_equal(to_numpy(C.segments_collide(sc, to_xp(a), to_xp(b), 0.02, 0.05)), ref)


def test_empty_and_single(xp, to_xp, rng):
    sc = _scene(rng)
    assert to_numpy(C.points_collide(sc, to_xp(np.zeros((0, 3))))).shape == (0,)
    assert to_numpy(
        C.segments_collide(sc, to_xp(np.zeros((0, 3))), to_xp(np.zeros((0, 3))))
    ).shape == (0,)
    one = to_numpy(C.points_collide(sc, to_xp(sc.box_centres[0])))
    assert one.shape == () and bool(one)
    empty = C.Scene()
    assert not to_numpy(
        C.segments_collide(empty, to_xp(rng.normal(size=(5, 3))), to_xp(rng.normal(size=(5, 3))))
    ).any()


def test_bad_input(rng):
    sc = _scene(rng)
    p = np.zeros((4, 3))
    p[1, 2] = np.nan
    with pytest.raises(InvalidInput) as e:
        C.points_collide(sc, p)
    assert e.value.field == "p"
    with pytest.raises(InvalidInput) as e:
        C.segments_collide(sc, np.zeros((4, 3)), np.zeros((3, 3)))
    assert e.value.field == "b"
    with pytest.raises(InvalidInput) as e:
        C.points_collide(sc, np.zeros((4, 4)))
    assert e.value.field == "p"
    with pytest.raises(InvalidInput) as e:
        C.points_collide(sc, np.zeros((4, 3)), margin=-1)
    assert e.value.field == "margin"
    with pytest.raises(InvalidInput) as e:
        C.points_collide(sc, np.zeros((4, 3)), radius=np.ones(5))
    assert e.value.field == "radius"
    with pytest.raises(InvalidInput) as e:
        C.configs_collide(PANDA, sc, np.zeros((2, 6)))
    assert e.value.field == "q"


def test_scene_from_obstacles_and_errors():
    sc = C.Scene.from_obstacles(
        [
            {"position": [1, 2, 3], "size": [0.2, 0.4, 0.6], "obstacle_type": "box"},
            {"position": [0, 0, 1], "size": 0.5, "obstacle_type": "sphere"},
            {"position": [0, 1, 0], "radius": 0.1, "obstacle_type": "sphere"},
        ]
    )
    assert sc.n_boxes == 1 and sc.n_spheres == 2
    assert np.allclose(sc.sphere_radii, [0.25, 0.1])
    back = C.Scene.from_obstacles(sc.to_obstacles())
    assert np.array_equal(back.box_sizes, sc.box_sizes)
    assert np.array_equal(back.sphere_radii, sc.sphere_radii)
    # just inside the box face collides, just outside does not (unless the margin reaches)
    assert C.points_collide(sc, np.array([1.1 - 1e-9, 2, 3]))
    assert not C.points_collide(sc, np.array([1.1 + 1e-6, 2, 3]))
    assert C.points_collide(sc, np.array([1.1 + 1e-6, 2, 3]), margin=2e-6)
    for bad, field in (
        ([{"position": [0, 0, 0], "size": [1, -1, 1]}], "obstacles.0.size"),
        ([{"position": [0, 0], "size": [1, 1]}, {"position": [0, np.nan, 0], "size": [1, 1, 1]}],
         "obstacles.1.position"),
        ([{"position": [0, 0, 0], "size": [1, 1, 1], "obstacle_type": "cone"}],
         "obstacles.0.obstacle_type"),
        ([{"position": [0, 0, 0], "size": [1, 2, 3], "obstacle_type": "sphere"}], "obstacles.0.size"),
        ([{"position": [0, 0, 0], "radius": -1, "obstacle_type": "sphere"}], "obstacles.0.radius"),
        ("boxes", "obstacles"),
    ):  # fmt: skip
        with pytest.raises(InvalidInput) as e:
            C.Scene.from_obstacles(bad)
        assert e.value.field == field
    with pytest.raises(InvalidInput) as e:
        C.Scene(np.zeros((2, 3)), np.ones((3, 3)))
    assert e.value.field == "box_sizes"


def _ref_self(model, centres, radii):
    """Python loop over sphere pairs of links not listed in skip_pairs."""
    skip = {tuple(p) for p in model.skip_pairs}
    out = np.zeros(centres.shape[0], dtype=bool)
    S = radii.size
    for i in range(S):
        for j in range(i + 1, S):
            li, lj = sorted((int(model.sphere_link[i]), int(model.sphere_link[j])))
            if li == lj or (li, lj) in skip:
                continue
            d = np.linalg.norm(centres[:, i] - centres[:, j], axis=1)
            out |= d < radii[i] + radii[j]
    return out


@pytest.mark.parametrize("model", [PANDA, UR5E], ids=lambda m: m.name)
def test_arm_configs_match_reference(model, xp, to_xp, rng):
    sc = C.Scene([[0.5, 0.0, 0.3], [0.0, -0.5, 0.6]], [[0.2, 0.6, 0.6], [0.5, 0.1, 0.4]],
                 [[-0.4, 0.3, 0.5]], [0.15])  # fmt: skip
    lo, hi = model.joint_limits.T
    q = rng.uniform(lo, hi, (400, model.dof))
    got = to_numpy(C.configs_collide(model, sc, to_xp(q), 0.02))
    cen, rad = link_spheres(model, q)
    env = (_ref_point_dist(sc, cen.reshape(-1, 3)).reshape(cen.shape[:2]) <= rad + 0.02).any(1)
    ref = env | _ref_self(model, cen, rad)
    assert np.array_equal(got, ref)
    assert 0 < got.mean() < 1
    assert not bool(C.configs_collide(model, C.Scene(), model.home))
    no_self = to_numpy(C.configs_collide(model, sc, to_xp(q), 0.02, self_collision=False))
    assert np.array_equal(no_self, env)


def test_mobile_configs_and_edges(xp, to_xp, rng):
    sc = _scene(rng)
    q = rng.uniform(-2, 2, (500, 3))
    got = to_numpy(C.configs_collide(MOBILE, sc, to_xp(q), 0.05))
    assert np.array_equal(got, _ref_point_dist(sc, q) <= 0.05 + MOBILE.radius)
    qb = q + rng.normal(0, 0.5, q.shape)
    e = to_numpy(C.edges_collide(MOBILE, sc, to_xp(q), to_xp(qb), 0.05))
    assert np.array_equal(e, C.segments_collide(sc, q, qb, 0.05, MOBILE.radius))
    planar = mobile_model(bounds=[[-3, 3], [-3, 3]])
    q2 = rng.uniform(-2, 2, (300, 2))
    got2 = to_numpy(C.configs_collide(planar, sc, to_xp(q2)))
    assert np.array_equal(got2, _ref_point_dist(sc, q2) <= planar.radius)


def test_arm_edges_dense_reference(xp, to_xp, rng):
    """Edges reported free have no sample within the margin at a 10x finer step; edges
    with a colliding sample are reported."""
    sc = C.Scene([[0.45, 0.0, 0.4], [0.0, 0.5, 0.3]], [[0.1, 0.8, 0.8], [0.6, 0.1, 0.6]])
    lo, hi = PANDA.joint_limits.T
    qa = rng.uniform(lo, hi, (60, 7))
    qb = np.clip(qa + rng.uniform(-0.6, 0.6, qa.shape), lo, hi)
    res, margin = 0.05, 0.01
    got = to_numpy(C.edges_collide(PANDA, sc, to_xp(qa), to_xp(qb), margin, res))
    n = 10 * int(np.ceil(np.abs(qb - qa).max() / res))
    t = np.linspace(0, 1, n + 1)
    Q = qa[:, None, :] + t[None, :, None] * (qb - qa)[:, None, :]
    cen, rad = link_spheres(PANDA, Q.reshape(-1, 7))
    dist = _ref_point_dist(sc, cen.reshape(-1, 3)).reshape(cen.shape[:2])
    # chords between samples 0.05 rad apart leave the true motion by <= L * 0.05**2 / 8
    # (0.4 mm at L = 1.2 m): anything deeper than that is found
    env = (dist <= rad + margin - 4e-4).any(1)
    dense = (env | _ref_self(PANDA, cen, rad)).reshape(60, n + 1)
    assert not np.any(dense.any(1) & ~got)  # nothing the dense check sees is missed
    assert got.any() and not got.all()
    # the endpoints alone are reported
    ends = to_numpy(C.configs_collide(PANDA, sc, to_xp(np.vstack([qa, qb])), margin))
    assert np.all(got[ends[:60] | ends[60:]])
    with pytest.raises(InvalidInput) as e:
        C.edges_collide(PANDA, sc, qa, qb, margin, resolution=0)
    assert e.value.field == "resolution"
    assert to_numpy(C.edges_collide(PANDA, sc, to_xp(qa[:0]), to_xp(qb[:0]))).shape == (0,)


def test_huge_batch_refused(monkeypatch, rng):
    monkeypatch.setattr(C, "MAX_QUERIES", 100)
    with pytest.raises(InvalidInput) as e:
        C.points_collide(_scene(rng), np.zeros((101, 3)))
    assert e.value.field == "p"
    with pytest.raises(InvalidInput) as e:
        C.edges_collide(PANDA, C.Scene(), np.zeros((2, 7)) - 0.5, np.full((2, 7), -0.1), 0.0, 1e-3)
    assert e.value.field == "resolution"


def test_chunked_equals_unchunked(monkeypatch, rng):
    sc = _scene(rng)
    a = rng.uniform(-2, 2, (300, 3))
    b = a + rng.normal(0, 0.5, (300, 3))
    full = C.segments_collide(sc, a, b, 0.02, 0.1)
    pts = C.points_collide(sc, a, 0.02, 0.1)
    monkeypatch.setattr(C, "CHUNK_PAIRS", 64)
    assert np.array_equal(C.segments_collide(sc, a, b, 0.02, 0.1), full)
    assert np.array_equal(C.points_collide(sc, a, 0.02, 0.1), pts)
