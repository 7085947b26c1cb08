"""Consensus over the answers of several models (or several samples of one): pure functions.

No network here: :func:`council` and :func:`self_consistency` take the language-model calls as
callables, so the router (or a replay file) does the I/O and this module only scores.

Strategies (:data:`STRATEGIES`):

- ``majority``: answers grouped by normalised text (:func:`normalize_text`), each answer one vote.
- ``weighted``: the same groups, each answer voting with its model's weight.
- ``semantic``: answers embedded (:mod:`prism_kernels.llm.embeddings`, ``weighting="sif"`` with
  the prompt as context), the cosine similarity matrix computed on the array backend, and
  clusters formed by average linkage cut at ``threshold`` (clusters join while their mean
  pairwise similarity is at least the threshold; rounds of reciprocal-nearest-neighbour merges
  on the backend; ``linkage="single"`` gives connected components instead, which chain on
  large answer sets). Identical normalised texts always join. The winner is the medoid of the
  heaviest cluster, agreement its weight share, and the semantic entropy
  ``-sum_c p_c ln p_c`` (nats) over cluster weight shares (the discrete estimator of Kuhn, Gal &
  Farquhar 2023). The default threshold (0.45) was chosen on ``tests/llm/paraphrases.json``
  (16 prompts: 12 partitioned exactly, 119 of 133 answer pairs right).
- ``council``: each judge ranks the anonymised answers ("Response A", "Response B"...); the
  rankings are aggregated by Borda count (a judge counts once, never for its own answer); an
  optional chairman writes the synthesis.
- ``self_consistency``: n samples of one model, then ``semantic`` (or ``majority``).

Anything else (the original's ``quantum``, ``thermodynamic``) is an
``InvalidInput("strategy", ...)`` listing these.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prism_kernels.arrays import device_of
from prism_kernels.backend import get_namespace, namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.llm.embeddings import embed, similarity
from prism_kernels.llm.keyterms import fact_relations

STRATEGIES = ("majority", "weighted", "semantic", "council", "self_consistency")
DEFAULT_THRESHOLD = 0.45
MAX_ANSWERS = 10_000
MAX_MATRIX = 256
_PUNCT = str.maketrans("", "", string.punctuation + "“”‘’«»")


@dataclass
class ConsensusResult:
    """Outcome of one consensus.

    Attributes
    ----------
    strategy : str
    text : str
        The consensus answer (the winning answer's text, or the chairman's synthesis).
    index : int
        Index of the winning answer in the input.
    agreement : float
        Weight share in [0, 1] of the winning group (council: the winner's share of the Borda
        points).
    labels : list of int
        Group (cluster) of each answer, numbered by first appearance.
    group_weights : list of float
        Total weight of each group.
    entropy : float
        ``-sum p ln p`` over the group weight shares (nats).
    details : dict
        Strategy-specific, JSON-able (similarity matrix, Borda scores, rankings...).
    """

    strategy: str
    text: str
    index: int
    agreement: float
    labels: list[int]
    group_weights: list[float]
    entropy: float
    details: dict[str, Any] = field(default_factory=dict)

    def reached(self, min_agreement: float) -> bool:
        """Whether ``agreement >= min_agreement``."""
        return self.agreement >= min_agreement

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "text": self.text,
            "index": self.index,
            "agreement": self.agreement,
            "labels": list(self.labels),
            "group_weights": list(self.group_weights),
            "entropy": self.entropy,
            "details": self.details,
        }


def check_strategy(name: Any) -> str:
    """``name`` if it is one of :data:`STRATEGIES`, else ``InvalidInput("strategy")``."""
    if not isinstance(name, str) or name not in STRATEGIES:
        raise InvalidInput(
            "strategy",
            f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}",
            choices=list(STRATEGIES),
        )
    return name


def normalize_text(text: str) -> str:
    """Case-folded, NFKC, punctuation removed, whitespace collapsed."""
    t = unicodedata.normalize("NFKC", text).casefold().translate(_PUNCT)
    return " ".join(t.split())


def _check_answers(answers: Any) -> list[str]:
    if isinstance(answers, str):
        raise InvalidInput("answers", "expected a list of answers, got one string")
    answers = list(answers)
    if not answers:
        raise InvalidInput("answers", "at least one answer is needed")
    if len(answers) > MAX_ANSWERS:
        raise InvalidInput("answers", f"at most {MAX_ANSWERS} answers, got {len(answers)}")
    for i, a in enumerate(answers):
        if not isinstance(a, str):
            raise InvalidInput(f"answers.{i}", f"expected a string, got {type(a).__name__}")
    return answers


def _check_weights(weights: Any, n: int, required: bool = False) -> np.ndarray:
    if weights is None:
        if required:
            raise InvalidInput("weights", "the weighted strategy needs one weight per answer")
        return np.ones(n)
    w = np.asarray(to_numpy(weights), dtype=np.float64).reshape(-1)
    if w.shape[0] != n:
        raise InvalidInput("weights", f"expected {n} weights (one per answer), got {w.shape[0]}")
    if not np.all(np.isfinite(w)):
        raise InvalidInput("weights", "contains NaN or inf")
    if np.any(w < 0) or not w.sum() > 0:
        raise InvalidInput("weights", "weights must be >= 0 with a positive sum")
    return w


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return max(0.0, float(-(p * np.log(p)).sum())) if p.size else 0.0


def _groups(keys: Sequence[Any]) -> list[int]:
    seen: dict[Any, int] = {}
    return [seen.setdefault(k, len(seen)) for k in keys]


def _summarise(
    strategy: str, answers: list[str], labels: list[int], w: np.ndarray, pick: Callable
) -> tuple[int, float, list[float], float]:
    lab = np.asarray(labels)
    gw = np.bincount(lab, weights=w)
    best = int(np.argmax(gw))  # ties: the group seen first
    idx = int(pick(np.flatnonzero(lab == best)))
    share = gw / gw.sum()
    return idx, float(share[best]), gw.tolist(), _entropy(share)


def majority(answers: Sequence[str], weights: Any = None) -> ConsensusResult:
    """Plurality of normalised answers (one vote each, or ``weights``).

    Parameters
    ----------
    answers : sequence of str
        N answers.
    weights : array (N,), optional
        Non-negative vote weights (default 1 each).
    """
    answers = _check_answers(answers)
    w = _check_weights(weights, len(answers))
    labels = _groups([normalize_text(a) for a in answers])
    idx, agr, gw, h = _summarise("majority", answers, labels, w, lambda m: m[0])
    strategy = "majority" if weights is None else "weighted"
    return ConsensusResult(strategy, answers[idx], idx, agr, labels, gw, h)


def weighted(answers: Sequence[str], weights: Any) -> ConsensusResult:
    """:func:`majority` with one (required) weight per answer."""
    answers = _check_answers(answers)
    _check_weights(weights, len(answers), required=True)
    return majority(answers, weights)


def connected_labels(adjacency: Any) -> Any:
    """Connected components of an undirected graph, on the array backend.

    Parameters
    ----------
    adjacency : bool array (N, N)
        Symmetric adjacency (the diagonal is ignored).

    Returns
    -------
    int64 array (N,) of the same backend
        For each node the smallest node index of its component (min-label propagation with
        pointer jumping: O(N^2) per sweep, O(log N) sweeps on typical graphs).
    """
    xp = get_namespace(adjacency)
    if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1]:
        raise InvalidInput("adjacency", f"expected a square matrix, got {tuple(adjacency.shape)}")
    n = adjacency.shape[0]
    dev = getattr(adjacency, "device", None)
    kw = {"device": dev} if dev is not None else {}
    lab = xp.arange(n, dtype=xp.int64, **kw)
    big = xp.asarray(n, dtype=xp.int64, **kw)
    for _ in range(n + 1):
        neigh = xp.min(xp.where(adjacency, lab[None, :], big), axis=1) if n else lab
        new = xp.minimum(lab, neigh)
        new = xp.take(new, new, axis=0)  # pointer jumping
        new = xp.take(new, new, axis=0)
        if bool(xp.all(new == lab)):
            break
        lab = new
    return lab


LINKAGES = ("average", "single")


def _merge_round(Sum: Any, size: Any, t: float, xp: Any) -> tuple[Any, Any, Any] | None:
    """One round of reciprocal-nearest-neighbour merges (average linkage) or None."""
    k = Sum.shape[0]
    if k < 2:
        return None
    dev = getattr(Sum, "device", None)
    kw = {"device": dev} if dev is not None else {}
    ar = xp.arange(k, dtype=xp.int64, **kw)
    M = Sum / (size[:, None] * size[None, :])
    M = xp.where(ar[:, None] == ar[None, :], -xp.inf, M)
    best = xp.argmax(M, axis=1)
    val = xp.max(M, axis=1)
    mutual = (xp.take(best, best, axis=0) == ar) & (val >= t)
    is_j = mutual & (ar > best)
    if not bool(xp.any(is_j)):
        return None
    target = xp.where(is_j, best, ar)
    keep = xp.astype(~is_j, xp.int64)
    newidx = xp.cumulative_sum(keep) - 1 if hasattr(xp, "cumulative_sum") else xp.cumsum(keep) - 1
    mapping = xp.take(newidx, target, axis=0)
    k_new = int(xp.max(mapping)) + 1
    if "numpy" in xp.__name__:  # host fast path: two reduceat passes, O(k^2)
        m = np.asarray(mapping)
        order = np.argsort(m, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(m[order]) != 0])
        R = np.add.reduceat(np.asarray(Sum)[order], starts, axis=0)
        R = np.add.reduceat(R[:, order], starts, axis=1)
        sz = np.add.reduceat(np.asarray(size)[order], starts)
        return xp.asarray(R), xp.asarray(sz), mapping
    P = xp.astype(xp.arange(k_new, dtype=xp.int64, **kw)[:, None] == mapping[None, :], Sum.dtype)
    return P @ Sum @ xp.matrix_transpose(P), P @ size, mapping


def connected_average(sim: Any, threshold: float) -> Any:
    """Average-linkage (UPGMA) clusters cut at ``threshold``, on the array backend.

    Clusters merge while the mean similarity between them is ``>= threshold``. Each round
    merges every pair of reciprocal nearest neighbours at once; average linkage is reducible,
    so this gives the same hierarchy as merging one pair at a time (as NN-chain does). A round
    costs O(k^2) for k clusters (NumPy: ``np.add.reduceat``; other backends: a one-hot matrix
    product).

    Returns
    -------
    int64 array (N,) of the same backend: a cluster index per item.
    """
    xp = get_namespace(sim)
    n = sim.shape[0]
    dev = getattr(sim, "device", None)
    kw = {"device": dev} if dev is not None else {}
    labels = xp.arange(n, dtype=xp.int64, **kw)
    Sum = xp.astype(sim, xp.float64)
    size = xp.ones(n, dtype=xp.float64, **kw)
    while True:
        step = _merge_round(Sum, size, threshold, xp)
        if step is None:
            return labels
        Sum, size, mapping = step
        labels = xp.take(mapping, labels, axis=0)


def cluster(sim: Any, threshold: float = DEFAULT_THRESHOLD, linkage: str = "average") -> list[int]:
    """Agglomerative clusters of a similarity matrix cut at ``threshold``.

    Parameters
    ----------
    sim : array (N, N)
        Symmetric similarities (cosine: in [-1, 1]) on any backend.
    threshold : float
        ``"average"``: clusters join while their mean pairwise similarity is ``>= threshold``;
        ``"single"``: items join when any pair has ``sim >= threshold`` (connected components;
        prone to chaining on large answer sets).
    linkage : {"average", "single"}

    Returns
    -------
    list of int
        Cluster of each item, numbered 0, 1, ... by first appearance: the same partition as
        scikit-learn's ``AgglomerativeClustering(linkage=linkage, metric="precomputed",
        distance_threshold=1 - threshold)`` on ``1 - sim`` (up to ties at the threshold).
    """
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
        raise InvalidInput("threshold", "must be a finite number")
    if linkage not in LINKAGES:
        raise InvalidInput("linkage", f"unknown linkage {linkage!r}; choose {LINKAGES}")
    xp = get_namespace(sim)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise InvalidInput("sim", f"expected a square matrix, got {tuple(sim.shape)}")
    if not bool(xp.all(xp.isfinite(sim))):
        raise InvalidInput("sim", "contains NaN or inf")
    if linkage == "single":
        roots = connected_labels(sim >= threshold)
    else:
        roots = connected_average(sim, float(threshold))
    return _groups(to_numpy(roots).tolist())


def semantic(
    answers: Sequence[str],
    weights: Any = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    prompt: str | None = None,
    embeddings: Any = None,
    linkage: str = "average",
    xp: Any = None,
    facts: bool = True,
) -> ConsensusResult:
    """Clusters of equivalent answers; the medoid of the heaviest cluster wins.

    Parameters
    ----------
    answers : sequence of str
        N answers.
    weights : array (N,), optional
        Non-negative weights (default 1 each).
    threshold : float
        Cosine similarity in [-1, 1] at which two answers count as the same answer.
    prompt : str, optional
        The question: its words are down-weighted in the answer embeddings.
    embeddings : array (N, D), optional
        Unit rows to use instead of :func:`~prism_kernels.llm.embeddings.embed` (any backend).
    linkage : {"average", "single"}
        See :func:`cluster`.
    xp : namespace, optional
        Backend for the embeddings and the similarity matrix (default NumPy, or that of
        ``embeddings``).
    facts : bool
        Compare the numbers and names the answers state
        (:func:`~prism_kernels.llm.keyterms.fact_relations`): a pair that agrees on them counts
        at least halfway between the threshold and identical, a pair that contradicts them at
        most as far below the threshold. Embeddings alone miss "100 degrees" against
        "90 degrees".

    Returns
    -------
    ConsensusResult
        ``details``: ``similarity`` (N x N nested list after the fact check, None when
        N > :data:`MAX_MATRIX`), ``threshold``, ``linkage``, ``facts`` (pairs agreeing and
        conflicting on numbers or names).
    """
    answers = _check_answers(answers)
    w = _check_weights(weights, len(answers))
    if not (isinstance(threshold, (int, float)) and -1.0 <= threshold <= 1.0):
        raise InvalidInput("threshold", "must be a number in [-1, 1]")
    if embeddings is None:
        E = embed(answers, weighting="sif", context=prompt, xp=xp or namespace("numpy"))
    else:
        E = embeddings
        if E.ndim != 2 or E.shape[0] != len(answers):
            raise InvalidInput("embeddings", f"expected ({len(answers)}, D), got {tuple(E.shape)}")
    bx = get_namespace(E)
    S = similarity(E)
    norm = [normalize_text(a) for a in answers]
    same = np.asarray(_groups(norm))
    eq = bx.asarray(same[:, None] == same[None, :], device=device_of(S))
    fact_pairs = {"agree": 0, "conflict": 0}
    if facts:
        rel = fact_relations(answers, prompt)
        fact_pairs = {"agree": int((rel > 0).sum()) // 2, "conflict": int((rel < 0).sum()) // 2}
        if fact_pairs["agree"] or fact_pairs["conflict"]:
            r = bx.asarray(rel, device=device_of(S))
            margin = (1.0 - threshold) / 2
            floor = bx.full_like(S, threshold + margin)
            cap = bx.full_like(S, threshold - margin)
            S = bx.where((r > 0) & (S < floor), floor, S)
            S = bx.where((r < 0) & (S > cap), cap, S)
    S = bx.where(eq, bx.ones_like(S), S)
    labels = cluster(S, threshold, linkage)
    Sh = np.asarray(to_numpy(S), dtype=np.float64)

    def medoid(members: np.ndarray) -> int:
        score = Sh[np.ix_(members, members)] @ w[members]
        return int(members[int(np.argmax(score))])

    idx, agr, gw, h = _summarise("semantic", answers, labels, w, medoid)
    return ConsensusResult(
        "semantic",
        answers[idx],
        idx,
        agr,
        labels,
        gw,
        h,
        {
            "similarity": np.round(Sh, 6).tolist() if len(answers) <= MAX_MATRIX else None,
            "threshold": float(threshold),
            "linkage": linkage,
            "facts": fact_pairs,
        },
    )


_LABEL = re.compile(r"Response\s+([A-Z]{1,2})\b")


def anonymise(n: int) -> list[str]:
    """Labels "A", "B", ..., "Z", "AA", ... for ``n`` answers."""
    out = []
    for i in range(n):
        s, k = "", i
        while True:
            s = chr(65 + k % 26) + s
            k = k // 26 - 1
            if k < 0:
                break
        out.append(s)
    return out


def ranking_prompt(prompt: str, answers: Sequence[str], labels: Sequence[str]) -> str:
    """The text a judge receives: the question and the anonymised answers."""
    parts = [
        f"Question: {prompt}",
        "",
        "Here are anonymised responses from several assistants:",
    ]
    for lab, a in zip(labels, answers, strict=True):
        parts += ["", f"Response {lab}:", a]
    parts += [
        "",
        "Rank the responses from best to worst for accuracy and usefulness. End with a line",
        "'FINAL RANKING:' followed by one 'Response X' per line, best first.",
    ]
    return "\n".join(parts)


def parse_ranking(text: str, labels: Sequence[str]) -> list[str]:
    """Labels in the order a judge ranked them (after 'FINAL RANKING:' when present).

    Unknown labels and repeats are ignored; unranked labels are left out.
    """
    part = text.split("FINAL RANKING:", 1)[1] if "FINAL RANKING:" in text else text
    valid, out = set(labels), []
    for m in _LABEL.finditer(part):
        if m.group(1) in valid and m.group(1) not in out:
            out.append(m.group(1))
    return out


def borda(
    rankings: Sequence[Sequence[int]], n: int, exclude: Sequence[int | None] = ()
) -> np.ndarray:
    """Borda points of ``n`` candidates.

    Parameters
    ----------
    rankings : sequence of sequences of int
        Per judge, candidate indices best first (partial rankings allowed).
    n : int
        Number of candidates.
    exclude : sequence of int or None
        Per judge, its own candidate (removed from its ranking before scoring) or None.

    Returns
    -------
    float array (n,)
        In a ranking of m eligible candidates the k-th (0-based) gets ``m - 1 - k`` points.
    """
    pts = np.zeros(n)
    exclude = list(exclude) + [None] * (len(rankings) - len(exclude))
    for r, own in zip(rankings, exclude, strict=True):
        r = [c for c in dict.fromkeys(r) if c != own and 0 <= c < n]
        m = n - (1 if own is not None else 0)
        for k, c in enumerate(r):
            pts[c] += m - 1 - k
    return pts


def council(
    prompt: str,
    answers: Sequence[str],
    judges: Mapping[str, Callable[[str], str]],
    *,
    models: Sequence[str] | None = None,
    chairman: Callable[[str], str] | None = None,
    seed: int = 0,
) -> ConsensusResult:
    """Anonymised peer ranking, Borda aggregation, optional chairman synthesis.

    Parameters
    ----------
    prompt : str
        The question.
    answers : sequence of str
        N answers (N >= 2).
    judges : mapping name -> callable(text) -> text
        Each judge gets :func:`ranking_prompt` (answers shuffled with ``seed`` and labelled)
        and answers in free text ending with a 'FINAL RANKING:' list. A judge whose name is in
        ``models`` does not score its own answer; each judge counts once.
    models : sequence of str, optional
        Model of each answer (for the self-vote exclusion and the details).
    chairman : callable(text) -> text, optional
        Gets the question, the answers and the aggregate ranking; its reply is the consensus
        text. Without one, the Borda winner's answer is.
    seed : int
        Shuffle of the anonymised order.
    """
    answers = _check_answers(answers)
    n = len(answers)
    if n < 2:
        raise InvalidInput("answers", "a council needs at least two answers")
    if not judges:
        raise InvalidInput("judges", "at least one judge is needed")
    if models is not None and len(models) != n:
        raise InvalidInput("models", f"expected {n} model names (one per answer)")
    order = np.random.default_rng(seed).permutation(n)
    labels = anonymise(n)
    shown = [answers[i] for i in order]
    text = ranking_prompt(prompt, shown, labels)
    of_label = {lab: int(order[k]) for k, lab in enumerate(labels)}
    rankings, exclude, raw = [], [], {}
    for name, judge in dict(judges).items():
        reply = judge(text)
        if not isinstance(reply, str):
            raise InvalidInput(f"judges.{name}", "a judge must return text")
        ranked = [of_label[lab] for lab in parse_ranking(reply, labels)]
        rankings.append(ranked)
        own = list(models).index(name) if models is not None and name in models else None
        exclude.append(own)
        raw[name] = [labels[int(np.flatnonzero(order == i)[0])] for i in ranked]
    pts = borda(rankings, n, exclude)
    idx = int(np.argmax(pts))
    total = pts.sum()
    agreement = float(pts[idx] / total) if total > 0 else 0.0
    result = answers[idx]
    if chairman is not None:
        agg = [int(i) for i in np.argsort(-pts, kind="stable")]
        brief = [f"Question: {prompt}", "", "Answers, best first by peer ranking:"]
        brief += [f"{k + 1}. {answers[i]}" for k, i in enumerate(agg)]
        brief += ["", "Write one final answer that synthesises the best of them."]
        result = chairman("\n".join(brief))
        if not isinstance(result, str):
            raise InvalidInput("chairman", "the chairman must return text")
    share = pts / total if total > 0 else np.full(n, 1.0 / n)
    return ConsensusResult(
        "council",
        result,
        idx,
        agreement,
        list(range(n)),
        pts.tolist(),
        _entropy(share),
        {
            "borda": pts.tolist(),
            "rankings": raw,
            "anonymised_order": [int(i) for i in order],
            "synthesised": chairman is not None,
        },
    )


def self_consistency(
    sample: Callable[[int], str],
    n: int,
    *,
    prompt: str | None = None,
    strategy: str = "semantic",
    threshold: float = DEFAULT_THRESHOLD,
) -> ConsensusResult:
    """``n`` samples of one model (``sample(i)`` returns the i-th), then a vote over them.

    ``strategy`` is ``"semantic"`` (default) or ``"majority"``; ``details["samples"]`` holds
    the answers.
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_ANSWERS:
        raise InvalidInput("samples", f"must be an integer in [1, {MAX_ANSWERS}]")
    if strategy not in ("semantic", "majority"):
        raise InvalidInput("strategy", "self-consistency votes with 'semantic' or 'majority'")
    answers = [sample(i) for i in range(n)]
    if strategy == "semantic":
        r = semantic(answers, threshold=threshold, prompt=prompt)
    else:
        r = majority(answers)
    r.details["samples"] = answers
    r.details["vote"] = r.strategy
    r.strategy = "self_consistency"
    return r


def consensus(
    answers: Sequence[str], strategy: str = "semantic", weights: Any = None, **options: Any
) -> ConsensusResult:
    """Dispatch to a strategy by name (``council`` and ``self_consistency`` take their
    callables in ``options``: ``prompt`` + ``judges`` (+ ``models``, ``chairman``), or
    ``sample`` + ``n``)."""
    strategy = check_strategy(strategy)
    if strategy == "majority":
        return majority(answers, weights)
    if strategy == "weighted":
        return weighted(answers, weights)
    if strategy == "semantic":
        return semantic(answers, weights, **options)
    if strategy == "council":
        return council(options.pop("prompt", ""), answers, **options)
    return self_consistency(**options)
