"""Provider clients speaking the vendors' wire protocols: async complete and stream, with usage.

- :class:`OpenAIProvider`: ``POST {base_url}/chat/completions`` (JSON, and SSE with
  ``stream: true`` and ``stream_options.include_usage``), ``GET {base_url}/models``. Works with
  any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, LM Studio).
- :class:`AnthropicProvider`: ``POST {base_url}/v1/messages`` with ``x-api-key`` and
  ``anthropic-version`` headers (JSON, and SSE events ``message_start``,
  ``content_block_delta``, ``message_delta``, ``message_stop``), ``GET {base_url}/v1/models``.
- :class:`GeminiProvider`: the Gemini API through Google's OpenAI-compatible endpoint.

One pooled ``aiohttp.ClientSession`` per provider (created lazily in the event loop that uses it;
aiohttp's C HTTP parser costs about a quarter of httpx's CPU per call, which is most of our
overhead over calling a local provider directly). The proxy comes from the environment
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``), read once per session as httpx (the vendors'
SDKs) does per client, not per request as aiohttp's ``trust_env`` would (two thread hops each).
Every error is a :class:`ProviderError` whose message has the key removed (a server that echoes
a wrong key back, as OpenAI's 401 does, does not leak it).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from prism_kernels.errors import InvalidInput, PrismError
from prism_kernels.llm.config import EndpointConfig

__all__ = [
    "AnthropicProvider",
    "ChatRequest",
    "Completion",
    "GeminiProvider",
    "OpenAIProvider",
    "Provider",
    "ProviderError",
    "StreamEvent",
    "Usage",
    "discover_models",
    "make_provider",
    "redact",
]

ROLES = ("system", "user", "assistant")
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
ANTHROPIC_VERSION = "2023-06-01"
ANTHROPIC_DEFAULT_MAX_TOKENS = 1024
#: Longest line read from a server-sent-event stream (bytes); aiohttp's own default is 128 KiB.
SSE_READ_BUFFER = 1 << 20
#: What a failed request raises below us: aiohttp's errors, our timeouts and socket errors.
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every non-empty secret replaced by ``'***'``."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


class ProviderError(PrismError):
    """A provider call failed. The message never contains the key.

    Attributes
    ----------
    endpoint : str
        Endpoint name.
    model : str
        Model name (PRISM's) the call was for.
    status : int or None
        HTTP status; ``None`` for timeouts, connection errors, broken streams.
    kind : str
        ``"http"``, ``"timeout"``, ``"connection"``, ``"stream"`` (cut mid-stream),
        ``"protocol"`` (unparseable answer), ``"not_recorded"`` (replay miss).
    retryable : bool
        Whether retrying the same endpoint may succeed (429, 5xx, timeouts, connection errors).
    retry_after : float or None
        Seconds from a 429/503 ``Retry-After`` header.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        model: str = "",
        status: int | None = None,
        kind: str = "http",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.model = model
        self.status = status
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.message,
            "endpoint": self.endpoint,
            "model": self.model,
            "status": self.status,
            "kind": self.kind,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
        }


