"""Cubical persistence: our H0 (and H1 by duality) against GUDHI, features against closed forms."""

from __future__ import annotations

import json
import math

import gudhi
import numpy as np
import pytest

from prism_kernels import compiled
from prism_kernels.errors import InvalidInput
from prism_kernels.pixels import topology as T


def _rows(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, dtype=float).reshape(-1, 2)
    return d[np.lexsort((d[:, 1], d[:, 0]))]


def _assert_same(ours: np.ndarray, ref: np.ndarray, exact_bottleneck: bool = True) -> None:
    """Same diagram: bottleneck distance 0 and the same multiset of points.

    GUDHI's exact bottleneck (``e=0``) is slow on thousands of points; there the default
    approximation (additive error of the smallest positive double) is used.
    """
    if exact_bottleneck:
        assert gudhi.bottleneck_distance(ours, ref, e=0) == 0.0
    else:
        assert gudhi.bottleneck_distance(ours, ref) < 1e-300
    np.testing.assert_array_equal(_rows(ours), _rows(ref))


FRAMES = [
    ("noise", lambda r: r.random((23, 31))),
    ("ties", lambda r: r.integers(0, 6, (20, 17)).astype(float)),
    ("smooth", lambda r: np.cumsum(np.cumsum(r.normal(size=(40, 40)), 0), 1)),
    ("uint16", lambda r: r.integers(1000, 1100, (32, 24)).astype(np.uint16)),
]


@pytest.mark.parametrize("connectivity", [8, 4])
@pytest.mark.parametrize("filtration", ["sublevel", "superlevel"])
@pytest.mark.parametrize("name,make", FRAMES, ids=[f[0] for f in FRAMES])
def test_h0_h1_equal_gudhi(rng, name, make, connectivity, filtration):
    img = make(rng)
    g0, g1 = T.gudhi_diagrams(img, filtration, connectivity)
    o0 = T.h0_diagrams(img, connectivity, filtration)[0]
    o1 = T.h1_diagrams(img, connectivity, filtration)[0]
    _assert_same(o0, g0)
    _assert_same(o1, g1)
    assert np.sum(np.isinf(o0[:, 1])) == 1  # one essential class


def test_h0_large_random_equal_gudhi(rng):
    img = rng.random((160, 128))
    g0, _ = T.gudhi_diagrams(img)
    o0 = T.h0_diagrams(img)[0]
    assert len(o0) > 500
    _assert_same(o0, g0, exact_bottleneck=False)


def test_sequential_fallback_equal_gudhi(rng, monkeypatch):
    # The array formulation (without numba), forced into its documented sequential
    # union-find fallback after the first Boruvka round.
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    monkeypatch.setattr(T, "_STALL_FRACTION", 1.0)
    img = rng.random((48, 40))
    for conn in (8, 4):
        g0, g1 = T.gudhi_diagrams(img, connectivity=conn)
        _assert_same(T.h0_diagrams(img, conn)[0], g0)
        _assert_same(T.h1_diagrams(img, conn)[0], g1)


def test_batch_equals_frame_by_frame(rng):
    stack = rng.random((5, 30, 20))
    stack[2] = 7.0  # a constant frame inside a batch
    batch = T.h0_diagrams(stack)
    for b in range(5):
        _assert_same(batch[b], T.h0_diagrams(stack[b])[0])
    assert batch[2].tolist() == [[7.0, math.inf]]
    h1 = T.h1_diagrams(stack)
    for b in range(5):
        _assert_same(h1[b], T.gudhi_diagrams(stack[b])[1])


def test_superlevel_is_negated_sublevel_of_negative(rng):
    img = rng.normal(size=(25, 25))
    sup = T.persistence_diagram(img, filtration="superlevel")
    sub = T.persistence_diagram(-img, filtration="sublevel")
    np.testing.assert_array_equal(sup[:, 0], sub[:, 0])
    np.testing.assert_array_equal(sup[:, 1:], -sub[:, 1:])
    fin = np.isfinite(sup[:, 2])
    assert np.all(sup[fin, 1] >= sup[fin, 2])
    assert np.all(sup[~fin, 2] == -np.inf)


