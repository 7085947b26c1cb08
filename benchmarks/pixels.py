"""Pixels benchmarks: ours against scikit-image / SciPy on the same data, one process.

Each case is a ``bench_*`` function ``(quick: bool) -> list[Case]``; :func:`run` calls
every one defined in this module, in definition order, so a new case is one appended
function.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage
from skimage.filters.rank import entropy as sk_entropy
from skimage.measure import label, regionprops
from skimage.morphology import disk as sk_disk

from benchmarks.harness import Case, timeit
from prism_kernels.compiled import engine
from prism_kernels.pixels.entropy import engine as entropy_engine
from prism_kernels.pixels.entropy import local_entropy
from prism_kernels.pixels.hotspots import detect_hotspots
from prism_kernels.pixels.scene import thermal_batch


def bench_entropy(quick: bool) -> list[Case]:
    """Local entropy, uint8, disk radius 7: ours vs ``skimage.filters.rank.entropy``.

    ``engine`` says which path ran: the numba kernel (compiled by the untimed first call)
    or the NumPy fallback.
    """
    n, r = (256, 7) if quick else (1024, 7)
    img = np.random.default_rng(0).integers(0, 256, (n, n), dtype=np.uint8)
    fp = sk_disk(r)
    ours = local_entropy(img, "disk", r)  # also the warm-up: compiles the kernel (not timed)
    repeat = 1 if quick else 3
    t_ours = timeit(lambda: local_entropy(img, "disk", r), repeat=repeat, warmup=0)
    try:
        ref = sk_entropy(img, fp)
        t_peer: float | None = timeit(lambda: sk_entropy(img, fp), repeat=repeat, warmup=0)
        extra = {"max_abs_diff_bits": float(np.abs(ours - ref).max()), "engine": entropy_engine()}
        note = ""
    except Exception as exc:  # a peer failure is reported, not raised
        t_peer, extra, note = None, {}, f"peer failed: {exc!r}"
    return [
        Case(
            "pixels",
            f"local entropy {n}x{n} u8 disk({r})",
            t_ours,
            "skimage.filters.rank.entropy",
            t_peer,
            note,
            extra,
        )
    ]


def _peer_hotspots(frames: np.ndarray, k_sigma: float = 6.0, size: int = 31) -> list[list[tuple]]:
    """Per-frame loop: local-mean background, k-sigma threshold, label, regionprops."""
    out = []
    for f in frames.astype(np.float64):
        resid = f - ndimage.uniform_filter(f, size=size, mode="reflect")
        med = np.median(resid)
        sig = 1.482602218505602 * np.median(np.abs(resid - med))
        lab = label(resid > med + k_sigma * sig, connectivity=2)
        props = regionprops(lab, intensity_image=resid)
        out.append(
            [
                (p.centroid_weighted[1], p.centroid_weighted[0], p.area, p.intensity_max, p.bbox)
                for p in props
            ]
        )
    return out


def _centroid_error(found: list[list[tuple[float, float]]], truths) -> tuple[float, int]:
    errs, missed = [], 0
    for cents, t in zip(found, truths, strict=True):
        if len(cents) == 0:
            missed += len(t.centroids)
            continue
        d = np.linalg.norm(np.asarray(cents)[:, None, :2] - t.centroids[None], axis=2)
        best = d.min(axis=0)
        missed += int((best > 2.0).sum())
        errs.extend(best[best <= 2.0])
    return (float(np.max(errs)) if errs else float("nan")), missed


def bench_hotspots(quick: bool) -> list[Case]:
    """Hotspot pipeline over a batch: ours (the imaging core's detector, batched) vs a
    per-frame scipy/skimage loop.

    The rows share the peer: ours with the peer's background (local mean, the default), and
    ours with a sigma-clipped local mean (more robust near bright hotspots), each with the
    fused detector's default threads (the CPUs this process may use) and with one thread
    (the peer's loop runs on one). ``engine`` says whether the compiled (fused) detector ran.
    """
    b, h, w = (8, 240, 320) if quick else (64, 480, 640)
    frames, truths = thermal_batch(b, h, w, n_hotspots=6, snr=(10, 40), seed=0)
    repeat = 1 if quick else 3
    try:
        peer = _peer_hotspots(frames)
        t_peer: float | None = timeit(lambda: _peer_hotspots(frames), repeat=repeat, warmup=0)
        p_err, p_missed = _centroid_error([[p[:2] for p in f] for f in peer], truths)
        peer_extra = {
            "peer_max_centroid_err_px": p_err,
            "peer_missed": p_missed,
            "peer_detections": int(sum(len(f) for f in peer)),
        }
        note = ""
    except Exception as exc:  # a peer failure is reported, not raised
        t_peer, peer_extra, note = None, {}, f"peer failed: {exc!r}"
    cases = []
    for bg in ("mean", "sigma_clip"):
        for workers in (None, 1):
            det = detect_hotspots(frames, background=bg, workers=workers)
            t_ours = timeit(
                lambda bg=bg, w=workers: detect_hotspots(frames, background=bg, workers=w),
                repeat=repeat,
                warmup=0,
            )
            found = [[hs["centroid"] for hs in f] for f in det.hotspots]
            err, missed = _centroid_error(found, truths)
            extra = {
                "ours_max_centroid_err_px": err,
                "ours_missed": missed,
                "ours_detections": int(sum(det.counts)),
                "engine": engine(),
                **peer_extra,
            }
            threads = "" if workers is None else ", 1 thread"
            cases.append(
                Case(
                    "pixels",
                    f"hotspots {b}x{h}x{w} bg={bg}{threads}",
                    t_ours,
                    "scipy+skimage per-frame loop (bg=mean)",
                    t_peer,
                    note,
                    extra,
                )
            )
    return cases


def run(quick: bool = False) -> list[Case]:
    """Every ``bench_*`` case of this module, in definition order."""
    cases: list[Case] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name, fn in list(globals().items()):
            if name.startswith("bench_") and callable(fn):
                cases.extend(fn(quick))
    return cases
