"""Record and replay provider answers as JSONL, so demos and notebooks run offline.

A record is one line::

    {"key": "<sha256>", "model": "gpt-4o-mini", "messages": [...], "params": {...},
     "text": "...", "chunks": ["...", ...], "usage": {"prompt_tokens": 9, "completion_tokens": 7},
     "finish_reason": "stop", "provider": "openai", "latency_ms": 412.0}

``key`` is :func:`request_key` of the PRISM model name (not an alias, not the wire id), the
messages and the set sampling parameters. Records carry no key and no key id.
:class:`Recorder` writes them from real calls (``LlmRouter(recorder=...)``);
:class:`ReplayProvider` answers from them (``PRISM_LLM_REPLAY``), streaming the recorded chunks.
A request that was not recorded is a :class:`ProviderError` of kind ``"not_recorded"``
(status 404, not retryable; a configured fallback may still answer).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prism_kernels.errors import InvalidInput
from prism_kernels.llm.config import EndpointConfig
from prism_kernels.llm.providers import (
    ChatRequest,
    Completion,
    Provider,
    ProviderError,
    StreamEvent,
    Usage,
)

__all__ = ["Recorder", "ReplayProvider", "load_records", "request_key"]


def request_key(
    model: str, messages: Sequence[Mapping[str, str]], params: Mapping[str, Any]
) -> str:
    """SHA-256 (hex) of the canonical JSON of model, messages and the set parameters."""
    canon = json.dumps(
        {
            "model": model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "params": {k: v for k, v in sorted(params.items()) if v is not None},
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL replay file (blank lines skipped).

    Raises
    ------
    InvalidInput
        ``field="replay"`` for a missing file or a malformed line (its number given).
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInput("replay", f"no such file: {p}")
    out = []
    with p.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec["text"], str) or not isinstance(rec["model"], str):
                    raise TypeError
                rec.setdefault(
                    "key", request_key(rec["model"], rec["messages"], rec.get("params") or {})
                )
            except (ValueError, KeyError, TypeError):
                raise InvalidInput(
                    "replay", f"line {i} of {p.name} is not a replay record"
                ) from None
            out.append(rec)
    return out


@dataclass
class ReplayProvider(Provider):
    """A provider answering from recorded records (the last record of a key wins).

    ``ChatRequest.model`` must be the PRISM model name (the config maps replayed models so).
    """

    records: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _index: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {r["key"]: r for r in self.records}

    @classmethod
    def from_file(cls, path: str | Path, name: str = "replay") -> ReplayProvider:
        endpoint = EndpointConfig(name=name, provider="replay", base_url=str(path), discover=False)
        return cls(endpoint, load_records(path))

    @classmethod
    def from_endpoint(cls, endpoint: EndpointConfig) -> ReplayProvider:
        return cls(endpoint, load_records(endpoint.base_url))

    def _lookup(self, request: ChatRequest) -> dict[str, Any]:
        key = request_key(request.model, request.messages, request.params())
        rec = self._index.get(key)
        if rec is None:
            raise ProviderError(
                f"no recorded response for model {request.model!r} with these messages and "
                f"parameters (key {key[:12]})",
                endpoint=self.name,
                model=request.model,
                status=404,
                kind="not_recorded",
                retryable=False,
            )
        return rec

    @staticmethod
    def _usage(rec: Mapping[str, Any]) -> Usage | None:
        u = rec.get("usage")
        return Usage(int(u["prompt_tokens"]), int(u["completion_tokens"])) if u else None

    async def complete(self, request: ChatRequest, timeout_s: float | None = None) -> Completion:
        rec = self._lookup(request)
        return Completion(
            text=rec["text"],
            model=request.model,
            endpoint=self.name,
            provider="replay",
            usage=self._usage(rec),
            finish_reason=rec.get("finish_reason"),
            latency_ms=0.0,
            response_model=rec.get("response_model"),
        )

    async def stream(
        self, request: ChatRequest, timeout_s: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        rec = self._lookup(request)
        chunks = rec.get("chunks") or [rec["text"]]
        for c in chunks:
            if c:
                yield StreamEvent("delta", delta=c)
        yield StreamEvent(
            "done",
            usage=self._usage(rec),
            finish_reason=rec.get("finish_reason"),
            response_model=rec.get("response_model"),
        )

    async def list_models(self) -> list[str]:
        return sorted({r["model"] for r in self.records})

    async def aclose(self) -> None:
        return None


class Recorder:
    """Appends one replay record per successful call to a JSONL file (thread-safe).

    Parameters
    ----------
    path : str or Path
        The file (created; appended to if it exists).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.count = 0

    def record(
        self,
        model: str,
        messages: Sequence[Mapping[str, str]],
        params: Mapping[str, Any],
        text: str,
        usage: Usage | None,
        finish_reason: str | None = None,
        chunks: Iterable[str] | None = None,
        provider: str | None = None,
        latency_ms: float | None = None,
    ) -> dict[str, Any]:
        """Write one record and return it."""
        rec = {
            "key": request_key(model, messages, params),
            "model": model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "params": {k: v for k, v in params.items() if v is not None},
            "text": text,
            "chunks": list(chunks) if chunks is not None else None,
            "usage": (
                {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
                if usage
                else None
            ),
            "finish_reason": finish_reason,
            "provider": provider,
            "latency_ms": latency_ms,
        }
        line = json.dumps(rec, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
            self.count += 1
        return rec