def _ring(n=41, r0=8.0, r1=13.0):
    yy, xx = np.mgrid[:n, :n] - n // 2
    rr = np.hypot(yy, xx)
    return np.where((rr >= r0) & (rr <= r1), 10.0, 0.0)


def test_betti_numbers_of_simple_shapes():
    ring = _ring()
    # superlevel at 5: the ring itself, one component and one hole
    assert T.betti_numbers(ring, 5.0, filtration="superlevel") == [1, 1, 0]
    # sublevel at 5: the disc inside and the outside are two components; the outside
    # region goes round the ring inside the frame, so it holds one loop
    assert T.betti_numbers(ring, 5.0, filtration="sublevel") == [2, 1, 0]
    assert T.betti_numbers(ring, 15.0, filtration="sublevel") == [1, 0, 0]
    blobs = np.zeros((30, 40))
    blobs[5:12, 5:12] = 3.0
    blobs[15:25, 22:35] = 4.0
    assert T.betti_numbers(blobs, 2.0, filtration="superlevel") == [2, 0, 0]
    assert T.betti_numbers(blobs, 3.5, filtration="superlevel") == [1, 0, 0]
    # diagonal neighbours touch with pixels as squares (8) but not as vertices (4)
    diag = np.zeros((4, 4))
    diag[1, 1] = diag[2, 2] = 1.0
    assert T.betti_numbers(diag, 0.5, "superlevel", connectivity=8)[0] == 1
    assert T.betti_numbers(diag, 0.5, "superlevel", connectivity=4)[0] == 2


def test_persistent_entropy_total_persistence_closed_form():
    d = np.array([[0.0, 1.0], [0.0, 3.0], [1.0, np.inf]])
    p = np.array([0.25, 0.75])
    assert T.persistent_entropy(d) == pytest.approx(-np.sum(p * np.log(p)), abs=1e-15)
    assert T.total_persistence(d) == 4.0
    assert T.total_persistence(d, p=2) == 10.0
    assert T.persistent_entropy(np.empty((0, 2))) == 0.0
    # n equal bars: log(n)
    assert T.persistent_entropy(np.tile([[0.0, 2.0]], (7, 1))) == pytest.approx(math.log(7))


def test_betti_curve_and_landscape_hand_values():
    d = np.array([[0.0, 2.0], [1.0, 4.0], [0.5, np.inf]])
    assert T.betti_curve(d, [-1, 0, 0.5, 1.5, 2, 3.9, 4, 100]).tolist() == [0, 1, 2, 3, 2, 2, 1, 1]
    sup = -d  # superlevel reading: alive for death < t <= birth
    assert T.betti_curve(sup, [0, -0.5, -2, -4]).tolist() == [1, 2, 2, 1]
    lam = T.persistence_landscape(d, [0.0, 1.0, 1.5, 2.5, 5.0], k=2)
    np.testing.assert_allclose(lam[0], [0.0, 1.0, 0.5, 1.5, 0.0])
    np.testing.assert_allclose(lam[1], [0.0, 0.0, 0.5, 0.0, 0.0])
    img = T.persistence_image(d, resolution=8)
    assert img.shape == (8, 8) and np.all(img >= 0) and img.sum() > 0


def test_betti_curve_agrees_with_direct_component_count(rng):
    from scipy import ndimage

    img = ndimage.gaussian_filter(rng.normal(size=(60, 60)), 3)
    dg = T.persistence_diagram(img, filtration="superlevel")
    for t in np.quantile(img, [0.5, 0.8, 0.95]):
        _, n8 = ndimage.label(img >= t, structure=np.ones((3, 3)))
        assert T.betti_curve(dg[dg[:, 0] == 0, 1:], [t])[0] == n8


