"""Spellings of names that callers send: one normalisation for every enum-like string.

The PRISM-AI API took snake_case; its clients and docs also sent PascalCase
(``"MaximizeSharpe"``), kebab-case and spaces. Everything is compared in snake_case.
"""

from __future__ import annotations

import re
from typing import Any


def snake_case(value: Any) -> Any:
    """``"MaximizeSharpe"``, ``"maximize-sharpe"``, ``"Maximize Sharpe"`` -> ``"maximize_sharpe"``.

    Only lower-to-upper transitions split words (``"HRP"`` -> ``"hrp"``); runs of spaces,
    hyphens and underscores become one underscore. Non-strings are returned unchanged, so it
    can serve as a ``mode="before"`` validator.
    """
    if not isinstance(value, str):
        return value
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", value.strip())
    return re.sub(r"[\s\-_]+", "_", s).lower()
