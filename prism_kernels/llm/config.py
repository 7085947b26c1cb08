"""Provider endpoints, models, prices and router settings, read from the environment.

Configured the way each vendor's SDK is:

- ``OPENAI_API_KEY`` and/or ``OPENAI_BASE_URL`` -> endpoint ``"openai"`` (any OpenAI-compatible
  server: OpenAI, vLLM, Ollama, llama.cpp's server, LM Studio; a local server needs no key).
  Its models are discovered with ``GET {base_url}/models`` (``LlmRouter.discover``).
- ``ANTHROPIC_API_KEY`` (+ ``ANTHROPIC_BASE_URL``) -> endpoint ``"anthropic"``.
- ``GEMINI_API_KEY`` (+ ``GEMINI_BASE_URL``) -> endpoint ``"gemini"``, spoken through Google's
  OpenAI-compatible endpoint (``https://generativelanguage.googleapis.com/v1beta/openai``).
- ``PRISM_LLM_CONFIG``: a YAML file with several endpoints, models, aliases, prices per 1k tokens
  (in and out), timeouts, weights, fallbacks and router settings (see :func:`load_config`).
- ``PRISM_LLM_REPLAY``: a JSONL file of recorded responses (``prism_kernels.llm.replay``); its
  models are served by the endpoint ``"replay"``.
- ``PRISM_LLM_BUDGET_USD``: an optional spending budget per API-key id (used by ``usage``).

Keys are held as :class:`Secret`: their ``repr``/``str`` print ``'***'``; only
:meth:`Secret.reveal` gives the value, and only providers call it, to build a request header.
Records and ``to_dict`` carry a key *id* (a hash prefix), never the key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from prism_kernels.errors import InvalidInput

__all__ = [
    "PROVIDERS",
    "EndpointConfig",
    "LlmConfig",
    "ModelConfig",
    "RouterSettings",
    "Secret",
    "key_id",
    "load_config",
]

PROVIDERS = ("openai", "anthropic", "gemini", "replay")

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai",
    "replay": "",
}


class Secret:
    """A provider key that never prints: ``repr``, ``str`` and ``format`` give ``'***'``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = str(value)

    def reveal(self) -> str:
        """The key itself (for a request header; never log or store it)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # pickling would write the key: refuse
        raise TypeError("a Secret cannot be pickled")


def key_id(secret: Secret | str | None) -> str | None:
    """A stable, non-reversible id of a key: ``"key-"`` + 12 hex digits of its SHA-256.

    ``None`` (or an empty key: a local server without auth) gives ``None``.
    """
    if secret is None:
        return None
    value = secret.reveal() if isinstance(secret, Secret) else str(secret)
    if not value:
        return None
    return "key-" + hashlib.sha256(value.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class EndpointConfig:
    """One provider endpoint.

    Attributes
    ----------
    name : str
        Endpoint id (``"openai"``, ``"local-vllm"``...).
    provider : str
        Wire protocol: ``"openai"`` (OpenAI-compatible), ``"anthropic"``, ``"gemini"``
        (OpenAI-compatible layer of the Gemini API) or ``"replay"``.
    base_url : str
        For OpenAI-compatible servers the SDK convention including ``/v1``; for Anthropic the
        host root (``/v1/messages`` is appended). For ``"replay"``, the JSONL path.
    api_key : Secret or None
        Never printed (``repr=False`` and :class:`Secret`).
    timeout_s : float
        Per-request timeout in seconds (connect, each read, and the whole request).
    max_connections : int
        Connection-pool size of the endpoint's HTTP client.
    discover : bool
        Whether ``LlmRouter.discover`` lists this endpoint's models with ``GET /models``.
    """

    name: str
    provider: str
    base_url: str
    api_key: Secret | None = field(default=None, repr=False, compare=False)
    timeout_s: float = 60.0
    max_connections: int = 64
    discover: bool = True

    @property
    def key_id(self) -> str | None:
        return key_id(self.api_key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description, with the key's id (never the key)."""
        return {
            "name": self.name,
            "provider": self.provider,
            "base_url": self.base_url,
            "key_id": self.key_id,
            "timeout_s": self.timeout_s,
            "max_connections": self.max_connections,
            "discover": self.discover,
        }


