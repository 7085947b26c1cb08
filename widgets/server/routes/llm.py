"""``/api/v1/llm``: real language-model calls through :class:`prism_kernels.llm.service.LlmService`.

Providers are configured the way each vendor's SDK is (``OPENAI_API_KEY`` + ``OPENAI_BASE_URL``
for any OpenAI-compatible server, ``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``, a models file in
``PRISM_LLM_CONFIG``, or a recorded replay file in ``PRISM_LLM_REPLAY``); with none, the query
routes answer 503 saying so. A spent budget (``PRISM_LLM_BUDGET_USD``) is a 402.

Payloads: the original ``{prompt, model?, temperature?, max_tokens?, system_prompt?}`` of
``/query`` plus ``fallbacks`` and ``cache``; ``/consensus`` takes ``models`` as names or the
original client's ``{name, weight}`` objects, ``strategy`` or ``voting_strategy`` (the client's
``majority_vote`` and ``weighted_average`` are ``majority`` and ``weighted``; the original's
``quantum`` and ``thermodynamic`` had no meaning and are a 400 listing the strategies),
``min_agreement``, ``samples`` (or ``num_samples``) for self-consistency.

Streaming, two ways with the same frames (:func:`stream_frame`): ``POST /query`` with
``stream: true`` answers as server-sent events (``text/event-stream``: ``event: LlmChunk`` ...,
``LlmFallback`` when a model takes over mid-stream, then ``LlmDone``, or ``Error``); or, on the
WebSocket ``/ws``, send ``{"type": "LlmStream", "request_id", "prompt", ...}`` and receive the
same frames there, beside the other subscriptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator

from prism_kernels.llm.router import MAX_PROMPT_CHARS, MAX_TOKENS_LIMIT
from prism_kernels.llm.service import (
    MAX_BATCH,
    MAX_CONSENSUS_MODELS,
    MAX_SAMPLES,
    STRATEGIES,
    LlmService,
)
from widgets.server.models import ApiModel, ApiResponse, DomainHealth, NameChoice, Timed
from widgets.server.routing import EventStream, Request, RouteGroup

MAX_NAME = 200
MAX_FALLBACKS = 8
BUDGET = ("402",)  # routes that may call a provider answer 402 once a budget is spent


class EndpointHealth(ApiResponse):
    name: str
    provider: str
    base_url: str
    key_id: str | None = Field(description="A hash of the endpoint's key (never the key)")
    status: str = Field(description="ok or cooling_down")
    cooldown_left_s: float
    requests: int
    failures: int
    consecutive_failures: int
    last_error: str | None
    last_ok_at: float | None = Field(description="Unix time of the last answer")


class LlmHealth(DomainHealth):
    """``GET /api/v1/llm/health``: configured endpoints, their state, cache and usage."""

    configured: bool = Field(description="A provider or replay file is configured")
    config_error: str | None = Field(description="Why the configuration did not load")
    how_to_configure: str | None
    models_available: int = Field(description="Models whose endpoint is not cooling down")
    models: int = Field(description="Configured and discovered models")
    endpoints: list[EndpointHealth]
    cache_entries: int
    cache_hit_rate: float | None = Field(description="None before any lookup")
    avg_latency_ms: float | None = Field(description="Mean over models of their latency EWMA")
    queries: int
    cache_hits: int
    provider_calls: int
    usage_requests: int = Field(description="Provider calls with reported usage (persisted)")
    total_cost_usd: float


ROUTES = RouteGroup(
    "llm",
    "Language models: routed queries with fallbacks, consensus, cache, usage and budgets",
    service=LlmService,
    health=LlmHealth,
)

Strategy = NameChoice(
    *STRATEGIES,
    aliases={
        "majority_vote": "majority",
        "plurality": "majority",
        "weighted_average": "weighted",
        "weighted_vote": "weighted",
        "weighted_majority": "weighted",
        "semantic_similarity": "semantic",
        "llm_council": "council",
        "selfconsistency": "self_consistency",
    },
    description="majority, weighted, semantic, council or self_consistency",
)


def _key_of(req: Any) -> str | None:
    """The caller's identity (a hash of its API key; the client address without auth)."""
    return req.identity


