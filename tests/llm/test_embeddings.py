"""Embeddings: WordLlama's shipped weights loaded offline, against wordllama's own inference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.llm import embeddings as E

WORDS = (
    "the capital of France is Paris Lyon river model answer gold Au planet Jupiter water boils "
    "at 100 degrees Celsius 1945 war ended carbon dioxide oxygen heart liver Everest K2 C Java "
    "é ünïcode 数字 🙂 , . ! ? ( ) 3.14 -7"
).split()


def _texts(rng, n):
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 25))) for _ in range(n)]


def _reference_inference():
    """wordllama's own inference object, built from the same shipped files."""
    from safetensors import safe_open
    from tokenizers import Tokenizer
    from wordllama import WordLlamaInference

    w, t = E.model_files()
    with safe_open(str(w), framework="np") as f:
        table = f.get_tensor("embedding.weight")
    return WordLlamaInference(table, Tokenizer.from_file(str(t)))


def test_shipped_files_are_found():
    w, t = E.model_files()
    assert w.is_file() and t.is_file()
    assert w.stat().st_size > 10_000_000  # 32,000 x 256 float16
    emb = E.get_embedder()
    assert emb.table.shape == (32000, E.DIM) and emb.table.dtype == np.float32


def test_wordllama_load_quirk_is_real_and_we_do_not_depend_on_it(tmp_path):
    """The wheel's own ``WordLlama.load`` looks for ``tokenizer/`` (it ships ``tokenizers/``)."""
    w, _ = E.model_files()
    root = w.parent.parent
    if (root / "tokenizer").exists():  # a fixed wheel: nothing to show
        pytest.skip("this wordllama ships tokenizer/")
    from wordllama import WordLlama

    with pytest.raises(FileNotFoundError, match="okenizer"):
        WordLlama.load(cache_dir=tmp_path, disable_download=True)


def test_loads_and_embeds_with_the_network_blocked(tmp_path):
    """A fresh interpreter, an empty HOME (no ~/.cache), every socket connect refused."""
    code = """
import socket
def refuse(*a, **k):
    raise OSError("network blocked by the test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
from prism_kernels.llm.embeddings import embed
x = embed(["Paris is the capital of France.", "Lyon"])
import json, numpy as np
print(json.dumps({"shape": list(x.shape), "norms": np.linalg.norm(x, axis=1).tolist()}))
"""
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "0",
        "XDG_CACHE_HOME": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["shape"] == [2, E.DIM]
    np.testing.assert_allclose(res["norms"], 1.0, atol=1e-5)
    assert not list(tmp_path.rglob("*.safetensors"))  # nothing downloaded into the cache


def test_mean_embeddings_equal_wordllama_inference(rng):
    texts = _texts(rng, 200)
    ref = _reference_inference().embed(texts, norm=True)
    ours = E.embed(texts)
    assert ours.shape == (200, E.DIM) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=2e-6)


def test_sif_against_a_direct_loop(rng):
    texts = _texts(rng, 50)
    context = "What is the capital of France, and which river?"
    emb = E.get_embedder()
    ctx = set(emb.tokenizer.encode(context, add_special_tokens=False).ids)
    ref = []
    for t in texts:
        ids = emb.tokenizer.encode(t, add_special_tokens=False).ids
        v = np.zeros(E.DIM)
        for i in ids:
            w = i / (i + 500.0) * (0.25 if i in ctx else 1.0)
            v += w * emb.table[i].astype(np.float64)
        ref.append(v / np.linalg.norm(v))
    ours = E.embed(texts, weighting="sif", context=context, sif_a=500.0, context_weight=0.25)
    np.testing.assert_allclose(ours, np.array(ref), atol=2e-6)


def test_long_texts_in_blocks_and_order_kept(rng):
    emb = E.get_embedder()
    long = "token " * 70_000  # more tokens than one block holds
    tid = emb.tokenizer.encode(" token", add_special_tokens=False).ids[-1]
    texts = _texts(rng, 30) + [long] + _texts(rng, 30)
    x = E.embed(texts)
    row = emb.table[tid] / np.linalg.norm(emb.table[tid])
    ids = emb.tokenizer.encode(long, add_special_tokens=False).ids
    assert len(ids) > E._SLOTS
    ref = emb.table[ids].astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(x[30], ref / np.linalg.norm(ref), atol=1e-5)
    if set(ids) == {tid}:
        np.testing.assert_allclose(x[30], row, atol=1e-5)
    for i in (0, 17, 45, 60):
        np.testing.assert_allclose(x[i], E.embed([texts[i]])[0], atol=1e-6)


def test_backends_agree(xp, rng):
    texts = _texts(rng, 40)
    ref = E.embed(texts, weighting="sif", context="the capital")
    got = E.embed(texts, weighting="sif", context="the capital", xp=xp)
    np.testing.assert_allclose(to_numpy(got), ref, atol=1e-6)
    S = E.similarity(got)
    np.testing.assert_allclose(to_numpy(S), ref.astype(np.float64) @ ref.T, atol=1e-5)


def test_similarity_against_numpy(xp, to_xp, rng):
    a = rng.normal(size=(7, 5))
    b = rng.normal(size=(3, 5))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    S = E.similarity(to_xp(a), to_xp(b))
    np.testing.assert_allclose(to_numpy(S), a @ b.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(to_numpy(E.similarity(to_xp(a)))), 1.0, atol=1e-12)


def test_edge_cases(xp, to_xp):
    assert tuple(E.embed([], xp=xp).shape) == (0, E.DIM)
    x = to_numpy(E.embed(["", "word"], xp=xp))
    assert np.all(x[0] == 0) and abs(np.linalg.norm(x[1]) - 1) < 1e-5
    one = to_numpy(E.embed(["one"], xp=xp))
    assert one.shape == (1, E.DIM)
    long = to_numpy(E.embed(["token " * 20_000]))
    assert np.isfinite(long).all()
    with pytest.raises(InvalidInput) as e:
        E.embed(["a", 3])
    assert e.value.field == "texts.1"
    with pytest.raises(InvalidInput) as e:
        E.embed("a single string")
    assert e.value.field == "texts"
    with pytest.raises(InvalidInput) as e:
        E.embed(["a"], weighting="max")
    assert e.value.field == "weighting"
    with pytest.raises(InvalidInput) as e:
        E.embed(["a"], weighting="sif", context_weight=2.0)
    assert e.value.field == "context_weight"
    with pytest.raises(InvalidInput) as e:
        E.embed(["a"], weighting="sif", sif_a=float("nan"))
    assert e.value.field == "sif_a"
    with pytest.raises(InvalidInput) as e:
        E.similarity(to_xp(np.ones((2, 3))), to_xp(np.ones((2, 4))))
    assert e.value.field == "b"
    with pytest.raises(InvalidInput) as e:
        E.similarity(to_xp(np.array([[np.nan, 1.0]])))
    assert e.value.field == "a"
    with pytest.raises(InvalidInput) as e:
        E.similarity(to_xp(np.ones(3)))
    assert e.value.field == "a"
