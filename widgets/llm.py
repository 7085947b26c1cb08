"""The LLM dashboard: one prompt asked of several models side by side, how similar their
answers are (the embedding similarity matrix) and how they cluster, the consensus with its
agreement and semantic entropy, tokens, cost and latency per model, and one answer streamed
as it arrives. Served at ``/llm``; in a notebook, display ``LlmViewer()``.

Every answer comes from :class:`prism_kernels.llm.service.LlmService`: the runtime's instance
(the REST API's, with the server's providers) when a provider is configured, else a service on
the replay file shipped with PRISM (``prism_kernels/llm/demo_replay.jsonl``: answers *authored
for the demo*, not model output, so the dashboard runs offline). This module only lays results
out. The results and what they depend on::

    consensus  <- source, prompt, custom_prompt, models, strategy, min_agreement
    similarity <- consensus

The streamed answer is not a result: the "Stream" button starts
:meth:`LlmService.stream` in a thread, which puts each item in a queue; in a served session a
periodic callback on the event loop drains the queue into the page every
``STREAM_POLL_MS`` ms, so the text appears as it arrives (in a notebook or a test the stream
runs in place).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

import prism_kernels.llm as llm_pkg
from prism_kernels.errors import PrismError
from prism_kernels.llm.config import RouterSettings, load_config
from prism_kernels.llm.consensus import STRATEGIES
from prism_kernels.llm.embeddings import as_host, embed, similarity
from prism_kernels.llm.replay import load_records
from prism_kernels.llm.service import LlmService
from prism_kernels.runtime import get_runtime
from widgets.base import DomainViewer, Result, _served, rerange, result_table

DEMO_REPLAY = Path(llm_pkg.__file__).resolve().parent / "demo_replay.jsonl"
REPLAY = "Shipped replay file (authored demo answers)"
SERVER = "Server's providers (PRISM_LLM_* / OPENAI_* ...)"
STREAM_POLL_MS = 100
NEVER_COOL = 2**31
ANSWER_COLUMNS = {
    "model": "Model",
    "cluster": "Cluster",
    "text": "Answer",
    "tokens": "Tokens (completion)",
    "cost_usd": "Cost (USD)",
    "latency_ms": "Latency (ms)",
}


def demo_prompts(path: Path = DEMO_REPLAY) -> list[str]:
    """The questions a replay file answers, in first-seen order (a record marked
    ``"demo": "council-judge"`` is a peer ranking, not a question)."""
    seen: dict[str, None] = {}
    for rec in load_records(path):
        users = [m["content"] for m in rec["messages"] if m["role"] == "user"]
        if users and rec.get("demo", "answer") == "answer":
            seen[users[-1]] = None
    return list(seen)


def demo_models(path: Path = DEMO_REPLAY) -> list[str]:
    """The models recorded in a replay file, in first-seen order."""
    return list(dict.fromkeys(rec["model"] for rec in load_records(path)))


def demo_service(path: Path = DEMO_REPLAY) -> LlmService:
    """A service answering from the replay file ``path`` (no provider, no network).

    A request the file does not hold (another prompt, a council of other models) is an error
    for that request only: the replay endpoint is never cooled down (a miss is not an outage).
    """
    config = load_config({"PRISM_LLM_REPLAY": str(path)})
    return LlmService(config=replace(config, router=RouterSettings(cooldown_after=NEVER_COOL)))


class LlmViewer(DomainViewer):
    """One prompt, several models: answers, similarity, clusters, consensus, cost, streaming.

    Parameters
    ----------
    source : the shipped replay file (authored demo answers) or the server's providers.
    prompt : one of the replay file's prompts.
    custom_prompt : any prompt (live providers only; empty = the selected prompt).
    models : the models asked.
    strategy : the consensus strategy.
    min_agreement : the agreement the consensus must reach to count as reached.
    stream_model : the model whose answer the "Stream" button streams.
    """

    title = param.String(default="LLM consensus", precedence=-1)
    slug = "llm"
    order = 70
    description = (
        "One prompt, several models: answers side by side, similarity and clusters, "
        "consensus and agreement, cost and latency, streaming"
    )
    service_class = LlmService
    probe = ("strategy", "majority")
    source_probe = ("prompt", "What causes the seasons on Earth?")
    outputs = (
        Result(
            "consensus",
            ("source", "prompt", "custom_prompt", "models", "strategy", "min_agreement"),
        ),
        Result("similarity", ("consensus",)),
    )

    source = param.Selector(default=REPLAY, objects=[REPLAY], label="Answers from")
    prompt = param.Selector(default=None, objects=[], label="Prompt")
    custom_prompt = param.String(default="", label="Your own prompt (live providers)")
    models = param.ListSelector(default=[], objects=[], label="Models")
    strategy = param.Selector(
        default="semantic", objects=list(STRATEGIES), label="Consensus strategy"
    )
    min_agreement = param.Number(
        default=0.6, bounds=(0.0, 1.0), step=0.05, label="Agreement required"
    )
    stream_model = param.Selector(default=None, objects=[], label="Model to stream")
    streamed = param.String(default="", precedence=-1)

    def __init__(self, service: LlmService | None = None, **params: Any) -> None:
        self._replay_service: LlmService | None = None
        self._given = service
        self._syncing = True  # filling the choices: no recomputation yet
        self._queue: queue.Queue = queue.Queue()
        self._stream_cb: Any = None
        self._stream_stop = threading.Event()
        self.stream_status = ""
        super().__init__(service=service, **params)
        live = service if service is not None else get_runtime().service(LlmService)
        sources = [REPLAY] + ([SERVER] if _is_configured(live) else [])
        self.param.source.objects = sources
        if "source" not in params or self.source not in sources:
            self.source = SERVER if SERVER in sources else REPLAY
        prompts = demo_prompts()
        self.param.prompt.objects = prompts
        if self.prompt not in prompts:
            self.prompt = prompts[0]
        self._sync_models()
        self._syncing = False
        self.answers = result_table(
            ANSWER_COLUMNS.values(),
            height=230,
            formatters={
                ANSWER_COLUMNS["cost_usd"]: NumberFormatter(format="0.000000"),
                ANSWER_COLUMNS["latency_ms"]: NumberFormatter(format="0.0"),
            },
            widths={ANSWER_COLUMNS["text"]: 480},
        )
        self.refresh()

    # ------------------------------------------------------------------ services

    @property
    def service(self) -> LlmService:
        """The server's service for ``SERVER``; the shipped replay file's for ``REPLAY``."""
        if self.source == SERVER:
            return self._given if self._given is not None else get_runtime().service(LlmService)
        if self._replay_service is None:
            self._replay_service = demo_service()
        return self._replay_service

    def _available_models(self) -> list[str]:
        if self.source == REPLAY:
            return demo_models()
        return [m["name"] for m in self.service.models()]

    def _sync_models(self) -> None:
        """Offer the models of the current source (keeping the chosen ones it has)."""
        names = self._available_models()
        syncing, self._syncing = self._syncing, True
        try:
            self.param.models.objects = names
            self.param.stream_model.objects = names
            keep = [m for m in self.models if m in names]
            self.models = keep or names[:4]
            if self.stream_model not in names:
                self.stream_model = names[0] if names else None
        finally:
            self._syncing = syncing

    def _controls_changed(self, *events: param.parameterized.Event) -> None:
        if self._syncing:
            return
        if any(e.name == "source" for e in events):
            self._sync_models()
        super()._controls_changed(*events)

    # ------------------------------------------------------------------ results

    def _prompt(self) -> str:
        custom = (self.custom_prompt or "").strip()
        return custom if custom and self.source == SERVER else str(self.prompt)

    def compute_consensus(self) -> dict[str, Any]:
        return self.service.consensus(
            self._prompt(),
            list(self.models),
            strategy=self.strategy,
            min_agreement=float(self.min_agreement),
        )

    def compute_similarity(self) -> dict[str, Any] | None:
        c = self.value.get("consensus")
        if c is None:
            return None
        rows = c["individual_responses"]
        labels = [r["model"] for r in rows]
        if c.get("similarity") is not None:
            sim = np.asarray(c["similarity"], dtype=float)
        else:  # the strategy reported none (majority, weighted): the semantic vote's embedding
            texts = [r["text"] for r in rows]
            sim = as_host(similarity(embed(texts, weighting="sif", context=self._prompt())))
        return {"labels": labels, "matrix": sim, "clusters": [r.get("cluster") for r in rows]}

    def after_refresh(self, names: list[str]) -> None:
        if "consensus" in names:
            c = self.value.get("consensus")
            rows = c["individual_responses"] if c else []
            df = pd.DataFrame(
                [
                    {
                        "model": r["model"],
                        "cluster": r.get("cluster"),
                        "text": r["text"],
                        "tokens": _completion_tokens(r),
                        "cost_usd": r.get("cost_usd"),
                        "latency_ms": r.get("latency_ms"),
                    }
                    for r in rows
                ],
                columns=list(ANSWER_COLUMNS),
            )
            self.answers.value = df.rename(columns=ANSWER_COLUMNS)

    # ------------------------------------------------------------------ streaming

    def start_stream(self, _event: Any = None) -> None:
        """Stream ``stream_model``'s answer to the prompt into :attr:`streamed`."""
        self._stream_stop.set()  # a running stream stops feeding the page
        self._stream_stop = stop = threading.Event()
        self._queue = q = queue.Queue()
        self.streamed = ""
        self.stream_status = f"streaming {self.stream_model}…"
        prompt, model, service = self._prompt(), self.stream_model, self.service

        def produce() -> None:
            try:
                for item in service.stream(prompt, model=model):
                    if stop.is_set():
                        break
                    q.put(item)
            except PrismError as exc:
                q.put({"type": "error", "message": str(exc)})
            except Exception as exc:  # noqa: BLE001 - shown, and the page keeps working
                q.put({"type": "error", "message": f"{type(exc).__name__}"})
            q.put(None)

        if _served():
            threading.Thread(target=produce, name="prism-llm-viewer-stream", daemon=True).start()
            if self._stream_cb is None:
                self._stream_cb = pn.state.add_periodic_callback(
                    self.drain_stream, period=STREAM_POLL_MS
                )
        else:
            produce()
            self.drain_stream()

    def drain_stream(self) -> bool:
        """Move what the stream has produced into the page; False once it has ended."""
        text, status, ended = self.streamed, self.stream_status, False
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                ended = True
                break
            kind = item.get("type")
            if kind == "chunk":
                text += item.get("delta", "")
            elif kind == "fallback":
                drop = int(item.get("discard_chars") or 0)
                text = text[: len(text) - drop] if drop else text
                status = (
                    f"{item.get('from_model')} failed ({item.get('reason')}); "
                    f"{item.get('to_model')} took over"
                )
            elif kind == "done":
                tokens = item.get("tokens_used") or {}
                status = (
                    f"done: {item.get('model_used')}, {tokens.get('completion', '?')} tokens, "
                    f"{_fmt_ms(item.get('latency_ms'))}"
                    + (", from the cache" if item.get("cached") else "")
                )
            elif kind == "error":
                status = f"error: {item.get('message')}"
        self.stream_status = status
        self.streamed = text  # the view depends on this parameter
        if ended and self._stream_cb is not None:
            self._stream_cb.stop()
            self._stream_cb = None
        return not ended

    @param.depends("streamed")
    def stream_view(self) -> pn.pane.Markdown:
        body = self.streamed or "_(press Stream)_"
        return pn.pane.Markdown(
            f"**Streamed answer** ({self.stream_status or 'idle'}):\n\n{body}",
            sizing_mode="stretch_width",
        )

    # ------------------------------------------------------------------ views

    @param.depends("consensus_version")
    def summary(self) -> pn.pane.Markdown:
        c = self.value.get("consensus")
        if c is None:
            return pn.pane.Markdown("")
        reached = "reached" if c.get("reached") else "not reached"
        entropy = c.get("entropy")
        priced = [r for r in c["individual_responses"] if r.get("cost_usd") is not None]
        cost = c.get("total_cost_usd") if priced else None  # no price: unknown, not free
        lines = [
            f"**Prompt:** {self._prompt()}",
            f"**Consensus ({c['strategy']})**: {c['consensus_text']}",
            f"Agreement **{100 * c['agreement_score']:.0f} %** of the votes "
            f"({reached} against {100 * float(self.min_agreement):.0f} %)"
            + (f"; semantic entropy {entropy:.3f} nats" if entropy is not None else "")
            + f"; {len(c['participating_models'])} models, "
            + (f"total cost ${cost:.6f}" if cost is not None else "cost unknown (no price set)")
            + f", {_fmt_ms(c.get('latency_ms'))} in all.",
        ]
        if self.source == REPLAY:
            lines.append(
                "_Answers from the shipped replay file: authored for the demo, not model output._"
            )
        return pn.pane.Markdown("\n\n".join(lines), sizing_mode="stretch_width")

    def similarity_plot(self, **_: Any) -> hv.HeatMap:
        s = self.value.get("similarity")
        if s is None:
            return hv.HeatMap([], ["answer", "answer of"], "similarity")
        names = [
            f"{m} (c{c})" if c is not None else m
            for m, c in zip(s["labels"], s["clusters"], strict=True)
        ]
        rows = [
            (names[i], names[j], float(s["matrix"][i, j]))
            for i in range(len(names))
            for j in range(len(names))
        ]
        return hv.HeatMap(
            rows,
            [("a", "answer (model, cluster c)"), ("b", "compared with")],
            ("sim", "cosine similarity"),
        ).opts(
            title="Similarity of the answers",
            cmap="viridis",
            clim=(0.0, 1.0),
            colorbar=True,
            tools=["hover"],
            height=420,
            width=620,
            xrotation=30,
        )

    def usage_plot(self, **_: Any) -> hv.Layout:
        c = self.value.get("consensus")
        rows = c["individual_responses"] if c else []
        df = pd.DataFrame(
            {
                "model": [r["model"] for r in rows],
                "tokens": [_completion_tokens(r) or 0 for r in rows],
                "latency": [float(r.get("latency_ms") or 0.0) for r in rows],
            }
        )
        tokens = hv.Bars(df, ("model", "model"), ("tokens", "completion tokens")).opts(
            title="Tokens per model", height=260, width=420, color="steelblue"
        )
        latency = hv.Bars(df, ("model", "model"), ("latency", "latency (ms)")).opts(
            title="Latency per model", height=260, width=420, color="darkorange"
        )
        return (tokens + latency).cols(2)

    # ------------------------------------------------------------------ layout

    def sidebar(self) -> list:
        controls = pn.Param(
            self,
            parameters=[
                "source",
                "prompt",
                "custom_prompt",
                "models",
                "strategy",
                "min_agreement",
                "stream_model",
            ],
            widgets={"models": pn.widgets.MultiChoice},
            show_name=False,
        )
        button = pn.widgets.Button(label="Stream", color="primary")
        button.on_click(self.start_stream)
        return [controls, button]

    def main(self) -> list:
        def dmap(fn: Any, *deps: str) -> pn.pane.HoloViews:
            stream = hv.streams.Params(self, list(deps))
            return pn.pane.HoloViews(rerange(hv.DynamicMap(fn, streams=[stream])))

        return [
            self.summary,
            self.answers,
            dmap(self.similarity_plot, "similarity_version"),
            dmap(self.usage_plot, "consensus_version"),
            self.stream_view,
        ]


def _is_configured(service: Any) -> bool:
    try:
        return bool(service.health_details().get("configured"))
    except PrismError:
        return False


def _completion_tokens(row: dict[str, Any]) -> int | None:
    t = row.get("tokens")
    if isinstance(t, dict):
        return t.get("completion")
    return t


def _fmt_ms(ms: Any) -> str:
    return f"{float(ms):.1f} ms" if ms is not None else "latency unknown"
