"""The compiled kernels' switch: lazy compilation, and the background warm-up a server uses."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from prism_kernels import compiled
from prism_kernels.imaging.hotspots import detect
from prism_kernels.pixels import entropy, topology


@pytest.fixture
def warmers(monkeypatch):
    """An empty warmer registry for the test (the real ones compile every kernel)."""
    reg: list = []
    monkeypatch.setattr(compiled, "_WARMERS", reg)
    yield reg
    compiled._READY.set()  # never leave the kernels switched off for later tests


def _rows_sorted(d):
    return d[np.lexsort(d.T[::-1])]


def test_every_kernel_module_registers_a_warmer():
    names = {fn.__module__ for fn in compiled._WARMERS}
    assert {
        "prism_kernels.imaging.boxfilter",
        "prism_kernels.imaging.order",
        "prism_kernels.imaging.hotspots",
        "prism_kernels.pixels.entropy",
        "prism_kernels.pixels.topology",
    } <= names


def test_background_warm_up_switches_the_compiled_paths_off_until_done(warmers):
    seen, release = [], threading.Event()

    def slow_warmer():
        seen.append(compiled.enabled())  # the warming thread runs the compiled paths
        release.wait(10)

    warmers.append(slow_warmer)
    job = compiled.warm_in_background(child=False)
    try:
        assert not compiled.enabled() and compiled.engine() == "numpy"
        assert entropy.engine() == "numpy"
        # Callers meanwhile take the NumPy paths, with the same results.
        rng = np.random.default_rng(0)
        frames = rng.normal(100.0, 2.0, (2, 40, 50))
        frames[:, 20, 20] += 80.0
        during = detect(frames, 6.0)
        f = rng.normal(size=(24, 30))
        dgm_during = topology.diagrams(f)
    finally:
        release.set()
    assert job.wait(10) and job.error is None and job.seconds is not None
    assert seen == [True]
    assert compiled.enabled() and compiled.engine() == "numba"
    after = detect(frames, 6.0)
    np.testing.assert_array_equal(during.hotspots.x, after.hotspots.x)
    for a, b in zip(dgm_during[0] + dgm_during[1], sum(topology.diagrams(f), []), strict=True):
        np.testing.assert_array_equal(_rows_sorted(a), _rows_sorted(b))  # the same pairs


def test_background_warm_up_in_a_child_process(warmers, monkeypatch):
    monkeypatch.setattr(compiled, "cache_is_warm", lambda: False)  # the child must run
    job = compiled.warm_in_background(child=True)
    assert job.wait(120)
    assert job.error is None and compiled.enabled()


def test_the_cache_marker_follows_the_kernel_sources(monkeypatch, tmp_path):
    marker = tmp_path / "warm.json"
    monkeypatch.setattr(compiled, "_marker", lambda: marker)
    assert not compiled.cache_is_warm()  # no marker
    compiled.warm()  # every kernel compiled (or loaded) and cached
    marker.write_text(json.dumps(compiled._stamps()))
    assert compiled.cache_is_warm()
    stamps = compiled._stamps()
    src = next(k for k in stamps if k.endswith(".py"))
    stamps[src] = [stamps[src][0] + 1, stamps[src][1]]  # a source edited since
    marker.write_text(json.dumps(stamps))
    assert not compiled.cache_is_warm()


def test_a_failing_warmer_still_switches_the_kernels_on(warmers):
    def broken():
        raise RuntimeError("boom")

    warmers.append(broken)
    job = compiled.warm_in_background(child=False)
    assert job.wait(10)
    assert isinstance(job.error, RuntimeError) and compiled.enabled()


def test_defer_holds_the_compiled_paths_off_until_a_warm_up_finishes(warmers):
    compiled.defer()
    assert not compiled.enabled()
    compiled.warm()  # compiling alone does not switch them on
    assert not compiled.enabled()
    job = compiled.warm_in_background(child=False)
    assert job.wait(10) and compiled.enabled()
