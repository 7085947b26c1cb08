"""Histogram entropy of intensities, in bits, and the binning rules behind it.

* :func:`uniform_codes`: equal-width bin index of every value, exactly ``numpy.histogram``'s
  rule (bin ``k`` holds ``lo + k w <= x < lo + (k + 1) w``, the maximum in the last bin),
  except that values outside a given range go to the end bins instead of being dropped;
* :func:`quantize`: integer levels of a frame: ``uint8`` keeps its 256 grey levels, other
  integers the values present (``value - min`` when they span fewer than 4096 values, else
  their rank among the distinct values: the entropy only depends on the counts), floats
  :func:`uniform_codes` with ``bins`` bins;
* :func:`entropy_of_counts`: ``H = -sum p_k log2 p_k`` of a histogram;
* :func:`histogram_entropy`: the entropy of a frame's level histogram.

Histograms are host NumPy work: inputs from other array libraries are copied with
:func:`~prism_kernels.backend.to_numpy`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput

#: Integer frames spanning fewer values than this use ``value - min`` as their level.
DIRECT_LEVELS = 4096


def entropy_of_counts(counts: Any) -> float:
    """Shannon entropy (bits) of a histogram: ``-sum p_k log2 p_k``, ``p = counts / sum``.

    Empty bins contribute nothing; an empty or all-zero histogram has entropy 0.
    """
    c = np.asarray(to_numpy(counts), dtype=np.float64).ravel()
    c = c[c > 0]
    if c.size == 0:
        return 0.0
    p = c / c.sum()
    return float(max(-(p * np.log2(p)).sum(), 0.0))


def uniform_codes(
    x: Any, bins: int, value_range: tuple[float, float] | None = None, field: str = "frame"
) -> np.ndarray:
    """Equal-width bin index in ``[0, bins)`` of every value of ``x`` (int64, ``x``'s shape).

    Parameters
    ----------
    x : array
        Finite numbers.
    bins : int
        Number of bins (>= 1).
    value_range : (low, high), optional
        Range the bins cover (default: ``x``'s own min..max); values outside go to the end
        bins. A zero-width range puts everything in bin 0.
    """
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise InvalidInput("bins", f"must be an integer >= 1, got {bins!r}")
    a = np.asarray(to_numpy(x), dtype=np.float64)
    if a.size == 0:
        raise InvalidInput(field, "empty input")
    if not np.all(np.isfinite(a)):
        raise InvalidInput(field, "contains NaN or infinite values")
    if value_range is None:
        lo, hi = float(a.min()), float(a.max())
    else:
        lo, hi = (float(v) for v in value_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and hi >= lo):
            raise InvalidInput("value_range", f"needs finite low <= high, got ({lo}, {hi})")
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.int64)
    bins = int(bins)
    if not np.isfinite(hi - lo):  # a range wider than float64: halve everything (exact)
        a, lo, hi = a * 0.5, lo * 0.5, hi * 0.5
    with np.errstate(over="ignore"):  # far outside a given range: +-inf, clipped below
        f = (a - lo) * (bins / (hi - lo))
    np.clip(f, 0, bins - 1, out=f)  # values outside the range go to the end bins
    idx = f.astype(np.int64)  # truncation = floor of these non-negative values
    # numpy.histogram's correction: the float product may land one bin off an edge.
    edges = np.linspace(lo, hi, bins + 1)
    idx -= (a < edges[idx]) & (idx > 0)
    idx += (a >= edges[idx + 1]) & (idx < bins - 1)
    return idx


def quantize(
    frame: Any, bins: int = 256, value_range: tuple[float, float] | None = None
) -> tuple[np.ndarray, int]:
    """Integer level codes of a frame and how many levels there are (see the module docstring).

    Returns
    -------
    codes : ndarray of int32, the frame's shape
    n_levels : int
    """
    a = to_numpy(frame)
    if a.size == 0:
        raise InvalidInput("frame", "empty frame")
    if a.dtype == np.uint8:
        return a.astype(np.int32), 256
    if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        a = a.astype(np.int64)
        lo, hi = int(a.min()), int(a.max())
        if hi - lo < DIRECT_LEVELS:
            return (a - lo).astype(np.int32), hi - lo + 1
        uniq, inv = np.unique(a, return_inverse=True)
        return inv.reshape(a.shape).astype(np.int32), int(uniq.size)
    if not np.issubdtype(a.dtype, np.floating):
        raise InvalidInput("frame", f"unsupported dtype {a.dtype}")
    return uniform_codes(a, bins, value_range).astype(np.int32), int(bins)


def histogram_entropy(
    x: Any, bins: int = 256, value_range: tuple[float, float] | None = None
) -> float:
    """Shannon entropy (bits) of the level histogram of ``x`` (levels of :func:`quantize`).

    Parameters
    ----------
    x : array
        A frame or any array of intensities (integers: their values; floats: ``bins``
        equal-width bins over ``value_range``, default min..max).

    Returns
    -------
    float
        In ``[0, log2(levels)]``; 0 for a constant input.
    """
    codes, n_levels = quantize(x, bins=bins, value_range=value_range)
    return entropy_of_counts(np.bincount(codes.ravel(), minlength=n_levels))