# ---------------------------------------------------------------- query


class QueryRequest(ApiModel):
    prompt: str = Field(
        min_length=1, max_length=MAX_PROMPT_CHARS, description="The user message (not empty)"
    )
    model: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_NAME,
        description="A model or alias (default: the configured default, else the first model)",
    )
    system_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    fallbacks: list[str] | None = Field(
        None,
        max_length=MAX_FALLBACKS,
        description="Models tried in order when the model fails (default: its configured ones)",
    )
    cache: bool = Field(True, description="False: neither read nor write the response cache")
    stream: bool = Field(
        False,
        description="True: answer as server-sent events (text/event-stream): LlmChunk events "
        "as the text arrives, LlmFallback when another model takes over, then LlmDone",
    )

    @field_validator("fallbacks")
    @classmethod
    def _names(cls, v: list[str] | None) -> list[str] | None:
        for n in v or ():
            if not n or len(n) > MAX_NAME:
                raise ValueError(f"model names are 1 to {MAX_NAME} characters")
        return v

    def args(self, req: Any = None) -> dict[str, Any]:
        """:meth:`LlmService.query`'s arguments."""
        return {
            "prompt": self.prompt,
            "model": self.model,
            "system_prompt": self.system_prompt,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "fallbacks": self.fallbacks,
            "cache": self.cache,
            "key": _key_of(req),
            "stream": self.stream,
        }


class TokensUsed(ApiResponse):
    prompt: int
    completion: int
    total: int


class FallbackOut(ApiResponse):
    from_model: str
    to_model: str
    reason: str
    mid_stream: bool
    at_chars: int
    at_chunks: int
    mode: str | None
    discard_chars: int


class CacheInfo(ApiResponse):
    kind: str = Field(description="exact or semantic")
    similarity: float = Field(description="Cosine similarity of the prompts (1 for exact)")
    age_s: float
    prompt: str = Field(description="The cached prompt that matched")


class Answer(ApiResponse):
    """One answer (the fields of ``/query``)."""

    id: str | None = Field(None, description="Request id (the usage row's)")
    text: str | None = None
    model_used: str | None = None
    model_requested: str | None = None
    provider: str | None = None
    tokens_used: TokensUsed | None = Field(
        None, description="As the provider reported them (a cached answer: its original tokens)"
    )
    cost_usd: float | None = Field(
        None, description="Priced from the model's table; 0 for a cached answer; None unpriced"
    )
    latency_ms: float | None = None
    cached: bool | None = None
    fallback_used: bool | None = None
    fallbacks: list[FallbackOut] | None = None
    finish_reason: str | None = None
    key_id: str | None = Field(None, description="A hash of the caller's key (never the key)")
    cache: CacheInfo | None = None


class QueryResult(Answer, Timed):
    pass


EXAMPLE_QUERY = {"prompt": "What is the capital of France?", "max_tokens": 64}


@ROUTES.post(
    "/query",
    request=QueryRequest,
    response=QueryResult,
    example=EXAMPLE_QUERY,
    summary="Ask one model (with fallbacks and the response cache)",
    description="Retries with backoff, a cooldown for failing endpoints and fallbacks; a "
    "repeated (or near-identical) prompt is answered from the cache (cached: true, cost 0). "
    "stream: true answers as server-sent events (LlmChunk..., LlmDone; validation, "
    "configuration and budget errors still come as JSON before the stream starts). No "
    "provider configured: 503 naming the variables to set; budget spent: 402.",
)
async def query(req: Request) -> dict | EventStream:
    # awaited on the server's loop: the provider call makes no thread hop (see aquery)
    answer = await (await req.aservice(LlmService)).aquery(**req.body.args(req))
    if req.body.stream:  # validated (and budget-checked) already; the stream starts when read
        return LlmFrame.event_stream(answer, req.request_id)
    return answer


query.extra_statuses = BUDGET
query.event_stream = "With stream: true, server-sent events: LlmChunk, LlmFallback, LlmDone, Error"