def test_edge_cases():
    const = np.full((6, 9), 3.0)
    dg = T.persistence_diagram(const)
    assert dg.tolist() == [[0.0, 3.0, math.inf]]
    one = T.persistence_diagram(np.array([[5.0]]))
    assert one.tolist() == [[0.0, 5.0, math.inf]]
    line = np.array([[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]])
    _assert_same(T.h0_diagrams(line)[0], T.gudhi_diagrams(line)[0])
    with pytest.raises(InvalidInput):
        T.persistence_diagram(np.array([[1.0, np.nan]]))
    with pytest.raises(InvalidInput):
        T.persistence_diagram(np.array([[1.0, np.inf]]))
    with pytest.raises(InvalidInput):
        T.persistence_diagram(np.empty((0, 4)))
    with pytest.raises(InvalidInput):
        T.persistence_diagram(np.zeros(5))
    with pytest.raises(InvalidInput):
        T.h0_diagrams(np.zeros((3, 3)), connectivity=6)
    with pytest.raises(InvalidInput):
        T.h0_diagrams(np.zeros((3, 3)), filtration="up")


def test_torch_input_matches_numpy(rng):
    torch = pytest.importorskip("torch")
    img = rng.random((20, 20))
    _assert_same(T.h0_diagrams(torch.as_tensor(img))[0], T.h0_diagrams(img)[0])


def _point_key(p):
    return (p["dimension"], p["birth"], -math.inf if p["death"] is None else p["death"])


def test_tda_summary_json_contract(rng):
    img = rng.integers(0, 1000, (30, 30)).astype(np.uint16)
    s = T.tda_summary(img, threshold=500.0, max_points=50)
    json.dumps(s, allow_nan=False)
    pd = s["persistence_diagram"]
    assert len(pd) == 50
    assert {"dimension", "birth", "death", "persistence"} <= set(pd[0])
    ess = [p for p in pd if p["death"] is None]
    assert len(ess) == 1 and ess[0]["dimension"] == 0 and ess[0]["birth"] == float(img.max())
    life = [p["persistence"] for p in pd if p["persistence"] is not None]
    assert life == sorted(life, reverse=True)
    full = T.persistence_diagram(img, filtration="superlevel")
    assert s["num_points"] == len(full)
    assert s["betti_numbers"][0] == T.betti_numbers(img, 500.0, "superlevel")[0]
    assert s["connected_components"] == int(np.sum(full[:, 0] == 0))
    s2 = T.tda_summary(img, min_persistence=400.0, max_points=None)
    assert all(
        p["persistence"] is None or p["persistence"] > 400 for p in s2["persistence_diagram"]
    )
    with pytest.raises(InvalidInput):
        T.tda_summary(img, min_persistence=-1)
    g = T.tda_summary(img, threshold=500.0, max_points=None, method="gudhi")
    o = T.tda_summary(img, threshold=500.0, max_points=None)
    for k, v in o.items():
        if k == "persistence_diagram":
            assert sorted(v, key=_point_key) == sorted(g[k], key=_point_key)
        elif isinstance(v, float):
            assert g[k] == pytest.approx(v, rel=1e-12)
        elif k != "method":
            assert g[k] == v
    with pytest.raises(InvalidInput):
        T.tda_summary(img, method="ripser")


# --------------------------------------------------------------- compiled union-find


def _plateaus(rng):
    """Frames full of ties: plateaus, ridges, checkerboards, signed zeros, thin shapes."""
    yy, xx = np.mgrid[0:21, 0:26]
    zeros = np.zeros((9, 9))
    zeros[::2, ::3] = -0.0
    zeros[4, 4] = -1.0
    return {
        "blocks": np.kron(rng.integers(0, 4, (5, 6)), np.ones((4, 4))).astype(float),
        "checker": ((yy + xx) % 2).astype(float),
        "rings": np.round(np.hypot(yy - 10, xx - 12) / 3.0),
        "terraces": np.floor((yy + 2 * xx) / 7.0) % 3,
        "two-level noise": rng.integers(0, 2, (17, 23)).astype(float),
        "signed zeros": zeros,
        "row": rng.integers(0, 3, (1, 40)).astype(float),
        "column": rng.integers(0, 3, (40, 1)).astype(float),
        "2x2": np.array([[1.0, 0.0], [0.0, 1.0]]),
        "constant": np.full((7, 5), -2.5),
    }


