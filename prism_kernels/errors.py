"""Exceptions that kernels and services raise, and that the server maps to HTTP statuses.

They carry no web dependency: the server (``widgets.server``) turns :class:`InvalidInput`
into a 400, :class:`Unsolvable` into a 422, :class:`NotFound` into a 404, :class:`Unavailable`
into a 503.
"""

from __future__ import annotations

from typing import Any


class PrismError(Exception):
    """Base class of every error PRISM raises on purpose."""


class InvalidInput(PrismError, ValueError):
    """The caller gave input that cannot be computed on.

    Parameters
    ----------
    field : str
        The offending input, as a dotted path (``"measurements.3.position"``) so a person
        can find it in their request.
    message : str
        What is wrong and, where possible, what would be right.
    details : dict, optional
        Extra machine-readable context (expected shape, received shape...).
    """

    def __init__(self, field: str, message: str, **details: Any) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.details = details


class Infeasible(InvalidInput):
    """Constraints that no solution can satisfy (an optimiser's 400, never a silent fix)."""


class Unsolvable(InvalidInput):
    """Well-formed input for which no answer exists (a 422): a planning problem whose goal lies
    inside an obstacle, a pose no joint configuration reaches, a search that spent its budget.

    ``field`` names the input that makes it unsolvable (``"goal_state"``); ``details`` carries
    the reason and what was tried.
    """


class NotFound(PrismError, KeyError):
    """A stored object (track, portfolio, frame...) that does not exist."""

    def __init__(self, kind: str, id: str | int) -> None:
        super().__init__(f"{kind} {id!r} not found")
        self.kind = kind
        self.id = id

    def __str__(self) -> str:  # KeyError quotes its argument; keep the plain sentence
        return f"{self.kind} {self.id!r} not found"


class Unavailable(PrismError, RuntimeError):
    """A dependency (a GPU, an LLM provider) is not available right now."""
