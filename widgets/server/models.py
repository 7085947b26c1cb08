"""Pydantic bases and the envelope models shared by every route.

Request models derive from :class:`ApiModel`: unknown fields are ignored (as the original
server did), NaN and infinity are refused with the field named, and fields may be given by
name or alias. Request models own the adaptation of what clients send (legacy spellings,
aliases, enum spellings through :func:`NameChoice`), so a handler makes one service call and
``prism_kernels`` never sees a REST field name.

Response models derive from :class:`ApiResponse` and are applied to what a handler returns:
a field the model does not declare is an error (a 500 that a test catches), never a silent
extra. :class:`Timed` adds the one timing key and its legacy spellings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from prism_kernels.names import snake_case
from prism_kernels.service import TIMING_KEY


class ApiModel(BaseModel):
    """Base of request models: finite numbers only, extra fields ignored."""

    model_config = ConfigDict(allow_inf_nan=False, extra="ignore", populate_by_name=True)


class ApiResponse(BaseModel):
    """Base of response models: applied to every answer; undeclared fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Timed(ApiResponse):
    """A response that reports its computation time under the one key, ``computation_time_ms``.

    :attr:`timing_aliases` lists the legacy names the PRISM-AI API used for the same figure
    (``processing_time_ms``, ``optimization_time_ms``); they are filled from it here, so
    services never write them.
    """

    timing_aliases: ClassVar[tuple[str, ...]] = ()

    computation_time_ms: float = Field(description="Measured computation time (ms)")

    @model_validator(mode="before")
    @classmethod
    def _legacy_timing(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and TIMING_KEY in data and cls.timing_aliases:
            data = dict(data)
            for name in cls.timing_aliases:
                data.setdefault(name, data[TIMING_KEY])
        return data


def NameChoice(  # noqa: N802 - a type factory, spelled like a type
    *choices: str, aliases: Mapping[str, str] | None = None, description: str | None = None
) -> Any:
    """A string field that takes one of ``choices`` in any spelling and yields the snake_case name.

    ``"MaximizeSharpe"``, ``"maximize-sharpe"`` and ``"maximize_sharpe"`` all validate to
    ``"maximize_sharpe"``; ``aliases`` maps other names (after snake-casing) onto a choice
    (``{"sharpe": "maximize_sharpe"}``). Anything else is a 400 that lists the choices. The
    OpenAPI document shows the choices as an enum.
    """
    known = tuple(choices)
    table = {snake_case(a): c for a, c in (aliases or {}).items()}

    def normalise(v: Any) -> Any:
        if isinstance(v, str):
            s = snake_case(v)
            return table.get(s, s)
        return v

    field = Field(description=description) if description else Field()
    return Annotated[Literal[known], BeforeValidator(normalise), field]  # type: ignore[valid-type]


class Metadata(BaseModel):
    processing_time_ms: float
    api_version: str
    request_id: str


class ErrorBody(BaseModel):
    """Every error response: ``{"success": false, "error", "message", "details"}``."""

    success: bool = Field(False, description="always false")
    error: str = Field(description="error kind, e.g. ValidationError, Unauthorized, NotFound")
    message: str = Field(description="what went wrong, in words a person can act on")
    details: dict[str, Any] = Field(default_factory=dict)


class Empty(ApiModel):
    """A request with no parameters."""


class Page(ApiModel):
    """Paging of a list route: newest first."""

    limit: int = Field(100, ge=1, le=1000, description="At most this many items")
    offset: int = Field(0, ge=0, le=1_000_000, description="Skip this many (newest first)")


class OperationStats(ApiResponse):
    count: int = Field(description="Computations finished since start")
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


class DomainHealth(ApiResponse):
    """``GET /api/v1/<domain>/health``: the service's real state (see ``DomainService.health``)."""

    status: str = Field(description="healthy")
    domain: str
    uptime_s: float = Field(description="Seconds since the service started")
    computations: int = Field(description="Computations finished since start")
    mean_computation_time_ms: float | None = Field(
        description="Mean of the recent computation times (ms)"
    )
    stored: dict[str, int] = Field(description="Documents kept, per stored kind")
    operations: dict[str, OperationStats] = Field(description="Recent timings per operation")