@dataclass(frozen=True)
class Usage:
    """Tokens the provider reported for one call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class ChatRequest:
    """One chat request in provider-neutral form.

    Attributes
    ----------
    model : str
        The provider's model id (sent on the wire).
    messages : tuple of dict
        ``{"role": "system"|"user"|"assistant", "content": str}``; a trailing assistant message
        is a prefill the model continues.
    temperature, max_tokens, top_p, stop, seed
        Sampling parameters; ``None`` = the provider's default.
    """

    model: str
    messages: tuple[Mapping[str, str], ...]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        msgs = tuple(dict(m) for m in self.messages)
        if not msgs:
            raise InvalidInput("messages", "at least one message is needed")
        for i, m in enumerate(msgs):
            if m.get("role") not in ROLES:
                raise InvalidInput(f"messages.{i}.role", f"must be one of {list(ROLES)}")
            if not isinstance(m.get("content"), str):
                raise InvalidInput(f"messages.{i}.content", "must be a string")
        object.__setattr__(self, "messages", msgs)
        if self.stop is not None:
            object.__setattr__(self, "stop", tuple(self.stop))

    def params(self) -> dict[str, Any]:
        """Sampling parameters that are set (the replay key uses them)."""
        out = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "stop": list(self.stop) if self.stop is not None else None,
            "seed": self.seed,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class Completion:
    """A provider's whole answer.

    ``usage`` is what the provider reported (``None`` when it reported nothing, e.g. a stream
    from a server ignoring ``stream_options``). ``latency_ms`` is wall time of the call.
    """

    text: str
    model: str
    endpoint: str
    provider: str
    usage: Usage | None
    finish_reason: str | None
    latency_ms: float
    response_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "model": self.model,
            "endpoint": self.endpoint,
            "provider": self.provider,
            "usage": self.usage.to_dict() if self.usage else None,
            "finish_reason": self.finish_reason,
            "latency_ms": self.latency_ms,
            "response_model": self.response_model,
        }


@dataclass(frozen=True)
class StreamEvent:
    """One stream item: ``kind="delta"`` carries text; ``kind="done"`` closes the stream with
    the usage and finish reason (no text)."""

    kind: str
    delta: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    response_model: str | None = None


def env_proxy(url: str) -> str | None:
    """The proxy URL the environment names for ``url`` (``HTTPS_PROXY``/``HTTP_PROXY``, else
    ``ALL_PROXY``, upper or lower case), or ``None`` when there is none or ``NO_PROXY`` covers
    its host."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    return proxy