@pytest.mark.parametrize("connectivity", [8, 4])
@pytest.mark.parametrize("filtration", ["sublevel", "superlevel"])
def test_compiled_equals_gudhi_on_plateaus_and_edge_cases(rng, connectivity, filtration):
    for name, img in _plateaus(rng).items():
        g0, g1 = T.gudhi_diagrams(img, filtration, connectivity)
        h0, h1 = T.diagrams(img, connectivity, filtration)
        for ours, ref in ((h0[0], g0), (h1[0], g1)):
            assert gudhi.bottleneck_distance(ours, ref, e=0) == 0.0, name
            np.testing.assert_array_equal(_rows(ours), _rows(ref), err_msg=name)


def test_compiled_equals_the_array_formulation(rng, monkeypatch):
    frames = [
        rng.random((30, 41)),
        np.kron(rng.integers(0, 5, (6, 8)), np.ones((3, 3))).astype(float),
    ]
    fast = {
        (c, f): [T.diagrams(img, c, f) for img in frames]
        for c in (8, 4)
        for f in ("sublevel", "superlevel")
    }
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    for (c, f), per_frame in fast.items():
        for img, (h0, h1) in zip(frames, per_frame, strict=True):
            s0, s1 = T.diagrams(img, c, f)
            np.testing.assert_array_equal(_rows(h0[0]), _rows(s0[0]))
            np.testing.assert_array_equal(_rows(h1[0]), _rows(s1[0]))


def test_one_pass_batch_equals_frame_by_frame_and_gudhi(rng):
    stack = np.stack(
        [
            rng.random((24, 28)),
            np.full((24, 28), 3.0),
            rng.integers(0, 3, (24, 28)).astype(float),
            np.cumsum(rng.normal(size=(24, 28)), 1),
        ]
    )
    h0, h1 = T.diagrams(stack)
    assert len(h0) == len(h1) == 4
    for b in range(4):
        g0, g1 = T.gudhi_diagrams(stack[b])
        _assert_same(h0[b], g0)
        _assert_same(h1[b], g1)
        _assert_same(h0[b], T.h0_diagrams(stack[b])[0])
        _assert_same(h1[b], T.h1_diagrams(stack[b])[0])
    assert h1[1].shape == (0, 2) and h0[1].tolist() == [[3.0, math.inf]]
    only0, none1 = T.diagrams(stack, dims=(0,))
    assert none1 == [] and all(np.array_equal(a, b) for a, b in zip(only0, h0, strict=True))


def _assert_batch_equals_gudhi(stack: np.ndarray) -> None:
    """Every frame's H0 and H1 from one batched call equal GUDHI's, for both connectivities and
    both filtrations (the same multisets of points: bottleneck distance 0)."""
    for connectivity in (8, 4):
        for filtration in ("sublevel", "superlevel"):
            h0, h1 = T.diagrams(stack, connectivity, filtration)
            for b in range(len(stack)):
                g0, g1 = T.gudhi_diagrams(stack[b], filtration, connectivity)
                np.testing.assert_array_equal(_rows(h0[b]), _rows(g0))
                np.testing.assert_array_equal(_rows(h1[b]), _rows(g1))


@pytest.mark.parametrize("height", [1, 2, 3, 5])
def test_batches_of_short_frames_equal_gudhi(rng, height):
    """Frames one to a few rows high (the three-row window wraps round), many per batch (the
    pairs buffer grows from frame to frame), every filtration and connectivity."""
    stack = np.concatenate(
        [rng.integers(0, 4, (6, height, 9)).astype(float), rng.random((6, height, 9))]
    )
    _assert_batch_equals_gudhi(stack)


