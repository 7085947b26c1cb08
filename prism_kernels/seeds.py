"""Seeds of the kernels' random generators, checked before a generator is built.

NumPy's ``default_rng`` refuses negative integers with a bare ``ValueError`` and torch's
``manual_seed`` refuses integers past 64 bits; a seed is checked here first so a bad one is an
:class:`~prism_kernels.errors.InvalidInput` naming the field (a 400), never an internal error.
"""

from __future__ import annotations

import numbers
from typing import Any

from prism_kernels.errors import InvalidInput

__all__ = ["SEED_MAX", "check_seed"]

SEED_MAX = 2**64 - 1
"""The largest seed every backend's generator takes (torch's ``manual_seed`` limit)."""


def check_seed(seed: Any, field: str = "seed") -> int | None:
    """``seed`` as a Python int in ``[0, SEED_MAX]``, or None (fresh entropy).

    Parameters
    ----------
    seed : int, numpy integer or None
    field : the name a bad seed is reported under.

    Raises
    ------
    InvalidInput
        A bool, a non-integer, a negative integer or one above :data:`SEED_MAX`.
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InvalidInput(field, f"must be a non-negative integer or None; got {seed!r}")
    s = int(seed)
    if not 0 <= s <= SEED_MAX:
        raise InvalidInput(field, f"must be in [0, 2**64 - 1]; got {s}")
    return s
