"""Sentence embeddings from the weights that the ``wordllama`` package ships, offline.

WordLlama (``l2_supercat``, 256 dimensions) is a static token-embedding table (32,000 x 256,
float16) distilled from LLaMA-2's input embeddings, with LLaMA-2's tokenizer; a text's embedding
is the pooled table rows of its tokens. Both files come inside the wheel, so nothing is
downloaded.

The 0.4.0.post1 wheel keeps the tokenizer in ``wordllama/tokenizers/`` but its
``WordLlama.load`` looks in ``wordllama/tokenizer/`` and then tries the network (a download
from the hub) instead. This module therefore does not call ``WordLlama.load`` (nor import
``wordllama``, whose ``__init__`` imports pydantic and requests and calls
``logging.basicConfig``): it finds the installed package with ``importlib.util.find_spec`` and
opens the two shipped files explicitly (``safetensors`` for the table, ``tokenizers`` for the
tokenizer), then pools on the array backend. With ``weighting="mean"`` the result equals
``WordLlamaInference.embed(norm=True)`` (tested against it).

``weighting="sif"`` is for comparing *answers to one prompt*: a smooth-inverse-frequency
weighted mean (Arora, Liang & Ma 2017, weight ``a / (a + p(w))``) where ``p(w)`` is estimated
from the token's BPE merge rank (Zipf: ``p ~ 1 / rank``, so the weight is ``rank / (rank + a)``),
and tokens that also occur in ``context`` (the prompt) are scaled by ``context_weight``: the
words every answer repeats from the question ("the capital of France is ...") then no longer
dominate, and "Paris" vs "Lyon" decides (measured on ``tests/llm/paraphrases.json``).
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from prism_kernels.backend import get_namespace, namespace, to_numpy
from prism_kernels.errors import InvalidInput, Unavailable

MODEL = "wordllama/l2_supercat_256"
DIM = 256
WEIGHTS_FILE = "weights/l2_supercat_256.safetensors"
TOKENIZER_FILE = "tokenizers/l2_supercat_tokenizer_config.json"
WEIGHTINGS = ("mean", "sif")
SIF_A = 3000.0
CONTEXT_WEIGHT = 0.1
MAX_TEXTS = 1_000_000
_SLOTS = 32_768  # padded token slots per block (x 256 x 8 bytes = 64 MiB)


def model_files() -> tuple[Path, Path]:
    """Paths of the shipped weight table and tokenizer, found without importing ``wordllama``.

    Raises
    ------
    Unavailable
        When ``wordllama`` is not installed or its wheel lacks the files.
    """
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("sentence embeddings need the wordllama package (pip install wordllama)")
    root = Path(next(iter(spec.submodule_search_locations)))
    weights, tok = root / WEIGHTS_FILE, root / TOKENIZER_FILE
    for p in (weights, tok):
        if not p.is_file():
            raise Unavailable(f"wordllama is installed but {p.name} is missing from {root}")
    return weights, tok


class Embedder:
    """The loaded table and tokenizer (load once with :func:`get_embedder`).

    Attributes
    ----------
    table : np.ndarray
        (V, D) float32 token embeddings (the shipped float16 widened).
    tokenizer : tokenizers.Tokenizer
        LLaMA-2's tokenizer from the shipped JSON.
    """

    def __init__(self, weights: Path, tokenizer: Path) -> None:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        with safe_open(str(weights), framework="np", device="cpu") as f:
            self.table = np.ascontiguousarray(f.get_tensor("embedding.weight"), dtype=np.float32)
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self._lock = threading.Lock()
        self._tables: dict[Any, Any] = {}

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def token_ids(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text (no special tokens), clipped to the table."""
        with self._lock:  # the Rust tokenizer object is shared between threads
            enc = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        top = self.table.shape[0] - 1
        return [np.clip(np.asarray(e.ids, dtype=np.int64), 0, top) for e in enc]

    def table_on(self, xp: Any) -> Any:
        """The table as an array of ``xp`` (converted once per namespace)."""
        key = xp.__name__
        if key not in self._tables:
            self._tables[key] = self.table if "numpy" in key else xp.asarray(self.table)
        return self._tables[key]


@functools.cache
def get_embedder() -> Embedder:
    """The process-wide :class:`Embedder` (loaded on first use, about 0.2 s)."""
    return Embedder(*model_files())


