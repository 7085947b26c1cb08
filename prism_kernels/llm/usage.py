"""Token usage, cost and budgets per model and per API-key id.

Rows come from the usage the providers report (prompt and completion tokens); the cost of a
row is priced from a table of USD per 1,000 input and output tokens. Costs are kept as integer
nano-dollars (1e-9 USD, rounded once per row) so that the totals per model, per key and overall
add up exactly; ``cost_usd`` is that integer divided by 1e9.

A key is identified by :func:`key_id` (a truncated SHA-256), never by the key itself, so rows
and errors can be stored and shown. A budget (USD per key id, or one for every key) is checked
before a request (:meth:`UsageLedger.check`) and raises :class:`BudgetExceeded` carrying what
was spent; usage that a provider reports is always recorded, even past the budget (it was
spent).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from prism_kernels.errors import InvalidInput, PrismError

NANO = 1_000_000_000


class BudgetExceeded(PrismError):
    """A key id has spent its budget (the REST layer answers 402).

    Attributes: ``key_id``, ``spent_usd``, ``budget_usd``.
    """

    def __init__(self, key_id: str, spent_usd: float, budget_usd: float) -> None:
        super().__init__(
            f"budget of {budget_usd:.6g} USD for key {key_id} is spent ({spent_usd:.6g} USD)"
        )
        self.key_id, self.spent_usd, self.budget_usd = key_id, spent_usd, budget_usd


def key_id(api_key: str | None) -> str:
    """``"key-"`` + the first 12 hex digits of SHA-256 of the key (``"anonymous"`` for None)."""
    if api_key is None or api_key == "":
        return "anonymous"
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Price:
    """USD per 1,000 prompt (input) and completion (output) tokens."""

    input_per_1k: float
    output_per_1k: float

    def nanos(self, prompt_tokens: int, completion_tokens: int) -> int:
        """Cost in nano-dollars, rounded to the nearest integer."""
        return round(
            prompt_tokens * self.input_per_1k * 1e6 + completion_tokens * self.output_per_1k * 1e6
        )


def _price(name: str, p: Any) -> Price:
    if isinstance(p, Price):
        vals = (p.input_per_1k, p.output_per_1k)
    elif isinstance(p, Mapping):
        vals = (p.get("input_per_1k", p.get("input")), p.get("output_per_1k", p.get("output")))
    else:
        try:
            vals = tuple(p)
        except TypeError:
            vals = ()
    if len(vals) != 2 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        for v in vals
    ):
        raise InvalidInput(f"prices.{name}", "expected (input_per_1k, output_per_1k) USD >= 0")
    return Price(float(vals[0]), float(vals[1]))


@dataclass(frozen=True)
class UsageRow:
    """One call's usage. ``cost_nanousd`` is None when the model has no price."""

    time: float
    model: str
    key_id: str
    prompt_tokens: int
    completion_tokens: int
    cost_nanousd: int | None
    request_id: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_usd(self) -> float | None:
        return None if self.cost_nanousd is None else self.cost_nanousd / NANO