def stream_frame(item: dict[str, Any], request_id: str, index: int) -> dict[str, Any]:
    """One item of :meth:`LlmService.stream` as the frame clients receive (SSE and WebSocket).

    ``chunk`` -> ``LlmChunk`` {request_id, delta, index (of the chunk), model}; ``fallback`` ->
    ``LlmFallback`` (the service's fields: which model failed, which takes over, how many
    characters already sent to drop); ``done`` -> ``LlmDone`` {request_id, text, model_used,
    tokens_used, cost_usd, latency_ms, cached, fallback_used}.
    """
    kind = item.get("type")
    if kind == "chunk":
        return {
            "type": "LlmChunk",
            "request_id": request_id,
            "delta": item.get("delta", ""),
            "index": index,
            "model": item.get("model"),
        }
    if kind == "fallback":
        return {
            **{k: v for k, v in item.items() if k != "type"},
            "type": "LlmFallback",
            "request_id": request_id,
        }
    return {"type": "LlmDone", "request_id": request_id, **{k: item.get(k) for k in DONE_FIELDS}}


DONE_FIELDS = (
    "text",
    "model_used",
    "tokens_used",
    "cost_usd",
    "latency_ms",
    "cached",
    "fallback_used",
)


class LlmFrame(ApiResponse):
    """One frame of a streamed answer, as server-sent events and WebSocket frames carry it
    (:func:`stream_frame`)."""

    type: str = Field(description="LlmChunk, LlmFallback or LlmDone")
    request_id: str

    @classmethod
    def event_stream(cls, items: Iterator[dict[str, Any]], request_id: str) -> EventStream:
        """The items of :meth:`LlmService.stream` as server-sent events."""

        def frames() -> Iterator[tuple[str, dict[str, Any]]]:
            index = 0
            try:
                for item in items:
                    frame = stream_frame(item, request_id, index)
                    if frame["type"] == "LlmChunk":
                        index += 1
                    yield frame["type"], frame
            finally:
                items.close()  # the client went away: stop reading from the provider

        return EventStream(frames())


# ---------------------------------------------------------------- consensus


class ModelWeight(ApiModel):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    weight: float | None = Field(None, ge=0.0, le=1e6)


class ConsensusRequest(ApiModel):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    models: list[str | ModelWeight] | None = Field(
        None,
        max_length=MAX_CONSENSUS_MODELS,
        description="Model names or {name, weight}; default: the configured models (up to 5)",
    )
    model: str | None = Field(
        None, min_length=1, max_length=MAX_NAME, description="One model (self-consistency)"
    )
    strategy: Strategy = Field(
        "semantic", validation_alias=AliasChoices("strategy", "voting_strategy")
    )
    min_agreement: float | None = Field(None, ge=0.0, le=1.0)
    samples: int | None = Field(
        None,
        ge=1,
        le=MAX_SAMPLES,
        validation_alias=AliasChoices("samples", "num_samples"),
        description="Answers sampled for self_consistency (default 5)",
    )
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)

    @field_validator("models")
    @classmethod
    def _names(cls, v: list | None) -> list | None:
        for n in v or ():
            if isinstance(n, str) and not 1 <= len(n) <= MAX_NAME:
                raise ValueError(f"model names are 1 to {MAX_NAME} characters")
        return v

    @model_validator(mode="after")
    def _one_model(self) -> ConsensusRequest:
        if not self.models and self.model:
            self.models = [self.model]
        return self

    def args(self, req: Any = None) -> dict[str, Any]:
        """:meth:`LlmService.consensus`'s arguments."""
        names, weights = None, None
        if self.models:
            names = [m if isinstance(m, str) else m.name for m in self.models]
            given = [None if isinstance(m, str) else m.weight for m in self.models]
            weights = given if any(w is not None for w in given) else None
        return {
            "prompt": self.prompt,
            "models": names,
            "strategy": self.strategy,
            "weights": weights,
            "min_agreement": self.min_agreement,
            "samples": self.samples,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "key": _key_of(req),
        }


