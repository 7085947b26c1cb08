"""HTTP errors with JSON bodies, and the mapping from kernel exceptions to statuses."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from prism_kernels.errors import InvalidInput, NotFound, Unavailable, Unsolvable
from prism_kernels.llm.usage import BudgetExceeded
from prism_kernels.store import ReadOnly

STATUS_KIND = {
    400: "ValidationError",
    401: "Unauthorized",
    402: "BudgetExceeded",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    422: "Unsolvable",
    429: "RateLimited",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """An error answered with ``status`` and a JSON :class:`~widgets.server.models.ErrorBody`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error or STATUS_KIND.get(status, "Error")
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "success": False,
            "error": self.error,
            "message": self.message,
            "details": self.details,
        }


def _loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "body"


def from_validation_error(exc: ValidationError, where: str = "body") -> ApiError:
    """A 400 naming each offending field (``measurements.0.position``) and what is wrong."""
    errors = [
        {"field": _loc(e["loc"]), "message": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    first = errors[0] if errors else {"field": where, "message": "invalid"}
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ApiError(
        400,
        f"invalid {where}: {first['field']}: {first['message']}{more}",
        details={"field": first["field"], "errors": errors, "in": where},
    )


def from_exception(exc: BaseException) -> ApiError:
    """Map a kernel exception to its status; anything unexpected is a 500 without a trace."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        return from_validation_error(exc)
    if isinstance(exc, InvalidInput):
        return ApiError(
            422 if isinstance(exc, Unsolvable) else 400,
            f"{exc.field}: {exc.message}",
            details={"field": exc.field, **_jsonable(exc.details)},
        )
    if isinstance(exc, NotFound):
        return ApiError(404, str(exc), details={"kind": exc.kind, "id": str(exc.id)})
    if isinstance(exc, BudgetExceeded):
        return ApiError(
            402,
            f"{exc}; raise PRISM_LLM_BUDGET_USD or use another key",
            details={
                "key_id": exc.key_id,
                "spent_usd": exc.spent_usd,
                "budget_usd": exc.budget_usd,
            },
        )
    if isinstance(exc, ReadOnly):
        return ApiError(403, str(exc))
    if isinstance(exc, Unavailable):
        return ApiError(503, str(exc))
    if isinstance(exc, TimeoutError):
        return ApiError(504, "the computation timed out")
    if isinstance(exc, OverflowError):
        # Finite but extreme numbers (1e300 squared) overflow inside a kernel: the input is
        # out of range, not the server broken.
        return ApiError(
            400,
            f"a number in the request is too large to compute with ({exc})",
            details={"field": "body"},
        )
    return ApiError(500, "internal error; the server log has the details", details={})


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out[k] = v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
    return out