@dataclass
class Provider:
    """Base class: one endpoint, one pooled HTTP client."""

    endpoint: EndpointConfig
    _clients: dict[Any, aiohttp.ClientSession] = field(default_factory=dict, init=False, repr=False)
    _proxy: str | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.endpoint.name

    def _key(self) -> str | None:
        return self.endpoint.api_key.reveal() if self.endpoint.api_key else None

    def _headers(self) -> dict[str, str]:
        return {"content-type": "application/json"}

    def client(self) -> aiohttp.ClientSession:
        """The pooled session of the running loop (one per loop that calls this endpoint: the
        router's own, and a server's loop attached with :meth:`LlmRouter.attach_loop`)."""
        loop = asyncio.get_running_loop()
        session = self._clients.get(loop)
        if session is None or session.closed:
            for old in [lp for lp in list(self._clients) if lp.is_closed()]:
                self._clients.pop(old).detach()  # its loop is gone: let it go quietly
            n = self.endpoint.max_connections
            self._proxy = env_proxy(self.endpoint.base_url)
            session = self._clients[loop] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=n, limit_per_host=n),
                timeout=aiohttp.ClientTimeout(total=None),  # each call bounds its own time
                read_bufsize=SSE_READ_BUFFER,
            )
        return session

    async def aclose(self) -> None:
        """Close the running loop's session."""
        session = self._clients.pop(asyncio.get_running_loop(), None)
        if session is not None and not session.closed:
            await session.close()

    def drop_sessions(self) -> None:
        """Forget every session without closing it (their loops are stopped or elsewhere)."""
        for session in list(self._clients.values()):
            session.detach()
        self._clients.clear()

    # -- errors ---------------------------------------------------------------------------
    def _error(self, message: str, model: str, **kw: Any) -> ProviderError:
        return ProviderError(redact(message, self._key()), endpoint=self.name, model=model, **kw)

    def _http_error(self, resp: aiohttp.ClientResponse, body: bytes, model: str) -> ProviderError:
        retry_after = None
        ra = resp.headers.get("retry-after")
        if ra is not None:
            try:
                retry_after = max(0.0, float(ra))
            except ValueError:
                retry_after = None
        detail = body[:500].decode("utf-8", "replace")
        try:
            err = json.loads(body).get("error")
            if isinstance(err, dict):
                detail = str(err.get("message") or err)
            elif err:
                detail = str(err)
        except (ValueError, AttributeError):
            pass
        return self._error(
            f"{self.name} answered HTTP {resp.status}: {detail}",
            model,
            status=resp.status,
            kind="http",
            retryable=resp.status in RETRYABLE_STATUS,
            retry_after=retry_after,
        )

    def _transport_error(
        self, exc: BaseException, model: str, during_stream: bool
    ) -> ProviderError:
        if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
            return self._error(
                f"{self.name} timed out after {self.endpoint.timeout_s:g} s ({type(exc).__name__})",
                model,
                kind="timeout",
                retryable=True,
            )
        kind = "stream" if during_stream else "connection"
        return self._error(
            f"{self.name}: {'stream broken' if during_stream else 'connection failed'} "
            f"({type(exc).__name__}: {exc})",
            model,
            kind=kind,
            retryable=True,
        )

    # -- the API ---------------------------------------------------------------------------
    async def complete(self, request: ChatRequest, timeout_s: float | None = None) -> Completion:
        raise NotImplementedError

    def stream(
        self, request: ChatRequest, timeout_s: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError

    async def list_models(self) -> list[str]:
        raise NotImplementedError

    async def _post_json(self, url: str, payload: dict, model: str, timeout_s: float) -> dict:
        try:
            async with (
                asyncio.timeout(timeout_s),
                self.client().post(
                    url, json=payload, headers=self._headers(), proxy=self._proxy
                ) as resp,
            ):
                body = await resp.read()
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, model, False) from None
        if resp.status >= 400:
            raise self._http_error(resp, body, model)
        try:
            return json.loads(body)
        except ValueError:
            raise self._error(f"{self.name} answered non-JSON", model, kind="protocol") from None

    async def _get_json(self, url: str) -> dict:
        t = self.endpoint.timeout_s
        try:
            async with (
                asyncio.timeout(t),
                self.client().get(url, headers=self._headers(), proxy=self._proxy) as resp,
            ):
                body = await resp.read()
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, "", False) from None
        if resp.status >= 400:
            raise self._http_error(resp, body, "")
        try:
            return json.loads(body)
        except ValueError:
            raise self._error(f"{self.name} answered non-JSON", "", kind="protocol") from None

    async def _sse(
        self, url: str, payload: dict, model: str, timeout_s: float
    ) -> AsyncIterator[tuple[str | None, str]]:
        """Yield ``(event, data)`` of a server-sent-event stream; the status line and each
        read bounded by ``timeout_s``. Leaving early closes the connection."""
        started = False
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(timeout_s):
                resp = await self.client().post(
                    url, json=payload, headers=self._headers(), proxy=self._proxy
                )
            if resp.status >= 400:
                async with asyncio.timeout(timeout_s):
                    body = await resp.read()
                raise self._http_error(resp, body, model)
            event: str | None = None
            data: list[str] = []
            while True:
                async with asyncio.timeout(timeout_s):
                    raw = await resp.content.readline()
                if not raw:
                    break
                started = True
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line == "":
                    if data:
                        yield event, "\n".join(data)
                    event, data = None, []
                elif line.startswith(":"):
                    continue
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
            if data:
                yield event, "\n".join(data)
        except ProviderError:
            raise
        except ValueError as exc:  # a line longer than SSE_READ_BUFFER
            raise self._error(
                f"{self.name}: bad event stream ({exc})", model, kind="protocol"
            ) from None
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, model, started) from None
        finally:
            if resp is not None:
                resp.release()  # back to the pool when read to the end; else closed