def test_tda_summary_same_list_from_either_code(rng):
    img = rng.integers(0, 20, (40, 40)).astype(float)  # many equal lifetimes
    for filtration in ("superlevel", "sublevel"):
        ours = T.tda_summary(img, filtration=filtration, max_points=100)
        ref = T.tda_summary(img, filtration=filtration, max_points=100, method="gudhi")
        assert ours["persistence_diagram"] == ref["persistence_diagram"]


def test_rows_sparse_and_dense_in_events_equal_gudhi(rng):
    """A smooth ramp with bands of noise: rows with few events (the word scan, widths that
    are not whole words) and rows full of them (the branchless append), in one frame and
    across the frames of a batch that share every buffer."""
    from scipy import ndimage

    for width in (37, 64, 3):
        yy, xx = np.mgrid[0:45, 0:width]
        img = 0.01 * yy + 0.003 * xx + ndimage.gaussian_filter(rng.normal(size=yy.shape), 2)
        img[10:14] = rng.random((4, width))
        img[:, width // 2] += rng.random(45)
        stack = np.stack([img, rng.random(img.shape), np.round(img, 1), img[::-1].copy()])
        _assert_batch_equals_gudhi(stack)


def test_larger_frames_equal_gudhi(rng):
    """Frames big enough that the union-find outgrows the caches (the prefetch path)."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(rng.normal(size=(180, 210)), 4)
    noise = rng.random((150, 170))
    for img in (smooth, noise):
        for filtration in ("sublevel", "superlevel"):
            g0, g1 = T.gudhi_diagrams(img, filtration)
            h0, h1 = T.diagrams(img, 8, filtration)
            # the same multisets of points: bottleneck distance 0 by definition
            np.testing.assert_array_equal(_rows(h0[0]), _rows(g0))
            np.testing.assert_array_equal(_rows(h1[0]), _rows(g1))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_refused_anywhere_in_a_batch(rng, bad):
    """The compiled kernel finds NaN/inf itself (first row, last row, a later frame) and the
    refusal counts them, as the validation would."""
    for where in ((0, 0, 0), (2, 6, 4), (2, 0, 8)):
        stack = rng.random((3, 7, 9))
        stack[where] = bad
        stack[1, 3, 3] = bad
        calls = (
            lambda s: T.diagrams(s),
            lambda s: T.h0_diagrams(s, 4, "superlevel"),
            lambda s: T.h1_diagrams(s),
            lambda s: T.persistence_diagram(s[where[0]]),  # noqa: B023 - called at once
        )
        for call in calls:
            with pytest.raises(InvalidInput, match=r"NaN or infinite") as err:
                call(stack)
            assert err.value.field == "frame"
        with pytest.raises(InvalidInput, match=r"contains 2 NaN or infinite"):
            T.diagrams(stack)


def test_extreme_value_ranges_equal_gudhi(rng):
    """Values whose range overflows a double (the sort falls back to the radix sort), a
    range of a few denormals (its bucket scale would be infinite), and clustered values
    (big buckets), against GUDHI."""
    frames = {
        "huge": rng.choice([-1.7e308, -1.0, 0.0, 2.5, 1.7e308], (13, 17)) * rng.random((13, 17)),
        "denormal": rng.integers(0, 9, (12, 15)) * 5e-324,
        "clustered": np.where(rng.random((30, 33)) < 0.9, 1.0, 1e6) + 1e-9 * rng.random((30, 33)),
    }
    for name, img in frames.items():
        for connectivity in (8, 4):
            for filtration in ("sublevel", "superlevel"):
                g0, g1 = T.gudhi_diagrams(img, filtration, connectivity)
                h0, h1 = T.diagrams(img, connectivity, filtration)
                np.testing.assert_array_equal(_rows(h0[0]), _rows(g0), err_msg=name)
                np.testing.assert_array_equal(_rows(h1[0]), _rows(g1), err_msg=name)