class IndividualResponse(ApiResponse):
    model: str
    model_used: str = Field(description="The model that answered (a fallback may have)")
    text: str
    tokens: TokensUsed | None
    cost_usd: float | None
    latency_ms: float
    weight: float
    cluster: int = Field(description="Group of equivalent answers (council: the answer itself)")


class FailedModel(ApiResponse):
    model: str
    error: str


class Sample(ApiResponse):
    text: str
    cluster: int
    similarity_to_consensus: float | None


class ConsensusResult(Timed):
    """The consensus, with the original client's names (``confidence``, ``agreement_rate``,
    ``total_time_ms``) filled from ``agreement_score`` and ``latency_ms``."""

    consensus_text: str
    agreement_score: float = Field(description="Weight share of the winning group, in [0, 1]")
    confidence: float = Field(description="The original client's name for agreement_score")
    agreement_rate: float = Field(description="The original client's name for agreement_score")
    reached: bool | None = Field(description="agreement_score >= min_agreement (None: not set)")
    min_agreement: float | None
    strategy: str
    entropy: float = Field(description="Semantic entropy over the groups' shares (nats)")
    individual_responses: list[IndividualResponse]
    participating_models: list[str]
    failed_models: list[FailedModel]
    total_cost_usd: float
    latency_ms: float
    total_time_ms: float = Field(description="The original client's name for latency_ms")
    clusters: int
    cluster_weights: list[float]
    winner_index: int
    similarity: list[list[float]] | None = Field(
        None, description="Cosine similarity of the answers (semantic, self_consistency)"
    )
    borda: list[float] | None = Field(None, description="Council: Borda points per answer")
    samples: list[Sample] | None = None
    num_unique_answers: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _client_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and "agreement_score" in data:
            data = {
                **data,
                "confidence": data["agreement_score"],
                "agreement_rate": data["agreement_score"],
                "total_time_ms": data.get("latency_ms"),
            }
        return data


EXAMPLE_CONSENSUS = {
    "prompt": "What is the capital of France?",
    "strategy": "majority",
    "min_agreement": 0.5,
    "max_tokens": 64,
}


@ROUTES.post(
    "/consensus",
    waits=True,
    request=ConsensusRequest,
    response=ConsensusResult,
    example=EXAMPLE_CONSENSUS,
    summary="Ask several models (or one, several times) and agree on one answer",
    description="majority (normalised text), weighted, semantic (answers clustered by "
    "embedding similarity; the medoid of the heaviest cluster), council (anonymised peer "
    "ranking, Borda) or self_consistency (samples of one model). quantum and thermodynamic "
    "are a 400 listing these.",
)
def consensus(req: Request) -> dict:
    return req.service(LlmService).consensus(**req.body.args(req))


consensus.extra_statuses = BUDGET


# ---------------------------------------------------------------- batch


class BatchItemIn(ApiModel):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    system_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    fallbacks: list[str] | None = Field(None, max_length=MAX_FALLBACKS)
    cache: bool = True

    _fallback_names = field_validator("fallbacks")(QueryRequest._names.__func__)


class BatchRequest(ApiModel):
    requests: list[BatchItemIn] = Field(min_length=1, max_length=MAX_BATCH)
    concurrency: int | None = Field(None, ge=1, le=64, description="At most this many in flight")

    def args(self, req: Any = None) -> dict[str, Any]:
        return {
            "requests": [r.model_dump(exclude_none=True) for r in self.requests],
            "concurrency": self.concurrency,
            "key": _key_of(req),
        }


class BatchError(ApiResponse):
    message: str
    field: str | None
    status: int


class BatchItem(Answer):
    error: BatchError | None = None


class BatchResult(ApiResponse):
    results: list[BatchItem] = Field(description="One per request, in request order")
    count: int

    @model_validator(mode="before")
    @classmethod
    def _wrap(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"results": data, "count": len(data)}
        return data


EXAMPLE_BATCH = {
    "requests": [{"prompt": "Say hello.", "max_tokens": 16}, {"prompt": "Count to five."}],
    "concurrency": 4,
}


