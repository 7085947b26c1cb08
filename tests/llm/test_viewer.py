"""The LLM viewer on the shipped replay file: the consensus, similarity and clusters come from the
service and the embeddings, the probe and the source switch change what it shows, a streamed
answer arrives chunk by chunk (a fallback's discard applied), and the replay file is what it
says it is (authored demo answers, tokens counted like the loopback's tokenizer)."""

from __future__ import annotations

import json
import queue

import holoviews as hv
import numpy as np
import pytest

from prism_kernels.llm.consensus import semantic
from prism_kernels.llm.replay import load_records, request_key
from tests.llm.loopback import count_tokens, split_chunks
from widgets.llm import DEMO_REPLAY, REPLAY, LlmViewer, demo_models, demo_prompts, demo_service


@pytest.fixture(scope="module")
def service():
    return demo_service()


@pytest.fixture
def viewer(service):
    v = LlmViewer()
    v._replay_service = service
    v.refresh()
    return v


def _text(v) -> str:
    return v.summary().object


def test_replay_file_is_labelled_and_consistent():
    records = load_records(DEMO_REPLAY)
    models, prompts = demo_models(), demo_prompts()
    assert len(models) >= 3 and len(prompts) >= 3
    for rec in records:
        assert rec["note"] == "authored demo answers, not model output"
        assert rec["key"] == request_key(rec["model"], rec["messages"], rec["params"])
        assert "".join(rec["chunks"]) == rec["text"] and rec["chunks"] == split_chunks(rec["text"])
        assert rec["usage"]["completion_tokens"] == count_tokens(rec["text"])
        assert rec["usage"]["prompt_tokens"] == sum(
            count_tokens(m["content"]) for m in rec["messages"]
        )
    # every prompt answered by every model, with one dissenting answer the embeddings separate
    for p in prompts:
        answers = {r["model"]: r["text"] for r in records if r["messages"][-1]["content"] == p}
        assert set(answers) == set(models)
        labels = semantic(list(answers.values()), prompt=p).labels
        sizes = sorted(np.bincount(labels).tolist())
        assert sizes == [1, len(models) - 1], (p, labels)


def test_consensus_similarity_and_table(viewer):
    assert viewer.source == REPLAY and viewer.status == "", viewer.status
    c = viewer.value["consensus"]
    assert c["strategy"] == "semantic" and set(c["participating_models"]) == set(viewer.models)
    assert c["agreement_score"] == pytest.approx(0.75)
    assert c["reached"] is True  # 0.75 >= 0.6
    s = viewer.value["similarity"]
    m = s["matrix"]
    assert m.shape == (len(viewer.models),) * 2 and np.allclose(np.diag(m), 1.0, atol=1e-6)
    assert np.allclose(m, m.T, atol=1e-9)
    # the dissenting answer is its own cluster, on average less similar to the others than
    # they are to each other (average linkage)
    clusters = [r["cluster"] for r in c["individual_responses"]]
    lone = [i for i, k in enumerate(clusters) if clusters.count(k) == 1]
    assert len(lone) == 1
    others = [i for i in range(len(clusters)) if i != lone[0]]
    within = [m[i, j] for i in others for j in others if i != j]
    assert m[lone[0], others].mean() < np.mean(within)
    table = viewer.answers.value
    assert len(table) == len(viewer.models) and table["Tokens (completion)"].min() > 0
    assert "authored for the demo" in _text(viewer)
    hv.render(viewer.similarity_plot())
    hv.render(viewer.usage_plot())


def test_probe_and_source_probe_change_the_view(viewer):
    before = _text(viewer)
    name, value = viewer.probe
    setattr(viewer, name, value)
    after = _text(viewer)
    assert after != before and "majority" in after and viewer.status == ""
    # four different texts: majority sees four groups of one
    assert viewer.value["consensus"]["agreement_score"] == pytest.approx(0.25)
    name, value = viewer.source_probe
    setattr(viewer, name, value)
    assert value in _text(viewer) and viewer.status == ""
    assert viewer.value["similarity"]["matrix"].shape[0] == len(viewer.models)
    viewer.models = viewer.models[:2]
    assert len(viewer.value["consensus"]["individual_responses"]) == 2
    viewer.__panel__()


def test_council_and_self_consistency_on_the_replay(viewer):
    viewer.strategy = "council"  # the file holds the authored judges' rankings of all four
    c = viewer.value["consensus"]
    assert viewer.status == "" and c["strategy"] == "council"
    borda = c["borda"]
    texts = [r["text"] for r in c["individual_responses"]]
    lone = semantic(texts, prompt=viewer.prompt).labels
    dissent = [i for i, k in enumerate(lone) if list(lone).count(k) == 1][0]
    assert borda[dissent] == 0 and c["consensus_text"] != texts[dissent]
    assert sum(borda) == 4 * (1 + 2)  # four judges, each ranking the three others' answers
    viewer.strategy = "self_consistency"  # one recorded answer: every sample the same
    c = viewer.value["consensus"]
    assert viewer.status == "" and c["agreement_score"] == pytest.approx(1.0)
    assert c["num_unique_answers"] == 1
    assert {r["model"] for r in c["individual_responses"]} == {viewer.models[0]}


def test_stream_in_place(viewer):
    viewer.stream_model = demo_models()[1]
    viewer.start_stream()
    rec = next(
        r
        for r in load_records(DEMO_REPLAY)
        if r["model"] == viewer.stream_model and r["messages"][-1]["content"] == viewer.prompt
    )
    assert viewer.streamed == rec["text"]
    assert viewer.stream_status.startswith(f"done: {viewer.stream_model}")
    assert rec["text"] in viewer.stream_view().object


def test_drain_applies_chunks_and_fallback_discard(viewer):
    q: queue.Queue = queue.Queue()
    for item in [
        {"type": "chunk", "delta": "Half "},
        {"type": "chunk", "delta": "an answer"},
        {
            "type": "fallback",
            "from_model": "a",
            "to_model": "b",
            "reason": "stream cut",
            "discard_chars": len("Half an answer"),
        },
    ]:
        q.put(item)
    viewer._queue, viewer.streamed = q, ""
    assert viewer.drain_stream() is True  # not ended yet
    assert viewer.streamed == "" and "b took over" in viewer.stream_status
    q.put({"type": "chunk", "delta": "Whole."})
    q.put({"type": "done", "model_used": "b", "tokens_used": {"completion": 1}, "latency_ms": 3})
    q.put(None)
    assert viewer.drain_stream() is False
    assert viewer.streamed == "Whole." and viewer.stream_status.startswith("done: b")


def test_unavailable_prompt_is_a_status_message(viewer):
    # a prompt the replay file has no answer for: the status says so, nothing crashes
    viewer.param.prompt.objects = [*viewer.param.prompt.objects, "Not recorded?"]
    viewer.prompt = "Not recorded?"
    assert viewer.status and "Consensus" in viewer.status
    json.dumps(viewer.status)
