"""LlmRouter: one call for every configured model, with retries, cooldowns and fallbacks.

- Retries: a retryable failure (429, 5xx, timeout, connection error, broken stream before any
  text) is retried on the same model up to ``max_retries`` times, attempt ``k`` waiting
  ``uniform(0, min(backoff_max_s, backoff_base_s * 2**(k-1)))`` s ("full jitter"), or a 429's
  ``Retry-After`` when longer (a ``Retry-After`` beyond ``backoff_max_s`` is not waited: the
  request falls back at once).
- Cooldown: an endpoint failing ``cooldown_after`` times in a row is skipped for ``cooldown_s``
  (a 429's ``Retry-After`` cools it for that long); a success resets the count.
- Fallbacks: the request's ``fallbacks`` list (else the model's configured ones) is tried in
  order after the model fails or is cooling down. A stream that breaks after text was sent is
  taken over by the next model; a ``"fallback"`` stream item says from which model, to which,
  why, and after how many characters and chunks. ``mid_stream="restart"`` (default): the
  fallback answers afresh and the consumer drops the ``discard_chars`` already shown;
  ``"continue"``: the partial text goes to the fallback as an assistant prefill (continued
  natively by Anthropic and by OpenAI-compatible servers that continue a final assistant
  message, e.g. vLLM) and its text is appended.
- Network calls run on a router-owned event loop in a background thread: ``await
  router.complete(...)`` from any loop and ``router.complete_sync(...)`` from any thread (e.g.
  executor threads of a server) share one connection pool per endpoint. A long-lived loop of
  the caller's (a web server's, Jupyter's) can be attached (:meth:`LlmRouter.attach_loop`):
  calls awaited there then run there, with a pool of that loop's, and skip the two thread hops.
- ``batch``: many requests with bounded concurrency, results in request order.

Results (:class:`LlmResult`) and health rows are JSON-able and carry a key *id*, never a key.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prism_kernels.errors import InvalidInput, NotFound, PrismError, Unavailable
from prism_kernels.llm.config import HOW_TO_CONFIGURE, LlmConfig, ModelConfig
from prism_kernels.llm.providers import (
    ChatRequest,
    Provider,
    ProviderError,
    StreamEvent,
    Usage,
    make_provider,
    messages_from,
)
from prism_kernels.llm.replay import Recorder, ReplayProvider

__all__ = [
    "MAX_PROMPT_CHARS",
    "AllModelsFailed",
    "Attempt",
    "FallbackInfo",
    "LlmResult",
    "LlmRouter",
    "StreamItem",
]

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 200_000
MAX_TOKENS_LIMIT = 1_000_000
_DONE = object()
_COOLDOWN_SLACK_S = 0.005


@dataclass(frozen=True)
class Attempt:
    """One try of one model (``skipped``: not tried because its endpoint was cooling down)."""

    model: str
    endpoint: str
    ok: bool
    elapsed_ms: float
    error: str | None = None
    kind: str | None = None
    status: int | None = None
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "endpoint": self.endpoint,
            "ok": self.ok,
            "elapsed_ms": self.elapsed_ms,
            "error": self.error,
            "kind": self.kind,
            "status": self.status,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class FallbackInfo:
    """A switch from one model to the next.

    ``mid_stream``: the stream had sent ``at_chars`` characters in ``at_chunks`` chunks when it
    failed. ``mode``: ``"restart"`` (consumer drops ``discard_chars`` characters) or
    ``"continue"`` (nothing dropped) for streams; ``None`` for whole answers.
    """

    from_model: str
    to_model: str
    reason: str
    mid_stream: bool = False
    at_chars: int = 0
    at_chunks: int = 0
    mode: str | None = None
    discard_chars: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "from_model": self.from_model,
            "to_model": self.to_model,
            "reason": self.reason,
            "mid_stream": self.mid_stream,
            "at_chars": self.at_chars,
            "at_chunks": self.at_chunks,
            "mode": self.mode,
            "discard_chars": self.discard_chars,
        }


@dataclass(frozen=True)
class LlmResult:
    """The answer to one routed request.

    ``usage`` is what the answering provider reported (``None`` if it reported none);
    ``cost_usd`` = usage priced with the model's table (``None`` when the price is unknown).
    ``latency_ms`` is the whole routed call including retries and fallbacks.
    """

    text: str
    model_requested: str
    model_used: str
    endpoint: str
    provider: str
    usage: Usage | None
    cost_usd: float | None
    latency_ms: float
    finish_reason: str | None
    fallbacks: tuple[FallbackInfo, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    key_id: str | None = None
    streamed: bool = False

    @property
    def fallback_used(self) -> bool:
        return bool(self.fallbacks)

    @property
    def tokens_used(self) -> dict[str, int] | None:
        if self.usage is None:
            return None
        return {
            "prompt": self.usage.prompt_tokens,
            "completion": self.usage.completion_tokens,
            "total": self.usage.total_tokens,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "model_requested": self.model_requested,
            "model_used": self.model_used,
            "endpoint": self.endpoint,
            "provider": self.provider,
            "tokens_used": self.tokens_used,
            "cost_usd": self.cost_usd,
            "latency_ms": self.latency_ms,
            "finish_reason": self.finish_reason,
            "fallback_used": self.fallback_used,
            "fallbacks": [f.to_dict() for f in self.fallbacks],
            "attempts": [a.to_dict() for a in self.attempts],
            "key_id": self.key_id,
            "streamed": self.streamed,
        }


@dataclass(frozen=True)
class StreamItem:
    """One item of :meth:`LlmRouter.stream`: ``type`` is ``"chunk"`` (``delta``, ``model``),
    ``"fallback"`` (``fallback``) or ``"done"`` (``result``, always last)."""

    type: str
    delta: str = ""
    model: str = ""
    fallback: FallbackInfo | None = None
    result: LlmResult | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.type == "chunk":
            return {"type": "chunk", "delta": self.delta, "model": self.model}
        if self.type == "fallback":
            return {"type": "fallback", "model": self.model, **self.fallback.to_dict()}
        return {"type": "done", **self.result.to_dict()}


class AllModelsFailed(Unavailable):
    """Every model of the chain failed or was cooling down (a 503).

    ``attempts`` lists what was tried; ``retry_after`` is the shortest wait after which a
    cooled-down endpoint is tried again (``None`` if none is cooling).
    """

    def __init__(self, models: Sequence[str], attempts: Sequence[Attempt], retry_after=None):
        last = next((a for a in reversed(attempts) if a.error), None)
        msg = f"no model answered ({', '.join(models)})"
        if last is not None:
            msg += f"; last error: {last.error}"
        super().__init__(msg)
        self.models = list(models)
        self.attempts = list(attempts)
        self.retry_after = retry_after
        self.status = last.status if last is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": str(self),
            "models": self.models,
            "attempts": [a.to_dict() for a in self.attempts],
            "retry_after": self.retry_after,
        }


@dataclass
class _EndpointState:
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    requests: int = 0
    failures: int = 0
    last_error: str | None = None
    last_ok_at: float | None = None


@dataclass
class _ModelStats:
    requests: int = 0
    failures: int = 0
    latency_ms_ewma: float | None = None
    last_latency_ms: float | None = None


@dataclass
class _Call:
    """Validated arguments of one routed request."""

    messages: tuple[dict[str, str], ...]
    chain: list[ModelConfig]
    temperature: float | None
    max_tokens: int | None
    top_p: float | None
    stop: tuple[str, ...] | None
    seed: int | None
    timeout_s: float | None
    attempts: list[Attempt] = field(default_factory=list)
    fallbacks: list[FallbackInfo] = field(default_factory=list)

    def request(self, mc: ModelConfig, prefill: str = "") -> ChatRequest:
        msgs = self.messages
        if prefill:
            msgs = msgs + ({"role": "assistant", "content": prefill},)
        return ChatRequest(
            model=mc.model,
            messages=msgs,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            top_p=self.top_p,
            stop=self.stop,
            seed=self.seed,
        )

    def params(self) -> dict[str, Any]:
        return self.request(self.chain[0]).params()


class LlmRouter:
    """Routes requests to configured models.

    Parameters
    ----------
    config : LlmConfig
        Endpoints, models and settings (``load_config()``).
    recorder : Recorder, optional
        Writes a replay record for every successful answer.
    providers : mapping, optional
        Extra or replacement :class:`Provider` per endpoint name.
    clock : callable
        Monotonic seconds (cooldowns).
    seed : int, optional
        Seeds the backoff jitter.
    """

    def __init__(
        self,
        config: LlmConfig,
        *,
        recorder: Recorder | None = None,
        providers: Mapping[str, Provider] | None = None,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.settings = config.router
        self.recorder = recorder
        self.clock = clock
        self._rng = random.Random(seed)
        self._providers: dict[str, Provider] = {}
        for name, ep in config.endpoints.items():
            self._providers[name] = (
                ReplayProvider.from_endpoint(ep) if ep.provider == "replay" else make_provider(ep)
            )
        self._providers.update(providers or {})
        self._state = {name: _EndpointState() for name in self._providers}
        self._stats: dict[str, _ModelStats] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._attached: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._state_lock = threading.Lock()  # endpoint and model statistics: several loops
        self._closed = False

    def __repr__(self) -> str:
        return f"LlmRouter(endpoints={sorted(self._providers)}, models={len(self.config.models)})"

    # -- the background loop -----------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise Unavailable("the LLM router is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="prism-llm-router", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Run calls awaited on ``loop`` (default: the running one) on that loop itself.

        For a long-lived loop such as a web server's or Jupyter's: its calls get a connection
        pool of their own and no longer hop to the router's thread and back (two wake-ups per
        call). Sync calls from that loop's thread stay refused, as on the router's own loop.
        Idempotent; the attachment ends with the loop.
        """
        self._attached.add(loop if loop is not None else asyncio.get_running_loop())

    @staticmethod
    def _running_loop() -> asyncio.AbstractEventLoop | None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    def _on_router_loop(self) -> bool:
        """Whether the running loop is one that router coroutines run on directly."""
        loop = self._running_loop()
        return loop is not None and (loop is self._loop or loop in self._attached)

    async def _submit(self, coro):
        if self._on_router_loop():
            return await coro
        fut = asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        return await asyncio.wrap_future(fut)

    def _run_sync(self, coro, timeout: float | None = None):
        if self._on_router_loop():  # waiting here would block the loop the call needs
            coro.close()
            raise RuntimeError("a sync LlmRouter call cannot run on the router's own loop")
        try:
            loop = self._ensure_loop()
        except Unavailable:
            coro.close()
            raise
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync LlmRouter call cannot run on the router's own loop")
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    def close(self) -> None:
        """Close the connection pools and stop the background loop (idempotent)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._closed = True
            self._loop = self._thread = None
        attached = list(self._attached)
        self._attached.clear()
        for other in attached:  # an attached loop's pools: closed there if it still runs
            self._close_pools_on(other)
        if loop is None:
            return

        async def shutdown() -> None:
            for p in self._providers.values():
                await p.aclose()

        if thread is not threading.current_thread():
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    def _close_pools_on(self, loop: asyncio.AbstractEventLoop) -> None:
        async def close_here() -> None:
            for p in self._providers.values():
                await p.aclose()

        try:
            if not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(close_here())  # stopped (a server shutting down)
                return
            if loop.is_running() and self._running_loop() is not loop:
                asyncio.run_coroutine_threadsafe(close_here(), loop).result(5)
                return
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        for p in self._providers.values():  # closed, or this very thread: nothing to await
            p.drop_sessions()

    def __enter__(self) -> LlmRouter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- validation --------------------------------------------------------------------------
    def _prepare(
        self,
        prompt: str | None,
        model: str | None,
        *,
        messages: Sequence[Mapping[str, str]] | None,
        system_prompt: str | None,
        temperature: float | None,
        max_tokens: int | None,
        top_p: float | None,
        stop: Sequence[str] | None,
        seed: int | None,
        fallbacks: Sequence[str] | None,
        timeout_s: float | None,
    ) -> _Call:
        if not self.config.models:
            raise Unavailable("no LLM model is configured: " + HOW_TO_CONFIGURE)
        msgs = messages_from(prompt, messages, system_prompt)
        size = sum(len(m["content"]) for m in msgs)
        if size > MAX_PROMPT_CHARS:
            raise InvalidInput(
                "prompt", f"{size} characters is more than the limit of {MAX_PROMPT_CHARS}"
            )
        if temperature is not None and not (0.0 <= float(temperature) <= 2.0):
            raise InvalidInput("temperature", f"must be in [0, 2], got {temperature!r}")
        if max_tokens is not None and (
            isinstance(max_tokens, bool)
            or not isinstance(max_tokens, int)
            or not 1 <= max_tokens <= MAX_TOKENS_LIMIT
        ):
            raise InvalidInput("max_tokens", f"must be an integer in [1, {MAX_TOKENS_LIMIT}]")
        if top_p is not None and not (0.0 < float(top_p) <= 1.0):
            raise InvalidInput("top_p", f"must be in (0, 1], got {top_p!r}")
        if timeout_s is not None and not (0.0 < float(timeout_s) <= 3600.0):
            raise InvalidInput("timeout_s", "must be in (0, 3600] seconds")
        first = self.config.resolve(model)
        names = list(fallbacks) if fallbacks is not None else list(first.fallbacks)
        chain = [first]
        for i, n in enumerate(names):
            try:
                mc = self.config.resolve(n)
            except InvalidInput as exc:
                raise InvalidInput(f"fallbacks.{i}", exc.message) from None
            if mc not in chain:
                chain.append(mc)
        ChatRequest(first.model, msgs)  # message roles and contents, checked before any call
        return _Call(
            messages=msgs,
            chain=chain,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            stop=tuple(stop) if stop is not None else None,
            seed=seed,
            timeout_s=timeout_s,
        )

    # -- bookkeeping -------------------------------------------------------------------------
    def _cooling(self, endpoint: str) -> float:
        """Seconds left of the endpoint's cooldown (0 = usable)."""
        return max(0.0, self._state[endpoint].cooldown_until - self.clock())

    def _ok(self, mc: ModelConfig, latency_ms: float) -> None:
        with self._state_lock:
            self._ok_locked(mc, latency_ms)

    def _ok_locked(self, mc: ModelConfig, latency_ms: float) -> None:
        st = self._state[mc.endpoint]
        st.requests += 1
        st.consecutive_failures = 0
        st.last_ok_at = time.time()
        ms = self._stats.setdefault(mc.name, _ModelStats())
        ms.requests += 1
        ms.last_latency_ms = latency_ms
        ms.latency_ms_ewma = (
            latency_ms
            if ms.latency_ms_ewma is None
            else 0.8 * ms.latency_ms_ewma + 0.2 * latency_ms
        )

    def _attempt_failed(self, call: Any, mc: Any, err: ProviderError, started: float) -> None:
        """Count a failed attempt against its endpoint and record it on the call."""
        self._failed(mc, err)
        ms = (time.perf_counter() - started) * 1e3
        call.attempts.append(
            Attempt(mc.name, mc.endpoint, False, ms, err.message, err.kind, err.status)
        )

    def _failed(self, mc: ModelConfig, err: ProviderError) -> None:
        with self._state_lock:
            self._failed_locked(mc, err)

    def _failed_locked(self, mc: ModelConfig, err: ProviderError) -> None:
        st = self._state[mc.endpoint]
        st.requests += 1
        st.failures += 1
        st.last_error = err.message
        self._stats.setdefault(mc.name, _ModelStats()).failures += 1
        if not err.retryable:
            # The request's fault (a 4xx such as an unknown model or an unrecorded replay),
            # not the endpoint's: it does not count towards cooling the endpoint down.
            return
        st.consecutive_failures += 1
        now = self.clock()
        until = st.cooldown_until
        if st.consecutive_failures >= self.settings.cooldown_after:
            until = max(until, now + self.settings.cooldown_s)
        if err.retry_after is not None:
            until = max(until, now + err.retry_after)
        if until > st.cooldown_until:
            st.cooldown_until = until
            log.warning(
                "LLM endpoint %s cools down for %.1f s after: %s", mc.endpoint, until - now, err
            )

    def _retry_same(self, mc: Any, err: ProviderError, attempt: int) -> bool:
        """Whether to try the same model again after ``err`` (else the next fallback): the error
        is transient, retries are left, the provider's Retry-After is within the backoff cap,
        and the endpoint is not cooling down for longer than that."""
        if not err.retryable or attempt == self.settings.max_retries:
            return False
        if err.retry_after is not None and err.retry_after > self.settings.backoff_max_s:
            return False
        return self._cooling(mc.endpoint) <= (err.retry_after or 0.0)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** (attempt - 1))
        wait = self._rng.uniform(0.0, cap)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def _timeout(self, call: _Call, mc: ModelConfig) -> float:
        return call.timeout_s or mc.timeout_s or self.config.endpoints[mc.endpoint].timeout_s

    def _skip(self, call: _Call, mc: ModelConfig) -> bool:
        left = self._cooling(mc.endpoint)
        if left > _COOLDOWN_SLACK_S:  # an asyncio.sleep may wake a clock tick early
            call.attempts.append(
                Attempt(
                    mc.name,
                    mc.endpoint,
                    False,
                    0.0,
                    f"endpoint {mc.endpoint} cooling down for {left:.1f} s",
                    "cooldown",
                    skipped=True,
                )
            )
        return left > _COOLDOWN_SLACK_S

    def _give_up(self, call: _Call) -> AllModelsFailed:
        waits = [self._cooling(m.endpoint) for m in call.chain]
        waits = [w for w in waits if w > 0]
        return AllModelsFailed(
            [m.name for m in call.chain], call.attempts, min(waits) if waits else None
        )

    def _result(self, call, mc, text, usage, finish, t0, streamed) -> LlmResult:
        ep = self.config.endpoints[mc.endpoint]
        return LlmResult(
            text=text,
            model_requested=call.chain[0].name,
            model_used=mc.name,
            endpoint=mc.endpoint,
            provider=ep.provider,
            usage=usage,
            cost_usd=mc.cost(usage.prompt_tokens, usage.completion_tokens) if usage else None,
            latency_ms=(time.perf_counter() - t0) * 1e3,
            finish_reason=finish,
            fallbacks=tuple(call.fallbacks),
            attempts=tuple(call.attempts),
            key_id=ep.key_id,
            streamed=streamed,
        )

    def _record(self, call: _Call, result: LlmResult, chunks: list[str] | None) -> None:
        if self.recorder is not None:
            self.recorder.record(
                result.model_used,
                call.messages,
                call.params(),
                result.text,
                result.usage,
                result.finish_reason,
                chunks,
                result.provider,
                result.latency_ms,
            )

    # -- whole answers -----------------------------------------------------------------------
    async def _complete(self, call: _Call) -> LlmResult:
        t0 = time.perf_counter()
        for i, mc in enumerate(call.chain):
            reason = None
            provider = self._providers[mc.endpoint]
            for attempt in range(self.settings.max_retries + 1):
                if self._skip(call, mc):
                    reason = call.attempts[-1].error
                    break
                ta = time.perf_counter()
                try:
                    c = await provider.complete(call.request(mc), self._timeout(call, mc))
                except ProviderError as err:
                    self._attempt_failed(call, mc, err, ta)
                    reason = err.message
                    if not self._retry_same(mc, err, attempt):
                        break
                    await asyncio.sleep(self._backoff(attempt + 1, err.retry_after))
                    continue
                self._ok(mc, c.latency_ms)
                call.attempts.append(
                    Attempt(mc.name, mc.endpoint, True, (time.perf_counter() - ta) * 1e3)
                )
                result = self._result(call, mc, c.text, c.usage, c.finish_reason, t0, False)
                self._record(call, result, None)
                return result
            if i + 1 < len(call.chain):
                nxt = call.chain[i + 1]
                call.fallbacks.append(FallbackInfo(mc.name, nxt.name, reason or "failed"))
                log.info("LLM fallback %s -> %s: %s", mc.name, nxt.name, reason)
        raise self._give_up(call)

    async def complete(
        self,
        prompt: str | None = None,
        model: str | None = None,
        *,
        messages: Sequence[Mapping[str, str]] | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        fallbacks: Sequence[str] | None = None,
        timeout_s: float | None = None,
    ) -> LlmResult:
        """Answer ``prompt`` (or ``messages``) with ``model`` (default: the configured default).

        Raises
        ------
        InvalidInput
            Empty/oversized prompt, temperature outside [0, 2], bad ``max_tokens``, unknown
            model (``"model"``) or fallback (``"fallbacks.i"``).
        Unavailable
            Nothing configured.
        AllModelsFailed
            Every model of the chain failed (an ``Unavailable``).
        """
        call = self._prepare(
            prompt,
            model,
            messages=messages,
            system_prompt=system_prompt,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            stop=stop,
            seed=seed,
            fallbacks=fallbacks,
            timeout_s=timeout_s,
        )
        return await self._submit(self._complete(call))

    def complete_sync(self, prompt: str | None = None, model: str | None = None, **kw) -> LlmResult:
        """:meth:`complete` from any thread that is not the router's loop."""
        return self._run_sync(self.complete(prompt, model, **kw))

    # -- streams -----------------------------------------------------------------------------
    async def _stream(self, call: _Call) -> AsyncIterator[StreamItem]:
        t0 = time.perf_counter()
        mode = self.settings.mid_stream
        text = ""  # the answer so far, as the consumer holds it
        chunks: list[str] = []
        for i, mc in enumerate(call.chain):
            reason = None
            mid = False
            provider = self._providers[mc.endpoint]
            for attempt in range(self.settings.max_retries + 1):
                if self._skip(call, mc):
                    reason = call.attempts[-1].error
                    break
                ta = time.perf_counter()
                prefill = text if mode == "continue" else ""
                sent = 0
                done: StreamEvent | None = None
                try:
                    async for ev in provider.stream(
                        call.request(mc, prefill), self._timeout(call, mc)
                    ):
                        if ev.kind == "delta":
                            sent += 1
                            text += ev.delta
                            chunks.append(ev.delta)
                            yield StreamItem("chunk", delta=ev.delta, model=mc.name)
                        else:
                            done = ev
                except ProviderError as err:
                    self._attempt_failed(call, mc, err, ta)
                    reason = err.message
                    if sent:  # text already went out: the next model takes over
                        mid = True
                        break
                    if not self._retry_same(mc, err, attempt):
                        break
                    await asyncio.sleep(self._backoff(attempt + 1, err.retry_after))
                    continue
                latency = (time.perf_counter() - ta) * 1e3
                self._ok(mc, latency)
                call.attempts.append(Attempt(mc.name, mc.endpoint, True, latency))
                assert done is not None
                result = self._result(call, mc, text, done.usage, done.finish_reason, t0, True)
                self._record(call, result, chunks)
                yield StreamItem("done", model=mc.name, result=result)
                return
            if i + 1 < len(call.chain):
                nxt = call.chain[i + 1]
                info = FallbackInfo(
                    mc.name,
                    nxt.name,
                    reason or "failed",
                    mid_stream=mid,
                    at_chars=len(text),
                    at_chunks=len(chunks),
                    mode=mode,
                    discard_chars=len(text) if mode == "restart" else 0,
                )
                if mode == "restart":
                    text, chunks = "", []
                call.fallbacks.append(info)
                log.info("LLM stream fallback %s -> %s: %s", mc.name, nxt.name, reason)
                yield StreamItem("fallback", model=nxt.name, fallback=info)
        raise self._give_up(call)

    async def stream(
        self,
        prompt: str | None = None,
        model: str | None = None,
        **kw: Any,
    ) -> AsyncIterator[StreamItem]:
        """Stream an answer: ``"chunk"`` items in order, ``"fallback"`` items when a model is
        replaced, then one ``"done"`` item with the :class:`LlmResult`. Arguments and errors as
        :meth:`complete` (validation errors raise before the first item)."""
        call = self._prepare(
            prompt,
            model,
            messages=kw.pop("messages", None),
            system_prompt=kw.pop("system_prompt", None),
            temperature=kw.pop("temperature", None),
            max_tokens=kw.pop("max_tokens", None),
            top_p=kw.pop("top_p", None),
            stop=kw.pop("stop", None),
            seed=kw.pop("seed", None),
            fallbacks=kw.pop("fallbacks", None),
            timeout_s=kw.pop("timeout_s", None),
        )
        if kw:
            raise InvalidInput(sorted(kw)[0], "unknown parameter")
        if self._on_router_loop():
            async for item in self._stream(call):
                yield item
            return
        consumer = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()

        async def produce() -> None:
            try:
                async for item in self._stream(call):
                    consumer.call_soon_threadsafe(q.put_nowait, item)
                consumer.call_soon_threadsafe(q.put_nowait, _DONE)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                consumer.call_soon_threadsafe(q.put_nowait, exc)

        fut = asyncio.run_coroutine_threadsafe(produce(), self._ensure_loop())
        try:
            while True:
                item = await q.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            fut.cancel()

    def stream_sync(
        self, prompt: str | None = None, model: str | None = None, **kw: Any
    ) -> Iterator[StreamItem]:
        """:meth:`stream` as a blocking iterator for any thread but the router's."""
        loop = self._ensure_loop()
        q: queue.Queue = queue.Queue()

        async def produce() -> None:
            try:
                async for item in self.stream(prompt, model, **kw):
                    q.put(item)
                q.put(_DONE)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                q.put(exc)

        fut = asyncio.run_coroutine_threadsafe(produce(), loop)
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            fut.cancel()

    # -- batches -----------------------------------------------------------------------------
    async def _batch(self, calls: list, concurrency: int) -> list:
        sem = asyncio.Semaphore(concurrency)

        async def one(call):
            if isinstance(call, PrismError):
                return call
            async with sem:
                try:
                    return await self._complete(call)
                except PrismError as exc:
                    return exc

        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def batch(
        self, requests: Sequence[Mapping[str, Any]], concurrency: int | None = None
    ) -> list[LlmResult | PrismError]:
        """Answer many requests (each a dict of :meth:`complete` keyword arguments, ``prompt``
        included) with at most ``concurrency`` in flight; results in request order, a failed
        or invalid request giving its error (``InvalidInput`` fields prefixed
        ``requests.<i>.``) in its place."""
        if concurrency is None:
            concurrency = self.settings.max_concurrency
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidInput("concurrency", "must be an integer >= 1")
        calls: list = []
        for i, r in enumerate(requests):
            kw = dict(r)
            try:
                unknown = set(kw) - _COMPLETE_ARGS
                if unknown:
                    raise InvalidInput(sorted(unknown)[0], "unknown parameter")
                calls.append(
                    self._prepare(
                        kw.pop("prompt", None),
                        kw.pop("model", None),
                        **{a: kw.get(a) for a in _COMPLETE_ARGS - {"prompt", "model"}},
                    )
                )
            except InvalidInput as exc:
                calls.append(InvalidInput(f"requests.{i}.{exc.field}", exc.message))
        return await self._submit(self._batch(calls, concurrency))

    def batch_sync(
        self, requests: Sequence[Mapping[str, Any]], concurrency: int | None = None
    ) -> list[LlmResult | PrismError]:
        return self._run_sync(self.batch(requests, concurrency))

    # -- models and health -------------------------------------------------------------------
    async def _discover(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        new = []
        for name, ep in self.config.endpoints.items():
            if not ep.discover or ep.provider == "replay":
                continue
            try:
                ids = sorted(await self._providers[name].list_models())
            except ProviderError as exc:
                found[name] = {"error": exc.message}
                continue
            found[name] = ids
            for mid in ids:
                other = self.config.models.get(mid)
                label = mid if other is None or other.endpoint == name else f"{name}/{mid}"
                new.append(ModelConfig(name=label, endpoint=name, model=mid, discovered=True))
        self.config = self.config.with_models(new)
        return found

    async def discover(self) -> dict[str, Any]:
        """List every discoverable endpoint's models (``GET /models``) and add the new ones
        (price unknown). Returns ``{endpoint: [model ids] | {"error": message}}``."""
        return await self._submit(self._discover())

    def discover_sync(self) -> dict[str, Any]:
        return self._run_sync(self.discover())

    def models(self) -> list[dict[str, Any]]:
        """Configured and discovered models with provider, prices and live latency."""
        out = []
        for m in self.config.models.values():
            ep = self.config.endpoints[m.endpoint]
            st = self._stats.get(m.name, _ModelStats())
            d = m.to_dict()
            d.update(
                provider=ep.provider,
                available=self._cooling(m.endpoint) == 0.0,
                requests=st.requests,
                failures=st.failures,
                latency_ms=st.latency_ms_ewma,
                last_latency_ms=st.last_latency_ms,
            )
            out.append(d)
        return out

    def model(self, name: str) -> dict[str, Any]:
        """One row of :meth:`models` (aliases resolved).

        Raises
        ------
        NotFound
            An unknown name (a 404, unlike a request's unknown ``model`` field, a 400).
        """
        try:
            mc = self.config.resolve(name)
        except InvalidInput:
            raise NotFound("model", name) from None
        return next(m for m in self.models() if m["name"] == mc.name)

    def health(self) -> dict[str, Any]:
        """Real state per endpoint: cooling down or not, failures, last error."""
        eps = []
        for name, ep in self.config.endpoints.items():
            st = self._state.get(name, _EndpointState())
            left = self._cooling(name) if name in self._state else 0.0
            eps.append(
                {
                    "name": name,
                    "provider": ep.provider,
                    "base_url": ep.base_url,
                    "key_id": ep.key_id,
                    "status": "cooling_down" if left > 0 else "ok",
                    "cooldown_left_s": left,
                    "requests": st.requests,
                    "failures": st.failures,
                    "consecutive_failures": st.consecutive_failures,
                    "last_error": st.last_error,
                    "last_ok_at": st.last_ok_at,
                }
            )
        return {
            "configured": self.config.configured,
            "models": len(self.config.models),
            "endpoints": eps,
        }


_COMPLETE_ARGS = frozenset(
    {
        "prompt",
        "model",
        "messages",
        "system_prompt",
        "temperature",
        "max_tokens",
        "top_p",
        "stop",
        "seed",
        "fallbacks",
        "timeout_s",
    }
)