class OpenAIProvider(Provider):
    """OpenAI chat completions (any OpenAI-compatible server)."""

    def _headers(self) -> dict[str, str]:
        h = {"content-type": "application/json"}
        key = self._key()
        if key:
            h["authorization"] = f"Bearer {key}"
        return h

    def _payload(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        p: dict[str, Any] = {"model": request.model, "messages": list(request.messages)}
        p.update(request.params())
        if stream:
            p["stream"] = True
            p["stream_options"] = {"include_usage": True}
        return p

    async def complete(self, request: ChatRequest, timeout_s: float | None = None) -> Completion:
        t = timeout_s or self.endpoint.timeout_s
        t0 = time.perf_counter()
        body = await self._post_json(
            f"{self.endpoint.base_url}/chat/completions",
            self._payload(request, False),
            request.model,
            t,
        )
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self._error(
                f"{self.name}: no choices in the answer", request.model, kind="protocol"
            ) from None
        u = body.get("usage") or None
        usage = (
            Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
            if u
            else None
        )
        return Completion(
            text=text,
            model=request.model,
            endpoint=self.name,
            provider=self.endpoint.provider,
            usage=usage,
            finish_reason=finish,
            latency_ms=(time.perf_counter() - t0) * 1e3,
            response_model=body.get("model"),
        )

    async def stream(
        self, request: ChatRequest, timeout_s: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        t = timeout_s or self.endpoint.timeout_s
        usage = finish = rmodel = None
        done = False
        async for _, data in self._sse(
            f"{self.endpoint.base_url}/chat/completions",
            self._payload(request, True),
            request.model,
            t,
        ):
            if data.strip() == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise self._error(
                    f"{self.name}: bad SSE data", request.model, kind="protocol"
                ) from None
            if "error" in chunk:
                raise self._error(
                    f"{self.name} stream error: {chunk['error']}",
                    request.model,
                    kind="stream",
                    retryable=True,
                )
            rmodel = chunk.get("model", rmodel)
            if chunk.get("usage"):
                u = chunk["usage"]
                usage = Usage(
                    int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
                )
            for choice in chunk.get("choices") or []:
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    yield StreamEvent("delta", delta=delta)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        if not done:
            raise self._error(
                f"{self.name}: stream ended without [DONE]",
                request.model,
                kind="stream",
                retryable=True,
            )
        yield StreamEvent("done", usage=usage, finish_reason=finish, response_model=rmodel)

    async def list_models(self) -> list[str]:
        body = await self._get_json(f"{self.endpoint.base_url}/models")
        return [str(m["id"]) for m in body.get("data") or [] if "id" in m]


class GeminiProvider(OpenAIProvider):
    """The Gemini API through its OpenAI-compatible endpoint
    (``https://generativelanguage.googleapis.com/v1beta/openai``, Bearer key)."""


class AnthropicProvider(Provider):
    """Anthropic messages API.

    System messages go to the top-level ``system`` field; ``max_tokens`` (required by the API)
    defaults to 1024; ``temperature`` is clamped to Anthropic's [0, 1]; ``seed`` is not sent
    (the API has none); ``stop`` becomes ``stop_sequences``.
    """

    def _headers(self) -> dict[str, str]:
        h = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        key = self._key()
        if key:
            h["x-api-key"] = key
        return h

    def _payload(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        msgs = [dict(m) for m in request.messages if m["role"] != "system"]
        p: dict[str, Any] = {
            "model": request.model,
            "messages": msgs,
            "max_tokens": request.max_tokens or ANTHROPIC_DEFAULT_MAX_TOKENS,
        }
        if system:
            p["system"] = system
        if request.temperature is not None:
            # Anthropic accepts 0..1: OpenAI-style values above 1 are clamped to 1.
            p["temperature"] = min(1.0, request.temperature)
        if request.top_p is not None:
            p["top_p"] = request.top_p
        if request.stop:
            p["stop_sequences"] = list(request.stop)
        if stream:
            p["stream"] = True
        return p

    async def complete(self, request: ChatRequest, timeout_s: float | None = None) -> Completion:
        t = timeout_s or self.endpoint.timeout_s
        t0 = time.perf_counter()
        body = await self._post_json(
            f"{self.endpoint.base_url}/v1/messages", self._payload(request, False), request.model, t
        )
        try:
            text = "".join(b.get("text", "") for b in body["content"] if b.get("type") == "text")
        except (KeyError, TypeError, AttributeError):
            raise self._error(
                f"{self.name}: no content in the answer", request.model, kind="protocol"
            ) from None
        u = body.get("usage") or None
        usage = (
            Usage(int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0)) if u else None
        )
        return Completion(
            text=text,
            model=request.model,
            endpoint=self.name,
            provider=self.endpoint.provider,
            usage=usage,
            finish_reason=body.get("stop_reason"),
            latency_ms=(time.perf_counter() - t0) * 1e3,
            response_model=body.get("model"),
        )

    async def stream(
        self, request: ChatRequest, timeout_s: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        t = timeout_s or self.endpoint.timeout_s
        prompt_tokens = completion_tokens = 0
        have_usage = False
        finish = rmodel = None
        stopped = False
        async for event, data in self._sse(
            f"{self.endpoint.base_url}/v1/messages", self._payload(request, True), request.model, t
        ):
            try:
                obj = json.loads(data)
            except ValueError:
                raise self._error(
                    f"{self.name}: bad SSE data", request.model, kind="protocol"
                ) from None
            kind = event or obj.get("type")
            if kind == "message_start":
                msg = obj.get("message") or {}
                rmodel = msg.get("model")
                u = msg.get("usage") or {}
                if u:
                    have_usage = True
                    prompt_tokens = int(u.get("input_tokens") or 0)
                    completion_tokens = int(u.get("output_tokens") or 0)
            elif kind == "content_block_delta":
                d = obj.get("delta") or {}
                if d.get("type") == "text_delta" and d.get("text"):
                    yield StreamEvent("delta", delta=d["text"])
            elif kind == "message_delta":
                finish = (obj.get("delta") or {}).get("stop_reason") or finish
                u = obj.get("usage") or {}
                if "output_tokens" in u:
                    have_usage = True
                    completion_tokens = int(u["output_tokens"])
            elif kind == "message_stop":
                stopped = True
                break
            elif kind == "error":
                err = obj.get("error") or {}
                raise self._error(
                    f"{self.name} stream error: {err.get('type')}: {err.get('message')}",
                    request.model,
                    kind="stream",
                    retryable=err.get("type") in ("overloaded_error", "api_error"),
                )
        if not stopped:
            raise self._error(
                f"{self.name}: stream ended without message_stop",
                request.model,
                kind="stream",
                retryable=True,
            )
        usage = Usage(prompt_tokens, completion_tokens) if have_usage else None
        yield StreamEvent("done", usage=usage, finish_reason=finish, response_model=rmodel)

    async def list_models(self) -> list[str]:
        body = await self._get_json(f"{self.endpoint.base_url}/v1/models")
        return [str(m["id"]) for m in body.get("data") or [] if "id" in m]


_CLASSES: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
}


def make_provider(endpoint: EndpointConfig) -> Provider:
    """The client for ``endpoint`` (``"replay"`` endpoints are built by
    :func:`prism_kernels.llm.replay.ReplayProvider.from_endpoint`)."""
    try:
        return _CLASSES[endpoint.provider](endpoint)
    except KeyError:
        raise InvalidInput(
            "provider", f"unknown provider {endpoint.provider!r}; known: {sorted(_CLASSES)}"
        ) from None


async def discover_models(provider: Provider) -> list[str]:
    """Model ids the endpoint lists (``GET /models``), sorted."""
    return sorted(await provider.list_models())


def messages_from(
    prompt: str | None = None,
    messages: Sequence[Mapping[str, str]] | None = None,
    system_prompt: str | None = None,
) -> tuple[dict[str, str], ...]:
    """Messages from a prompt (and optional system prompt) or an explicit list."""
    if messages is None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInput("prompt", "must be a non-empty string")
        messages = [{"role": "user", "content": prompt}]
    if isinstance(messages, str | bytes) or not all(isinstance(m, Mapping) for m in messages):
        raise InvalidInput("messages", "must be a list of {role, content} objects")
    out = [dict(m) for m in messages]
    if not out:
        raise InvalidInput("messages", "at least one message is needed")
    if system_prompt:
        out.insert(0, {"role": "system", "content": system_prompt})
    return tuple(out)