@ROUTES.post(
    "/batch",
    waits=True,
    request=BatchRequest,
    response=BatchResult,
    example=EXAMPLE_BATCH,
    summary="Many prompts, bounded concurrency, results in order",
    description="A failed request gets {error: {message, status}} in its place; an invalid "
    "one is a 400 naming requests.<i>.<field>.",
)
def batch(req: Request) -> dict:
    return req.service(LlmService).batch(**req.body.args(req))


batch.extra_statuses = BUDGET


# ---------------------------------------------------------------- models


class ModelInfo(ApiResponse):
    name: str
    provider: str = Field(description="openai (any OpenAI-compatible), anthropic, gemini, replay")
    endpoint: str
    model: str = Field(description="The provider's model id sent on the wire")
    enabled: bool = Field(description="The original's name for available")
    available: bool = Field(description="Its endpoint is not cooling down")
    discovered: bool = Field(description="Listed by the endpoint's GET /models")
    price_in_per_1k: float | None = Field(description="USD per 1,000 prompt tokens")
    price_out_per_1k: float | None = Field(description="USD per 1,000 completion tokens")
    cost_per_1k_tokens: float | None = Field(
        description="The original's single figure: the mean of the two prices (USD)"
    )
    weight: float = Field(description="Vote weight in weighted consensus")
    fallbacks: list[str]
    requests: int
    failures: int
    avg_latency_ms: float | None = Field(description="Live latency (EWMA of answered calls)")
    last_latency_ms: float | None


class ModelList(ApiResponse):
    """``{"models": [...], "count"}`` (the original server answered a bare array; its Python
    client's ``list_llm_models`` reads ``data["models"]``, so this shape is the one that works
    for the client)."""

    models: list[ModelInfo]
    count: int

    @model_validator(mode="before")
    @classmethod
    def _wrap(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"models": data, "count": len(data)}
        return data


@ROUTES.get(
    "/models",
    response=ModelList,
    waits=True,
    summary="Configured and discovered models with provider, prices and live latency",
)
def models(req: Request) -> list:
    return req.service(LlmService).models()


@ROUTES.get("/model/{name}", response=ModelInfo, summary="One model (404 when unknown)")
def model(req: Request) -> dict:
    return req.service(LlmService).model(req.path["name"])


# ---------------------------------------------------------------- cache and usage


class CacheStats(ApiResponse):
    entries: int
    total_entries: int = Field(description="The original's name for entries")
    hits: int
    exact_hits: int
    semantic_hits: int
    misses: int
    hit_rate: float | None = Field(description="hits / lookups; None before any lookup")
    bytes: int = Field(description="Answers, prompts, scopes and embedding rows held")
    memory_usage_mb: float
    evictions: int
    expirations: int
    max_entries: int
    ttl_s: float | None
    threshold: float = Field(description="Cosine similarity for a semantic hit")
    avg_similarity_threshold: float = Field(description="The original's name for threshold")
    fact_rejections: int = Field(
        description="Similar prompts not served from the cache because they state other "
        "numbers (the 2023 vs the 2024 report)"
    )
    semantic: bool


@ROUTES.get("/cache/stats", response=CacheStats, summary="The response cache's real statistics")
def cache_stats(req: Request) -> dict:
    return req.service(LlmService).cache_stats()


class UsageTotals(ApiResponse):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_nanousd: int = Field(description="Integer nano-dollars (sums exactly)")
    cost_usd: float
    unpriced_requests: int = Field(description="Calls of models without a price")


class KeyUsage(UsageTotals):
    budget_usd: float | None
    remaining_usd: float | None


class UsageReport(ApiResponse):
    totals: UsageTotals
    by_model: dict[str, UsageTotals]
    by_key: dict[str, KeyUsage] = Field(description="Per key id (a hash; never the key)")
    budget_usd: float | None = Field(description="PRISM_LLM_BUDGET_USD per key id")


@ROUTES.get(
    "/usage",
    response=UsageReport,
    summary="Tokens and cost per model and per key id, from the providers' reported usage",
)
def usage(req: Request) -> dict:
    return req.service(LlmService).usage()
