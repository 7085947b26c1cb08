"""Timing helpers and the result row every benchmark returns."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Case:
    """One benchmark row.

    ``ours_s`` and ``peer_s`` are median wall-clock seconds per call; ``peer_s`` is ``None``
    when the peer failed or has no equivalent (``note`` says which). ``ratio`` is
    ``peer_s / ours_s``: above 1 means ours is faster. ``extra`` holds accuracy figures
    (max difference, GOSPA...) so speed is never reported without correctness.
    """

    benchmark: str
    case: str
    ours_s: float
    peer: str
    peer_s: float | None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.peer_s is None or self.ours_s <= 0:
            return None
        return self.peer_s / self.ours_s

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def timeit(
    fn: Callable[[], Any], repeat: int = 5, warmup: int = 1, sync: Callable[[], None] | None = None
) -> float:
    """Median seconds of ``repeat`` calls of ``fn`` after ``warmup`` calls (``sync`` after each call, for GPUs)."""
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def format_table(cases: list[Case]) -> str:
    """Fixed-width table: benchmark, case, ours, peer, peer time, ratio, note."""
    rows = [("benchmark", "case", "ours", "peer", "peer time", "ratio", "note")]
    for c in cases:
        rows.append(
            (
                c.benchmark,
                c.case,
                _fmt_s(c.ours_s),
                c.peer,
                _fmt_s(c.peer_s) if c.peer_s is not None else "failed/n.a.",
                f"{c.ratio:.1f}x" if c.ratio is not None else "-",
                (
                    c.note
                    + (" " if c.note and c.extra else "")
                    + ", ".join(f"{k}={_fmt_v(v)}" for k, v in c.extra.items())
                ),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(len(widths))) + "  " + r[-1])
        if len(lines) == 1:
            lines.append("-" * (sum(widths) + 2 * len(widths) + 4))
    return "\n".join(lines)


def _fmt_s(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def _fmt_v(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
