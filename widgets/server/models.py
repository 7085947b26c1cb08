"""Pydantic bases and the envelope models shared by every route.

Request models derive from :class:`ApiModel`: unknown fields are ignored (as the original
server did), NaN and infinity are refused with the field named, and fields may be given by
name or alias. Response models derive from :class:`ApiResponse`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    """Base of request models: finite numbers only, extra fields ignored."""

    model_config = ConfigDict(allow_inf_nan=False, extra="ignore", populate_by_name=True)


class ApiResponse(BaseModel):
    """Base of response models (documentation and schema; extra keys are allowed)."""

    model_config = ConfigDict(extra="allow")


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