@dataclass(frozen=True)
class ModelConfig:
    """A model as PRISM exposes it.

    Attributes
    ----------
    name : str
        Name callers use (unique in the config).
    endpoint : str
        The :class:`EndpointConfig` name serving it.
    model : str
        The provider's model id sent on the wire (defaults to ``name``).
    price_in_per_1k, price_out_per_1k : float or None
        USD per 1,000 prompt / completion tokens; ``None`` = price unknown (cost ``None``).
    timeout_s : float or None
        Overrides the endpoint's timeout.
    weight : float
        Vote weight in weighted consensus (> 0).
    fallbacks : tuple of str
        Model names tried, in order, when this one fails.
    discovered : bool
        True when it came from ``GET /models`` rather than the configuration.
    """

    name: str
    endpoint: str
    model: str = ""
    price_in_per_1k: float | None = None
    price_out_per_1k: float | None = None
    timeout_s: float | None = None
    weight: float = 1.0
    fallbacks: tuple[str, ...] = ()
    discovered: bool = False

    def __post_init__(self) -> None:
        if not self.model:
            object.__setattr__(self, "model", self.name)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for a call: ``prompt/1000 * price_in + completion/1000 * price_out``."""
        if self.price_in_per_1k is None or self.price_out_per_1k is None:
            return None
        return (
            prompt_tokens / 1000.0 * self.price_in_per_1k
            + completion_tokens / 1000.0 * self.price_out_per_1k
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "model": self.model,
            "price_in_per_1k": self.price_in_per_1k,
            "price_out_per_1k": self.price_out_per_1k,
            "timeout_s": self.timeout_s,
            "weight": self.weight,
            "fallbacks": list(self.fallbacks),
            "discovered": self.discovered,
        }


@dataclass(frozen=True)
class RouterSettings:
    """Retry, backoff and cooldown policy of :class:`~prism_kernels.llm.router.LlmRouter`.

    Attributes
    ----------
    max_retries : int
        Extra attempts on the same model after a retryable failure (429, 5xx, timeout,
        connection error); 0 = one attempt.
    backoff_base_s, backoff_max_s : float
        Attempt ``k`` (1-based) waits ``uniform(0, min(backoff_max_s, backoff_base_s * 2**(k-1)))``
        seconds ("full jitter"); a 429's ``Retry-After`` is waited instead when it is longer
        (capped at ``backoff_max_s``).
    cooldown_after : int
        Consecutive failures of an endpoint after which it cools down.
    cooldown_s : float
        Seconds a cooled-down endpoint is skipped (a 429's ``Retry-After`` lengthens it).
    mid_stream : str
        ``"restart"``: a fallback answers a failed stream afresh (the consumer is told to drop
        the partial text); ``"continue"``: the partial text is passed to the fallback as an
        assistant prefill and the fallback's text is appended.
    max_concurrency : int
        Default bound of :meth:`LlmRouter.batch`.
    """

    max_retries: int = 2
    backoff_base_s: float = 0.25
    backoff_max_s: float = 8.0
    cooldown_after: int = 3
    cooldown_s: float = 30.0
    mid_stream: str = "restart"
    max_concurrency: int = 8

    def __post_init__(self) -> None:
        checks = {
            "max_retries": self.max_retries >= 0,
            "backoff_base_s": self.backoff_base_s >= 0,
            "backoff_max_s": self.backoff_max_s >= 0,
            "cooldown_after": self.cooldown_after >= 1,
            "cooldown_s": self.cooldown_s >= 0,
            "max_concurrency": self.max_concurrency >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidInput(f"router.{name}", f"out of range: {getattr(self, name)!r}")
        if self.mid_stream not in ("restart", "continue"):
            raise InvalidInput("router.mid_stream", "must be 'restart' or 'continue'")


@dataclass(frozen=True)
class LlmConfig:
    """Endpoints, models, aliases and settings (immutable; ``with_models`` returns a copy)."""

    endpoints: Mapping[str, EndpointConfig] = field(default_factory=dict)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    default_model: str | None = None
    router: RouterSettings = field(default_factory=RouterSettings)
    budget_usd: float | None = None
    replay_path: str | None = None

    @property
    def configured(self) -> bool:
        """Whether any endpoint is configured (else the service answers 503)."""
        return bool(self.endpoints)

    def resolve(self, name: str | None = None) -> ModelConfig:
        """The model for ``name`` (an alias or a model name; ``None`` = the default model).

        Raises
        ------
        InvalidInput
            ``field="model"`` when unknown, listing the known names.
        """
        if name is None:
            name = self.default_model or (next(iter(self.models)) if self.models else None)
            if name is None:
                raise InvalidInput("model", "no model is configured; " + HOW_TO_CONFIGURE)
        seen = set()
        while name in self.aliases and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        if name not in self.models:
            known = sorted(set(self.models) | set(self.aliases))
            raise InvalidInput("model", f"unknown model {name!r}; known: {known}", known=known)
        return self.models[name]

    def endpoint_of(self, model: ModelConfig) -> EndpointConfig:
        return self.endpoints[model.endpoint]

    def with_models(self, models: list[ModelConfig]) -> LlmConfig:
        """A copy with ``models`` added (configured names win over discovered ones)."""
        merged = dict(self.models)
        for m in models:
            if m.endpoint not in self.endpoints:
                raise InvalidInput("endpoint", f"unknown endpoint {m.endpoint!r}")
            if m.name not in merged or merged[m.name].discovered:
                merged[m.name] = m
        return replace(self, models=merged)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (key ids only, never keys)."""
        return {
            "endpoints": [e.to_dict() for e in self.endpoints.values()],
            "models": [m.to_dict() for m in self.models.values()],
            "aliases": dict(self.aliases),
            "default_model": self.default_model,
            "budget_usd": self.budget_usd,
            "replay_path": self.replay_path,
        }


HOW_TO_CONFIGURE = (
    "set OPENAI_API_KEY and/or OPENAI_BASE_URL (any OpenAI-compatible server), "
    "ANTHROPIC_API_KEY, GEMINI_API_KEY, a models file in PRISM_LLM_CONFIG (YAML), "
    "or a recorded replay file in PRISM_LLM_REPLAY"
)


def _float(value: Any, field_name: str, *, minimum: float = 0.0, allow_none: bool = True):
    if value is None and allow_none:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(field_name, f"must be a number, got {value!r}") from None
    if not out >= minimum or out != out or out == float("inf"):
        raise InvalidInput(field_name, f"must be a finite number >= {minimum}, got {value!r}")
    return out


def _replay_models(path: str) -> list[str]:
    """Distinct model names in a replay JSONL file, in first-seen order."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInput("PRISM_LLM_REPLAY", f"no such file: {path}")
    names: dict[str, None] = {}
    with p.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                names[str(rec["model"])] = None
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InvalidInput("PRISM_LLM_REPLAY", f"line {i} is not a replay record") from None
    return list(names)


def _parse_yaml(path: str, env: Mapping[str, str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise InvalidInput("PRISM_LLM_CONFIG", f"no such file: {path}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput("PRISM_LLM_CONFIG", f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("PRISM_LLM_CONFIG", "the top level must be a mapping")
    return data


def load_config(env: Mapping[str, str] | None = None) -> LlmConfig:
    """Build the :class:`LlmConfig` from environment variables (default ``os.environ``).

    The YAML file named by ``PRISM_LLM_CONFIG`` looks like::

        endpoints:
          local: {provider: openai, base_url: "http://127.0.0.1:8000/v1", timeout_s: 30}
          claude: {provider: anthropic, api_key_env: ANTHROPIC_API_KEY}
        models:
          small: {endpoint: local, model: "qwen2.5-7b", price_in_per_1k: 0, price_out_per_1k: 0,
                  weight: 1.0, fallbacks: [haiku]}
          haiku: {endpoint: claude, model: "claude-3-5-haiku-latest",
                  price_in_per_1k: 0.0008, price_out_per_1k: 0.004, timeout_s: 20}
        aliases: {fast: small}
        default_model: fast
        router: {max_retries: 2, backoff_base_s: 0.25, cooldown_after: 3, cooldown_s: 30,
                 mid_stream: restart}

    An endpoint's key comes from ``api_key_env`` (the name of an environment variable: the
    preferred way) or ``api_key``. Endpoints from ``OPENAI_*``, ``ANTHROPIC_*``, ``GEMINI_*``
    are added under those names unless the file defines them.

    Raises
    ------
    InvalidInput
        A malformed file or value, naming it (``"models.small.endpoint"``).
    """
    env = os.environ if env is None else env
    endpoints: dict[str, EndpointConfig] = {}
    models: dict[str, ModelConfig] = {}
    aliases: dict[str, str] = {}
    default_model = None
    settings = RouterSettings()

    path = env.get("PRISM_LLM_CONFIG")
    if path:
        data = _parse_yaml(path, env)
        for name, spec in (data.get("endpoints") or {}).items():
            f = f"endpoints.{name}"
            if not isinstance(spec, dict):
                raise InvalidInput(f, "must be a mapping")
            provider = spec.get("provider", "openai")
            if provider not in PROVIDERS:
                raise InvalidInput(f"{f}.provider", f"must be one of {list(PROVIDERS)}")
            key = spec.get("api_key")
            if spec.get("api_key_env"):
                key = env.get(str(spec["api_key_env"]))
            endpoints[str(name)] = EndpointConfig(
                name=str(name),
                provider=provider,
                base_url=str(spec.get("base_url") or DEFAULT_BASE_URLS[provider]).rstrip("/"),
                api_key=Secret(key) if key else None,
                timeout_s=_float(spec.get("timeout_s", 60.0), f"{f}.timeout_s", minimum=1e-3),
                max_connections=int(spec.get("max_connections", 64)),
                discover=bool(spec.get("discover", True)),
            )
        for name, spec in (data.get("models") or {}).items():
            f = f"models.{name}"
            spec = spec or {}
            if not isinstance(spec, dict):
                raise InvalidInput(f, "must be a mapping")
            weight = _float(spec.get("weight", 1.0), f"{f}.weight", allow_none=False)
            if weight <= 0:
                raise InvalidInput(f"{f}.weight", "must be > 0")
            fallbacks = spec.get("fallbacks") or []
            if isinstance(fallbacks, str):
                fallbacks = [fallbacks]
            models[str(name)] = ModelConfig(
                name=str(name),
                endpoint=str(spec.get("endpoint", "")),
                model=str(spec.get("model") or name),
                price_in_per_1k=_float(spec.get("price_in_per_1k"), f"{f}.price_in_per_1k"),
                price_out_per_1k=_float(spec.get("price_out_per_1k"), f"{f}.price_out_per_1k"),
                timeout_s=_float(spec.get("timeout_s"), f"{f}.timeout_s", minimum=1e-3),
                weight=weight,
                fallbacks=tuple(str(x) for x in fallbacks),
            )
        aliases = {str(k): str(v) for k, v in (data.get("aliases") or {}).items()}
        default_model = data.get("default_model")
        r = data.get("router") or {}
        if not isinstance(r, dict):
            raise InvalidInput("router", "must be a mapping")
        known = set(RouterSettings.__dataclass_fields__)
        unknown = set(r) - known
        if unknown:
            raise InvalidInput(
                f"router.{sorted(unknown)[0]}", f"unknown setting; known: {sorted(known)}"
            )
        settings = RouterSettings(**r)

    def add_env_endpoint(name: str, key_var: str, url_var: str, need_key: bool) -> None:
        key, url = env.get(key_var), env.get(url_var)
        if name in endpoints or not (key or (url and not need_key)):
            return
        endpoints[name] = EndpointConfig(
            name=name,
            provider=name,
            base_url=(url or DEFAULT_BASE_URLS[name]).rstrip("/"),
            api_key=Secret(key) if key else None,
        )

    add_env_endpoint("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", need_key=False)
    add_env_endpoint("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", need_key=True)
    add_env_endpoint("gemini", "GEMINI_API_KEY", "GEMINI_BASE_URL", need_key=True)

    replay_path = env.get("PRISM_LLM_REPLAY") or None
    if replay_path:
        endpoints["replay"] = EndpointConfig(
            name="replay", provider="replay", base_url=replay_path, discover=False
        )
        for name in _replay_models(replay_path):
            old = models.get(name)
            # a replayed model keeps its configured price, weight and fallbacks
            models[name] = (
                replace(old, endpoint="replay", model=name)
                if old
                else ModelConfig(name=name, endpoint="replay")
            )

    for name, m in models.items():
        if m.endpoint not in endpoints:
            raise InvalidInput(
                f"models.{name}.endpoint",
                f"unknown endpoint {m.endpoint!r}; known: {sorted(endpoints)}",
            )
        for fb in m.fallbacks:
            if fb not in models and fb not in aliases:
                raise InvalidInput(f"models.{name}.fallbacks", f"unknown model {fb!r}")
    for a in aliases:
        target, seen = a, set()
        while target in aliases:
            if target in seen:
                raise InvalidInput(f"aliases.{a}", "aliases form a cycle")
            seen.add(target)
            target = aliases[target]
        if target not in models:
            raise InvalidInput(f"aliases.{a}", f"unknown model {target!r}")
    if default_model is not None and default_model not in models and default_model not in aliases:
        raise InvalidInput("default_model", f"unknown model {default_model!r}")

    budget = env.get("PRISM_LLM_BUDGET_USD")
    return LlmConfig(
        endpoints=endpoints,
        models=models,
        aliases=aliases,
        default_model=default_model,
        router=settings,
        budget_usd=_float(budget, "PRISM_LLM_BUDGET_USD") if budget else None,
        replay_path=replay_path,
    )