def _int(v: Any, field: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InvalidInput(field, f"expected an integer >= 0, got {v!r}")
    return v


class UsageLedger:
    """Usage rows with totals by model and by key id, and budgets (thread-safe).

    Parameters
    ----------
    prices : mapping model -> Price | (in, out) | {"input_per_1k", "output_per_1k"}
    budgets : mapping key_id -> USD, optional
    default_budget_usd : float, optional
        Budget of every key id not in ``budgets`` (``PRISM_LLM_BUDGET_USD``).
    clock : callable () -> float
    """

    def __init__(
        self,
        prices: Mapping[str, Any] | None = None,
        budgets: Mapping[str, float] | None = None,
        default_budget_usd: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prices = {str(k): _price(str(k), v) for k, v in (prices or {}).items()}
        self.budgets: dict[str, float] = {}
        for k, b in (budgets or {}).items():
            self.budgets[k] = self._budget(b, f"budgets.{k}")
        self.default_budget_usd = (
            None if default_budget_usd is None else self._budget(default_budget_usd, "budget")
        )
        self.clock = clock
        self._rows: list[UsageRow] = []
        self._spent: dict[str, int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _budget(b: Any, field: str) -> float:
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b < 0:
            raise InvalidInput(field, "a budget is a finite number of USD >= 0")
        return float(b)

    def budget_of(self, key: str) -> float | None:
        return self.budgets.get(key, self.default_budget_usd)

    def spent_usd(self, key: str) -> float:
        return self._spent.get(key, 0) / NANO

    def check(self, key: str) -> None:
        """Raise :class:`BudgetExceeded` when ``key`` has spent at least its budget."""
        b = self.budget_of(key)
        spent = self._spent.get(key, 0)
        if b is not None and spent >= round(b * NANO):
            raise BudgetExceeded(key, spent / NANO, b)

    def cost_nanousd(self, model: str, prompt_tokens: int, completion_tokens: int) -> int | None:
        p = self.prices.get(model)
        return None if p is None else p.nanos(prompt_tokens, completion_tokens)

    def record(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        key: str = "anonymous",
        request_id: str | None = None,
    ) -> UsageRow:
        """Record reported usage for ``model`` under key id ``key``; returns the row."""
        if not isinstance(model, str) or not model:
            raise InvalidInput("model", "must be a non-empty string")
        if not isinstance(key, str) or not key:
            raise InvalidInput("key", "must be a non-empty key id (see key_id())")
        pt = _int(prompt_tokens, "prompt_tokens")
        ct = _int(completion_tokens, "completion_tokens")
        row = UsageRow(
            self.clock(), model, key, pt, ct, self.cost_nanousd(model, pt, ct), request_id
        )
        with self._lock:
            self._rows.append(row)
            self._spent[key] = self._spent.get(key, 0) + (row.cost_nanousd or 0)
        return row

    @staticmethod
    def _sum(rows: list[UsageRow]) -> dict[str, Any]:
        nanos = sum(r.cost_nanousd or 0 for r in rows)
        pt = sum(r.prompt_tokens for r in rows)
        ct = sum(r.completion_tokens for r in rows)
        return {
            "requests": len(rows),
            "prompt_tokens": pt,
            "completion_tokens": ct,
            "total_tokens": pt + ct,
            "cost_nanousd": nanos,
            "cost_usd": nanos / NANO,
            "unpriced_requests": sum(r.cost_nanousd is None for r in rows),
        }

    def _group(self, attr: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = list(self._rows)
        groups: dict[str, list[UsageRow]] = {}
        for r in rows:
            groups.setdefault(getattr(r, attr), []).append(r)
        return {k: self._sum(v) for k, v in groups.items()}

    def totals(self) -> dict[str, Any]:
        with self._lock:
            return self._sum(list(self._rows))

    def by_model(self) -> dict[str, dict[str, Any]]:
        return self._group("model")

    def by_key(self) -> dict[str, dict[str, Any]]:
        """Per key id, with ``budget_usd`` (None when unlimited) and ``remaining_usd``."""
        out = self._group("key_id")
        for k, v in out.items():
            b = self.budget_of(k)
            v["budget_usd"] = b
            v["remaining_usd"] = None if b is None else max(0.0, b - v["cost_nanousd"] / NANO)
        return out

    def summary(self) -> dict[str, Any]:
        return {"totals": self.totals(), "by_model": self.by_model(), "by_key": self.by_key()}

    def records(self) -> list[dict[str, Any]]:
        """JSON-able rows, oldest first."""
        with self._lock:
            return [asdict(r) for r in self._rows]

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], **kwargs: Any) -> UsageLedger:
        """A ledger holding ``records`` (costs as recorded, not re-priced)."""
        led = cls(**kwargs)
        for i, r in enumerate(records):
            try:
                row = UsageRow(
                    float(r["time"]),
                    str(r["model"]),
                    str(r["key_id"]),
                    _int(r["prompt_tokens"], f"records.{i}.prompt_tokens"),
                    _int(r["completion_tokens"], f"records.{i}.completion_tokens"),
                    None if r.get("cost_nanousd") is None else int(r["cost_nanousd"]),
                    r.get("request_id"),
                )
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, InvalidInput):
                    raise
                raise InvalidInput(f"records.{i}", f"malformed usage row: {exc}") from None
            led._rows.append(row)
            led._spent[row.key_id] = led._spent.get(row.key_id, 0) + (row.cost_nanousd or 0)
        return led
