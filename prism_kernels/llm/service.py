"""The LLM service: routed queries, consensus, batches, the response cache and usage (the state).

State, in :class:`~prism_kernels.service.Collection` s (so it survives a restart):

- ``llm_cache``: one document per cache entry (:meth:`ResponseCache.records` rows: scope,
  prompt, answer, created, hits); restored with :meth:`ResponseCache.from_records` (expired
  entries dropped, embeddings recomputed). Bounded by the cache's ``max_entries``.
- ``llm_usage``: one document per provider call (:class:`~prism_kernels.llm.usage.UsageRow`:
  model, key id, prompt and completion tokens as the provider reported them, cost in integer
  nano-dollars); restored with :meth:`UsageLedger.from_records`, so totals and budgets carry
  over. Bounded by ``max_usage_rows``.

Keys: a caller's key (``key=``) is reduced to :func:`~prism_kernels.llm.usage.key_id` (a
truncated SHA-256) before anything is stored or returned; provider keys live only in the
configuration's :class:`~prism_kernels.llm.config.Secret` s and never reach a record.

Configuration: ``LlmService(config=...)`` or, by default, :func:`load_config` of the
environment (``OPENAI_API_KEY``/``OPENAI_BASE_URL``, ``ANTHROPIC_*``, ``GEMINI_API_KEY``,
``PRISM_LLM_CONFIG``, ``PRISM_LLM_REPLAY``, ``PRISM_LLM_BUDGET_USD``). With nothing configured
(or a configuration that does not load) every query raises :class:`Unavailable` saying how to
configure one (a 503). OpenAI-compatible endpoints' models are discovered (``GET /models``) once,
at construction.

Caching: a whole answer is cached under its model and sampling parameters (system prompt,
temperature, max_tokens); a repeated (exact) or near-identical (semantic, cosine >=
``cache_threshold`` between prompt embeddings) prompt is answered from the cache without
calling the provider, with ``cached: true`` and ``cost_usd: 0`` (the ``tokens_used`` are those
of the cached answer; nothing is added to usage). ``cache=False`` skips lookup and storage.
Several server processes share one cache through their relay: :meth:`LlmService.on_cache_put`
hands it each new entry, :meth:`LlmService.add_cache_record` takes in the entries of the others.
Consensus and self-consistency samples always ask the models.

Budgets: with ``PRISM_LLM_BUDGET_USD`` (or ``budget_usd``) a key id whose recorded cost reached
the budget gets :class:`~prism_kernels.llm.usage.BudgetExceeded` (a 402) before any provider is
called; cache hits stay free and are still served.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput, NotFound, PrismError, Unavailable
from prism_kernels.llm import consensus as _consensus
from prism_kernels.llm.cache import ResponseCache
from prism_kernels.llm.config import HOW_TO_CONFIGURE, LlmConfig, ModelConfig, load_config
from prism_kernels.llm.providers import messages_from
from prism_kernels.llm.router import MAX_PROMPT_CHARS, MAX_TOKENS_LIMIT, LlmResult, LlmRouter
from prism_kernels.llm.usage import UsageLedger, key_id
from prism_kernels.service import TIMING_KEY, DomainService
from prism_kernels.write_behind import WriteBehind

STRATEGIES = _consensus.STRATEGIES
MAX_CONSENSUS_MODELS = 16
MAX_SAMPLES = 32
DEFAULT_SAMPLES = 5
DEFAULT_CONSENSUS_MODELS = 5
MAX_BATCH = 256

log = logging.getLogger(__name__)


class LlmService(DomainService):
    """Queries, consensus and batches over the configured models, with cache and usage.

    Parameters
    ----------
    store, bus : see :class:`~prism_kernels.service.DomainService`.
    config : LlmConfig, optional
        Default: :func:`load_config` of ``env`` (``os.environ``).
    env : mapping, optional
        Environment to read the configuration from when ``config`` is not given.
    router : LlmRouter, optional
        A router to use (its config wins over ``config``).
    cache_entries, cache_ttl_s, cache_threshold : the response cache's size bound, time to live
        (s) and semantic similarity threshold.
    semantic_cache : bool
        Look up near-identical prompts too (exact only when False).
    max_usage_rows : int
        Usage rows kept in the store.
    discover : bool
        List OpenAI-compatible endpoints' models at construction.
    """

    domain = "llm"
    events = ("LlmAnswered", "LlmConsensusReached")

    def __init__(
        self,
        store: Any = None,
        bus: Any = None,
        *,
        config: LlmConfig | None = None,
        env: Mapping[str, str] | None = None,
        router: LlmRouter | None = None,
        cache_entries: int = 10_000,
        cache_ttl_s: float | None = 24 * 3600.0,
        cache_threshold: float = 0.95,
        semantic_cache: bool = True,
        max_usage_rows: int = 100_000,
        discover: bool = True,
    ) -> None:
        super().__init__(store, bus)
        self.config_error: str | None = None
        if router is not None:
            config = router.config
        elif config is None:
            try:
                config = load_config(env)
            except InvalidInput as exc:  # a bad models file: say so on every query (503)
                self.config_error = f"the LLM configuration does not load: {exc}"
                config = LlmConfig()
        self.router = router if router is not None else LlmRouter(config)
        self.semantic_cache = bool(semantic_cache)
        self.discovered: dict[str, Any] = {}
        if discover and any(
            e.discover and e.provider != "replay" for e in config.endpoints.values()
        ):
            try:
                self.discovered = self.router.discover_sync()
            except PrismError as exc:
                self.discovered = {"error": str(exc)}
        self.cache_docs = self.collection(
            "llm_cache", max_items=int(cache_entries), label="cache entry"
        )
        self.usage_docs = self.collection("llm_usage", max_items=int(max_usage_rows), label="usage")
        # Usage and cache rows are written behind the answer (which comes from the ledger and
        # the cache in memory): a request waits for no store write; close() writes them all.
        self.writes = WriteBehind("prism-llm-writes")
        cache_rows = [doc for _, doc in reversed(self.cache_docs.page(limit=None))]
        self.cache = ResponseCache.from_records(
            cache_rows, max_entries=int(cache_entries), ttl_s=cache_ttl_s, threshold=cache_threshold
        )
        usage_rows = [doc for _, doc in reversed(self.usage_docs.page(limit=None))]
        self.ledger = UsageLedger.from_records(
            usage_rows, prices=self._prices(), default_budget_usd=self.config.budget_usd
        )
        self._cache_listeners: tuple[Callable[[dict[str, Any]], None], ...] = ()
        self.queries = 0
        self.cache_hits = 0
        self.provider_calls = 0

    # ------------------------------------------------------------------ configuration

    @property
    def config(self) -> LlmConfig:
        return self.router.config

    def _prices(self) -> dict[str, tuple[float, float]]:
        return {
            m.name: (m.price_in_per_1k, m.price_out_per_1k)
            for m in self.config.models.values()
            if m.price_in_per_1k is not None and m.price_out_per_1k is not None
        }

    def _ready(self) -> None:
        if self.config_error:
            raise Unavailable(self.config_error)
        if not self.config.configured or not self.config.models:
            raise Unavailable("no LLM provider is configured: " + HOW_TO_CONFIGURE)

    def _resolve(self, name: str | None, field: str = "model") -> ModelConfig:
        try:
            return self.config.resolve(name)
        except InvalidInput as exc:
            raise InvalidInput(field, exc.message, **exc.details) from None

    def _check(
        self,
        prompt: Any,
        model: str | None,
        system_prompt: str | None,
        temperature: float | None,
        max_tokens: int | None,
        fallbacks: Sequence[str] | None,
    ) -> ModelConfig:
        """Validate a request (before any cache lookup, budget check or call)."""
        messages_from(prompt if isinstance(prompt, str) else None, None, system_prompt)
        size = len(prompt) + len(system_prompt or "")
        if size > MAX_PROMPT_CHARS:
            raise InvalidInput("prompt", f"{size} characters is more than {MAX_PROMPT_CHARS}")
        if temperature is not None and not (
            isinstance(temperature, (int, float)) and 0.0 <= float(temperature) <= 2.0
        ):
            raise InvalidInput("temperature", f"must be in [0, 2], got {temperature!r}")
        if max_tokens is not None and (
            isinstance(max_tokens, bool)
            or not isinstance(max_tokens, int)
            or not 1 <= max_tokens <= MAX_TOKENS_LIMIT
        ):
            raise InvalidInput("max_tokens", f"must be an integer in [1, {MAX_TOKENS_LIMIT}]")
        mc = self._resolve(model)
        for i, name in enumerate(fallbacks or ()):
            self._resolve(name, f"fallbacks.{i}")
        return mc

    # ------------------------------------------------------------------ bookkeeping

    def _scope_params(self, system_prompt, temperature, max_tokens) -> dict[str, Any]:
        p = {"system_prompt": system_prompt, "temperature": temperature, "max_tokens": max_tokens}
        return {k: v for k, v in p.items() if v is not None}

    def _embedding(self, prompt: str) -> np.ndarray | None:
        if not self.semantic_cache:
            return None
        return np.asarray(self.cache.embed_fn([prompt]), dtype=np.float32)[0]

    def _lookup(self, mc: ModelConfig, prompt: str, params: dict, emb) -> dict[str, Any] | None:
        hit = self.cache.get(
            mc.name, prompt, params or None, semantic=self.semantic_cache, embedding=emb
        )
        if hit is None:
            return None
        value = dict(hit.value)
        with self.lock:
            self.cache_hits += 1
        return {
            **value,
            "cost_usd": 0.0,
            "latency_ms": 0.0,
            "cached": True,
            "fallback_used": False,
            "fallbacks": [],
            "cache": {
                "kind": hit.kind,
                "similarity": hit.similarity,
                "age_s": round(hit.age_s, 3),
                "prompt": hit.prompt,
            },
        }

    def _store(self, mc: ModelConfig, prompt: str, params: dict, emb, result: LlmResult) -> None:
        value = {
            "text": result.text,
            "model_used": result.model_used,
            "tokens_used": result.tokens_used,
            "finish_reason": result.finish_reason,
        }
        now = time.time()
        key = self.cache.put(mc.name, prompt, value, params or None, embedding=emb, created=now)
        row = {
            "key": key,
            "scope": {"model": mc.name, "params": params},
            "prompt": prompt,
            "value": value,
            "created": now,
            "last_used": now,
            "hits": 0,
        }
        self.writes.put(self.cache_docs, key, row)
        for callback in self._cache_listeners:
            try:
                callback(row)
            except Exception:  # a broken listener (a relay) must not fail the query
                log.exception("LLM cache listener failed")

    # ------------------------------------------------------------------ shared cache

    def on_cache_put(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback`` with each new cache row (the ``llm_cache`` document: key, scope,
        prompt, value, created, last_used, hits) once it is stored; it must not block.

        A relay uses it to carry the row to other processes (:meth:`add_cache_record` there).
        """
        self._cache_listeners = (*self._cache_listeners, callback)

    def add_cache_record(self, row: Mapping[str, Any]) -> bool:
        """Insert a cache row made by another process into this one's cache (memory only: its
        maker stored it). Exact and semantic lookups find it; nothing is re-announced. Returns
        False (and changes nothing) for a malformed row.
        """
        try:
            scope = row["scope"]
            model, prompt, value = scope["model"], row["prompt"], row["value"]
            params = scope.get("params") or None
            created = float(row["created"])
            if not isinstance(prompt, str) or not isinstance(model, str):
                return False
            if not math.isfinite(created) or len(prompt) > MAX_PROMPT_CHARS:
                return False
            if params is not None and not isinstance(params, dict):
                return False
            self.cache.put(
                model, prompt, value, params, embedding=self._embedding(prompt), created=created
            )
        except (KeyError, TypeError, ValueError, AttributeError, PrismError):
            return False
        return True

    def _account(self, result: LlmResult, kid: str, request_id: str) -> float | None:
        """Record the provider's reported usage; the cost (USD) as the ledger priced it."""
        with self.lock:
            self.provider_calls += 1
        if result.usage is None:
            return result.cost_usd
        row = self.ledger.record(
            result.model_used,
            result.usage.prompt_tokens,
            result.usage.completion_tokens,
            kid,
            request_id,
        )
        self.writes.put(
            self.usage_docs,
            request_id,
            {
                "time": row.time,
                "model": row.model,
                "key_id": row.key_id,
                "prompt_tokens": row.prompt_tokens,
                "completion_tokens": row.completion_tokens,
                "cost_nanousd": row.cost_nanousd,
                "request_id": row.request_id,
            },
        )
        return row.cost_usd

    def _answer(self, result: LlmResult, kid: str, request_id: str) -> dict[str, Any]:
        cost = self._account(result, kid, request_id)
        return {
            "id": request_id,
            "text": result.text,
            "model_used": result.model_used,
            "model_requested": result.model_requested,
            "provider": result.provider,
            "tokens_used": result.tokens_used,
            "cost_usd": cost,
            "latency_ms": round(result.latency_ms, 3),
            "cached": False,
            "fallback_used": result.fallback_used,
            "fallbacks": [f.to_dict() for f in result.fallbacks],
            "finish_reason": result.finish_reason,
            "key_id": kid,
        }

    def _announce(self, out: dict[str, Any]) -> None:
        self.publish(
            "LlmAnswered",
            {
                "request_id": out.get("id"),
                "model_used": out.get("model_used"),
                "tokens_used": out.get("tokens_used"),
                "cost_usd": out.get("cost_usd"),
                "latency_ms": out.get("latency_ms"),
                "cached": out.get("cached"),
                "fallback_used": out.get("fallback_used"),
            },
        )

    # ------------------------------------------------------------------ queries

    def query(
        self,
        prompt: str,
        model: str | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        fallbacks: Sequence[str] | None = None,
        cache: bool = True,
        key: str | None = None,
        stream: bool = False,
    ) -> dict[str, Any] | Iterator[dict[str, Any]]:
        """One answer: ``text``, ``model_used``, ``tokens_used`` {prompt, completion, total},
        ``cost_usd``, ``latency_ms``, ``cached``, ``fallback_used`` (+ ``fallbacks``, ``id``,
        ``key_id``, ``computation_time_ms``). With ``stream=True``, the items of
        :meth:`stream` instead (validated and budget-checked before it returns).

        Raises
        ------
        InvalidInput
            Empty or oversized prompt, temperature outside [0, 2], bad max_tokens, unknown
            model or fallback (the field named).
        Unavailable
            Nothing configured, or every model of the chain failed.
        BudgetExceeded
            The key id spent its budget (only when the provider would be called).
        """
        if stream:
            return self.stream(
                prompt, model, system_prompt, temperature, max_tokens, fallbacks, cache, key
            )
        steps = self._query_steps(
            prompt, model, system_prompt, temperature, max_tokens, fallbacks, cache, key
        )
        value: Any = None
        while True:
            try:
                step, args = steps.send(value)
            except StopIteration as done:
                return done.value
            value = self._cached(*args) if step == "cached" else self.router.complete_sync(**args)

    async def aquery(
        self,
        prompt: str,
        model: str | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        fallbacks: Sequence[str] | None = None,
        cache: bool = True,
        key: str | None = None,
        stream: bool = False,
    ) -> dict[str, Any] | Iterator[dict[str, Any]]:
        """:meth:`query`, awaited (with ``stream=True``: :meth:`stream`'s items, validated and
        budget-checked in the loop's default executor before this returns).

        On a loop attached with :meth:`attach_loop` (a server's) the provider call runs on that
        loop without thread hops; elsewhere on the router's thread. The cache lookup (an
        embedding and a matrix product over the cached prompts) runs in the loop's default
        executor and the store writes behind the answer (:attr:`writes`): the loop itself only
        validates, books in memory and waits. Same answer, errors and bookkeeping as
        :meth:`query` (the same steps, :meth:`_query_steps`).
        """
        loop = asyncio.get_running_loop()
        if stream:
            return await loop.run_in_executor(
                None,
                self.stream,
                prompt,
                model,
                system_prompt,
                temperature,
                max_tokens,
                fallbacks,
                cache,
                key,
            )
        steps = self._query_steps(
            prompt, model, system_prompt, temperature, max_tokens, fallbacks, cache, key
        )
        value: Any = None
        while True:
            try:
                step, args = steps.send(value)
            except StopIteration as done:
                return done.value
            if step == "cached":
                value = await loop.run_in_executor(None, self._cached, *args)
            else:
                value = await self.router.complete(**args)

    def _query_steps(
        self, prompt, model, system_prompt, temperature, max_tokens, fallbacks, cache, key
    ) -> Generator[tuple[str, Any], Any, dict[str, Any]]:
        """One query as steps, without I/O of its own: yields ``("cached", args)`` to be sent
        :meth:`_cached` ``(*args)``, then (on a miss) ``("call", kwargs)`` to be sent the
        router's result for ``kwargs``; returns the answer. :meth:`query` and :meth:`aquery`
        drive it, one blocking, one awaiting."""
        self._ready()
        mc = self._check(prompt, model, system_prompt, temperature, max_tokens, fallbacks)
        kid = key_id(key)
        request_id = uuid.uuid4().hex
        with self.timed("query") as t:
            params = self._scope_params(system_prompt, temperature, max_tokens)
            emb, out = (yield "cached", (mc, prompt, params)) if cache else (None, None)
            if out is not None:
                out.update(id=request_id, key_id=kid)
            else:
                self.ledger.check(kid)
                result = yield (
                    "call",
                    {
                        "prompt": prompt,
                        "model": mc.name,
                        "system_prompt": system_prompt,
                        "temperature": temperature,
                        "max_tokens": max_tokens,
                        "fallbacks": list(fallbacks) if fallbacks is not None else None,
                    },
                )
                out = self._settle(result, kid, request_id, mc, prompt, params, emb, cache)
        with self.lock:
            self.queries += 1
        self._announce(out)
        return {**out, TIMING_KEY: t.ms}

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Let provider calls awaited on ``loop`` (default: the running one) run there: for a
        loop that lives as long as this service, such as a web server's
        (:meth:`LlmRouter.attach_loop`). Idempotent."""
        self.router.attach_loop(loop)

    def _cached(
        self, mc: ModelConfig, prompt: str, params: dict
    ) -> tuple[np.ndarray | None, dict[str, Any] | None]:
        """The prompt's embedding (None without the semantic cache) and the cached answer."""
        emb = self._embedding(prompt)
        return emb, self._lookup(mc, prompt, params, emb)

    def _settle(self, result, kid, request_id, mc, prompt, params, emb, cache) -> dict[str, Any]:
        """Account a provider's answer (usage row) and cache it; the answer's fields."""
        out = self._answer(result, kid, request_id)
        if cache:
            self._store(mc, prompt, params, emb, result)
        return out

    def stream(
        self,
        prompt: str,
        model: str | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        fallbacks: Sequence[str] | None = None,
        cache: bool = True,
        key: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stream one answer: ``{"type": "chunk", "delta", "model"}`` items in order,
        ``{"type": "fallback", ...}`` when a model is replaced (``discard_chars`` of text
        already sent are to be dropped in ``restart`` mode), then ``{"type": "done", ...}``
        with the fields of :meth:`query`. A cached answer comes as one chunk.

        Validation, budget and configuration errors raise before the first item.
        """
        self._ready()
        mc = self._check(prompt, model, system_prompt, temperature, max_tokens, fallbacks)
        kid = key_id(key)
        params = self._scope_params(system_prompt, temperature, max_tokens)
        emb = self._embedding(prompt) if cache else None
        hit = self._lookup(mc, prompt, params, emb) if cache else None
        if hit is None:
            self.ledger.check(kid)
        return self._stream_items(
            hit, mc, prompt, system_prompt, temperature, max_tokens, fallbacks, cache, kid, emb
        )

    def _stream_items(
        self, hit, mc, prompt, system_prompt, temperature, max_tokens, fallbacks, cache, kid, emb
    ) -> Iterator[dict[str, Any]]:
        request_id = uuid.uuid4().hex
        t0 = time.perf_counter()
        if hit is not None:
            hit.update(id=request_id, key_id=kid)
            yield {"type": "chunk", "delta": hit["text"], "model": hit["model_used"]}
            out = hit
        else:
            out = None
            for item in self.router.stream_sync(
                prompt,
                mc.name,
                system_prompt=system_prompt,
                temperature=temperature,
                max_tokens=max_tokens,
                fallbacks=list(fallbacks) if fallbacks is not None else None,
            ):
                if item.type == "done":
                    out = self._answer(item.result, kid, request_id)
                    if cache:
                        params = self._scope_params(system_prompt, temperature, max_tokens)
                        self._store(mc, prompt, params, emb, item.result)
                else:
                    yield item.to_dict()
        ms = round((time.perf_counter() - t0) * 1e3, 3)
        with self.lock:
            self.queries += 1
        self._announce(out)
        yield {"type": "done", **out, TIMING_KEY: ms}

    # ------------------------------------------------------------------ consensus

    def _consensus_models(self, models: Sequence[Any] | None) -> tuple[list[ModelConfig], list]:
        if models is None or len(models) == 0:
            names = [m.name for m in self.config.models.values() if not m.discovered]
            names = names or list(self.config.models)
            models = names[:DEFAULT_CONSENSUS_MODELS]
        if isinstance(models, str):
            raise InvalidInput("models", "expected a list of model names")
        if len(models) > MAX_CONSENSUS_MODELS:
            raise InvalidInput("models", f"at most {MAX_CONSENSUS_MODELS} models")
        out = [self._resolve(n, f"models.{i}") for i, n in enumerate(models)]
        return out, [m.weight for m in out]

    def consensus(
        self,
        prompt: str,
        models: Sequence[str] | None = None,
        strategy: str = "semantic",
        weights: Sequence[float] | None = None,
        min_agreement: float | None = None,
        samples: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Ask several models (or one model ``samples`` times) and agree on one answer.

        ``strategy``: one of :data:`STRATEGIES` (``majority``, ``weighted``, ``semantic``,
        ``council``, ``self_consistency``); anything else is an ``InvalidInput("strategy")``
        listing them. ``weights`` default to the models' configured weights. ``council``: every
        answering model ranks the anonymised answers (a judge that fails abstains); Borda
        aggregation, no chairman (the winner's answer is the consensus). ``self_consistency``:
        ``samples`` (default 5) answers of the first model, then a semantic vote.

        Returns consensus_text, agreement_score, reached (``agreement >= min_agreement``;
        None without one), individual_responses [{model, text, tokens, cost_usd, latency_ms,
        cluster, weight}], participating_models, failed_models, total_cost_usd, latency_ms,
        strategy, entropy, similarity (N x N for semantic), samples (self-consistency).
        """
        self._ready()
        strategy = _consensus.check_strategy(strategy)
        messages_from(prompt if isinstance(prompt, str) else None)
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidInput("prompt", f"at most {MAX_PROMPT_CHARS} characters")
        mcs, default_w = self._consensus_models(models)
        self._check(prompt, mcs[0].name, None, temperature, max_tokens, None)
        if weights is not None:
            if len(weights) != len(mcs):
                raise InvalidInput("weights", f"expected {len(mcs)} weights (one per model)")
            # None: the model's configured weight
            weights = [d if x is None else x for x, d in zip(weights, default_w, strict=True)]
            if any(not (float(x) >= 0) for x in weights) or not sum(weights) > 0:
                raise InvalidInput("weights", "weights must be >= 0 with a positive sum")
        if min_agreement is not None and not 0.0 <= float(min_agreement) <= 1.0:
            raise InvalidInput("min_agreement", "must be in [0, 1]")
        if strategy == "self_consistency":
            n = DEFAULT_SAMPLES if samples is None else samples
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
                raise InvalidInput("samples", f"must be an integer in [1, {MAX_SAMPLES}]")
            mcs, default_w = [mcs[0]] * n, [1.0] * n
            weights = None
        elif strategy == "council" and len(mcs) < 2:
            raise InvalidInput("models", "a council needs at least two models")
        kid = key_id(key)
        self.ledger.check(kid)
        w = list(weights) if weights is not None else default_w
        with self.timed("consensus") as t:
            reqs = [
                {"prompt": prompt, "model": m.name, "temperature": temperature}
                | ({"max_tokens": max_tokens} if max_tokens is not None else {})
                for m in mcs
            ]
            results = self.router.batch_sync(reqs)
            answers, rows, failed, ws = [], [], [], []
            for m, wt, res in zip(mcs, w, results, strict=True):
                if isinstance(res, PrismError):
                    failed.append({"model": m.name, "error": str(res)})
                    continue
                rid = uuid.uuid4().hex
                a = self._answer(res, kid, rid)
                answers.append(res.text)
                ws.append(float(wt))
                rows.append(
                    {
                        "model": m.name,
                        "model_used": res.model_used,
                        "text": res.text,
                        "tokens": res.tokens_used,
                        "cost_usd": a["cost_usd"],
                        "latency_ms": a["latency_ms"],
                        "weight": float(wt),
                    }
                )
            if not answers:
                raise Unavailable(
                    "no model answered: " + "; ".join(f"{f['model']}: {f['error']}" for f in failed)
                )
            if strategy in ("majority", "weighted"):
                r = _consensus.consensus(answers, strategy, ws if strategy == "weighted" else None)
            elif strategy == "semantic":
                r = _consensus.semantic(answers, ws, prompt=prompt)
            elif strategy == "self_consistency":
                r = _consensus.self_consistency(lambda i: answers[i], len(answers), prompt=prompt)
            else:
                judges = {}
                for row in rows:
                    judges.setdefault(row["model"], self._judge(row["model"], kid, temperature))
                r = _consensus.council(
                    prompt, answers, judges, models=[row["model"] for row in rows]
                )
            for row, lab in zip(rows, r.labels, strict=True):
                row["cluster"] = int(lab)
        total = sum(row["cost_usd"] or 0.0 for row in rows)
        out: dict[str, Any] = {
            "consensus_text": r.text,
            "agreement_score": r.agreement,
            "reached": None if min_agreement is None else r.reached(float(min_agreement)),
            "min_agreement": min_agreement,
            "strategy": strategy,
            "entropy": r.entropy,
            "individual_responses": rows,
            "participating_models": list(dict.fromkeys(row["model"] for row in rows)),
            "failed_models": failed,
            "total_cost_usd": total,
            "latency_ms": t.ms,
            "clusters": len(r.group_weights),
            "cluster_weights": r.group_weights,
            "winner_index": r.index,
        }
        if strategy in ("semantic", "self_consistency") and "similarity" in r.details:
            out["similarity"] = r.details["similarity"]
        if strategy == "council":
            out["borda"] = r.details["borda"]
        if strategy == "self_consistency":
            sim = r.details.get("similarity")
            out["samples"] = [
                {
                    "text": a,
                    "cluster": int(lab),
                    "similarity_to_consensus": None if sim is None else sim[i][r.index],
                }
                for i, (a, lab) in enumerate(zip(answers, r.labels, strict=True))
            ]
            out["num_unique_answers"] = len(r.group_weights)
        self.publish(
            "LlmConsensusReached",
            {
                "strategy": strategy,
                "agreement_score": r.agreement,
                "participating_models": out["participating_models"],
                "total_cost_usd": total,
                "reached": out["reached"],
            },
        )
        return {**out, TIMING_KEY: t.ms}

    def _judge(self, model: str, kid: str, temperature: float | None):
        """A council judge: the model asked to rank; a failure abstains (empty ranking)."""

        def judge(text: str) -> str:
            try:
                res = self.router.complete_sync(text, model, temperature=temperature)
            except PrismError:
                return ""
            self._account(res, kid, uuid.uuid4().hex)
            return res.text

        return judge

    # ------------------------------------------------------------------ batches

    def batch(
        self,
        requests: Sequence[Mapping[str, Any]],
        concurrency: int | None = None,
        key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Many queries (each a dict of :meth:`query` arguments but ``key``), at most
        ``concurrency`` in flight; results in request order, a failed request giving
        ``{"error": {"field"?, "message", "status"}}`` in its place. Cached answers are served
        from the cache; invalid requests raise ``InvalidInput("requests.<i>.<field>")``."""
        self._ready()
        if isinstance(requests, (str, bytes)) or not 1 <= len(requests) <= MAX_BATCH:
            raise InvalidInput("requests", f"between 1 and {MAX_BATCH} requests")
        allowed = {
            "prompt",
            "model",
            "system_prompt",
            "temperature",
            "max_tokens",
            "fallbacks",
            "cache",
        }
        plans = []
        for i, r in enumerate(requests):
            r = dict(r)
            bad = set(r) - allowed
            if bad:
                raise InvalidInput(f"requests.{i}.{sorted(bad)[0]}", "unknown parameter")
            try:
                mc = self._check(
                    r.get("prompt"),
                    r.get("model"),
                    r.get("system_prompt"),
                    r.get("temperature"),
                    r.get("max_tokens"),
                    r.get("fallbacks"),
                )
            except InvalidInput as exc:
                raise InvalidInput(f"requests.{i}.{exc.field}", exc.message) from None
            plans.append((r, mc))
        kid = key_id(key)
        out: list[dict[str, Any] | None] = [None] * len(plans)
        with self.timed("batch"):
            unanswered = []
            for i, (r, mc) in enumerate(plans):
                use_cache = r.get("cache", True) is not False
                params = self._scope_params(
                    r.get("system_prompt"), r.get("temperature"), r.get("max_tokens")
                )
                emb = self._embedding(r["prompt"]) if use_cache else None
                hit = self._lookup(mc, r["prompt"], params, emb) if use_cache else None
                if hit is not None:
                    out[i] = {**hit, "id": uuid.uuid4().hex, "key_id": kid}
                else:
                    unanswered.append((i, r, mc, params, emb, use_cache))
            if unanswered:
                self.ledger.check(kid)
                calls = [
                    {k: v for k, v in r.items() if k != "cache" and v is not None}
                    | {"model": mc.name}
                    for _, r, mc, _, _, _ in unanswered
                ]
                results = self.router.batch_sync(calls, concurrency)
                for (i, r, mc, params, emb, use_cache), res in zip(
                    unanswered, results, strict=True
                ):
                    if isinstance(res, PrismError):
                        out[i] = {
                            "error": {
                                "message": str(res),
                                "field": getattr(res, "field", None),
                                "status": 400 if isinstance(res, InvalidInput) else 503,
                            }
                        }
                        continue
                    out[i] = self._answer(res, kid, uuid.uuid4().hex)
                    if use_cache:
                        self._store(mc, r["prompt"], params, emb, res)
        with self.lock:
            self.queries += len(plans)
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ models and state

    def _model_row(self, row: dict[str, Any]) -> dict[str, Any]:
        pin, pout = row.get("price_in_per_1k"), row.get("price_out_per_1k")
        return {
            "name": row["name"],
            "provider": row["provider"],
            "endpoint": row["endpoint"],
            "model": row["model"],
            "enabled": bool(row["available"]),
            "available": bool(row["available"]),
            "discovered": bool(row["discovered"]),
            "price_in_per_1k": pin,
            "price_out_per_1k": pout,
            "cost_per_1k_tokens": None if pin is None or pout is None else (pin + pout) / 2,
            "weight": row["weight"],
            "fallbacks": row["fallbacks"],
            "requests": row["requests"],
            "failures": row["failures"],
            "avg_latency_ms": row["latency_ms"],
            "last_latency_ms": row["last_latency_ms"],
        }

    def models(self) -> list[dict[str, Any]]:
        """Configured and discovered models: provider, prices, weight, live latency (EWMA of
        answered calls, ms; None before any) and availability (endpoint not cooling down)."""
        return [self._model_row(r) for r in self.router.models()]

    def model(self, name: str) -> dict[str, Any]:
        """One model (an alias resolves); :class:`NotFound` (a 404) when unknown."""
        if not isinstance(name, str) or not name:
            raise NotFound("model", str(name))
        return self._model_row(self.router.model(name))

    def cache_stats(self) -> dict[str, Any]:
        """Entries, hits (exact, semantic), misses, hit rate (None before any lookup), bytes,
        evictions, expirations, bound, TTL, threshold, whether semantic lookup is on."""
        s = self.cache.stats()
        return {
            **s,
            "total_entries": s["entries"],
            "memory_usage_mb": s["bytes"] / 2**20,
            "semantic": self.semantic_cache,
            "avg_similarity_threshold": s["threshold"],
        }

    def usage(self) -> dict[str, Any]:
        """Totals, per model and per key id (with budget and remaining), from the providers'
        reported tokens; costs in USD (exact sums of integer nano-dollars)."""
        out = self.ledger.summary()
        out["budget_usd"] = self.ledger.default_budget_usd
        return out

    def health_details(self) -> dict[str, Any]:
        rh = self.router.health()
        st = self.cache.stats()
        lat = [m["avg_latency_ms"] for m in self.models() if m["avg_latency_ms"] is not None]
        return {
            "configured": bool(self.config.configured) and not self.config_error,
            "config_error": self.config_error,
            "how_to_configure": None if self.config.configured else HOW_TO_CONFIGURE,
            "models_available": sum(m["available"] for m in self.models()),
            "models": rh["models"],
            "endpoints": rh["endpoints"],
            "cache_entries": st["entries"],
            "cache_hit_rate": st["hit_rate"],
            "avg_latency_ms": sum(lat) / len(lat) if lat else None,
            "queries": self.queries,
            "cache_hits": self.cache_hits,
            "provider_calls": self.provider_calls,
            "usage_requests": self.ledger.totals()["requests"],
            "total_cost_usd": self.ledger.totals()["cost_usd"],
        }

    def close(self) -> None:
        self.writes.close()  # every queued usage and cache row, before the store closes
        self.router.close()