def _check_texts(texts: Any, field: str) -> list[str]:
    if isinstance(texts, str):
        raise InvalidInput(field, "expected a list of strings, got one string")
    try:
        texts = list(texts)
    except TypeError:
        raise InvalidInput(field, "expected a list of strings") from None
    if len(texts) > MAX_TEXTS:
        raise InvalidInput(field, f"at most {MAX_TEXTS} texts, got {len(texts)}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInput(f"{field}.{i}", f"expected a string, got {type(t).__name__}")
    return texts


def embed(
    texts: list[str],
    *,
    weighting: str = "mean",
    context: str | None = None,
    sif_a: float = SIF_A,
    context_weight: float = CONTEXT_WEIGHT,
    xp: Any = None,
) -> Any:
    """Unit-length sentence embeddings.

    Parameters
    ----------
    texts : list of str
        N texts. A text without any token (``""``) gets the zero vector.
    weighting : {"mean", "sif"}
        ``"mean"``: WordLlama's own mean pooling. ``"sif"``: rank-based smooth inverse
        frequency weights, with tokens of ``context`` scaled by ``context_weight``.
    context : str, optional
        The prompt the texts answer (``"sif"`` only).
    sif_a : float
        SIF constant ``a`` in merge-rank units (weight ``rank / (rank + a)``).
    context_weight : float
        Factor in [0, 1] for tokens that also occur in ``context``.
    xp : namespace, optional
        Array library to compute on (default NumPy).

    Returns
    -------
    array (N, D) float32 of ``xp``
        Rows of Euclidean norm 1 (0 for token-less texts); D = 256.
    """
    texts = _check_texts(texts, "texts")
    if weighting not in WEIGHTINGS:
        raise InvalidInput("weighting", f"unknown weighting {weighting!r}; choose {WEIGHTINGS}")
    if not (np.isfinite(sif_a) and sif_a > 0):
        raise InvalidInput("sif_a", "must be a positive finite number")
    if not (np.isfinite(context_weight) and 0.0 <= context_weight <= 1.0):
        raise InvalidInput("context_weight", "must lie in [0, 1]")
    if context is not None and not isinstance(context, str):
        raise InvalidInput("context", "expected a string")
    xp = xp if xp is not None else namespace("numpy")
    emb = get_embedder()
    table = emb.table_on(xp)
    dev = getattr(table, "device", None)
    ctx = emb.token_ids([context])[0] if (context and weighting == "sif") else None
    n_all = len(texts)
    if n_all == 0:
        return xp.zeros((0, emb.dim), dtype=xp.float32)
    ids = emb.token_ids(texts)
    lengths = np.array([len(i) for i in ids])
    order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
    kw = {"device": dev} if dev is not None else {}
    out = []
    start = 0
    while start < n_all:
        stop = start + 1
        while stop < n_all and (stop + 1 - start) * max(1, lengths[order[stop]]) <= _SLOTS:
            stop += 1
        rows_idx = order[start:stop]
        n = rows_idx.size
        length = max(1, int(lengths[rows_idx].max()))
        pad = np.zeros((n, length), dtype=np.int64)
        w = np.zeros((n, length), dtype=np.float32)
        for r, k in enumerate(rows_idx):
            i = ids[k]
            pad[r, : len(i)] = i
            if weighting == "mean":
                w[r, : len(i)] = 1.0
            else:
                wi = i / (i + sif_a)
                if ctx is not None and ctx.size:
                    wi = np.where(np.isin(i, ctx), context_weight * wi, wi)
                w[r, : len(i)] = wi
        pooled = xp.zeros((n, emb.dim), dtype=xp.float64, **kw)
        width = max(1, _SLOTS // n)  # token columns per block: bounded memory for long texts
        for c0 in range(0, length, width):
            blk = pad[:, c0 : c0 + width]
            idx = xp.asarray(blk.reshape(-1), **kw)
            rows = xp.reshape(xp.take(table, idx, axis=0), (n, blk.shape[1], emb.dim))
            rows = xp.astype(rows, xp.float64)  # float64 sums: long texts stay accurate
            wb = xp.asarray(w[:, c0 : c0 + width].astype(np.float64), **kw)
            pooled = pooled + xp.sum(rows * wb[:, :, None], axis=1)
        norm = xp.sqrt(xp.sum(pooled * pooled, axis=1, keepdims=True))
        unit = xp.where(norm > 0, pooled / xp.where(norm > 0, norm, 1.0), 0.0)
        out.append(xp.astype(unit, xp.float32))
        start = stop
    sorted_rows = out[0] if len(out) == 1 else xp.concat(out, axis=0)
    inverse = np.empty(n_all, dtype=np.int64)
    inverse[order] = np.arange(n_all)
    return xp.take(sorted_rows, xp.asarray(inverse, **kw), axis=0)


def similarity(a: Any, b: Any = None) -> Any:
    """Cosine similarity matrix of unit rows, on the backend of ``a``.

    Parameters
    ----------
    a : array (N, D)
        Unit (or zero) rows, e.g. from :func:`embed`.
    b : array (M, D), optional
        Defaults to ``a``.

    Returns
    -------
    array (N, M)
        ``a @ b.T`` clipped to [-1, 1].
    """
    xp = get_namespace(a)
    if a.ndim != 2:
        raise InvalidInput("a", f"expected a (N, D) matrix, got shape {tuple(a.shape)}")
    b = a if b is None else b
    if b.ndim != 2 or b.shape[1] != a.shape[1]:
        raise InvalidInput(
            "b", f"expected (M, {a.shape[1]}) to match a's width, got shape {tuple(b.shape)}"
        )
    if not bool(xp.all(xp.isfinite(a))) or not bool(xp.all(xp.isfinite(b))):
        raise InvalidInput("a" if not bool(xp.all(xp.isfinite(a))) else "b", "contains NaN or inf")
    return xp.clip(
        a @ xp.matrix_transpose(b) if hasattr(xp, "matrix_transpose") else a @ b.T, -1.0, 1.0
    )


def as_host(x: Any) -> np.ndarray:
    """NumPy copy of an embedding array (for the cache's host matrix)."""
    return np.asarray(to_numpy(x), dtype=np.float32)
