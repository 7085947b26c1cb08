"""Consensus strategies: the labelled paraphrase set, references for clustering and voting."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.llm import consensus as C

ITEMS = json.loads((Path(__file__).parent / "paraphrases.json").read_text())["items"]


def _canon(labels):
    seen = {}
    return [seen.setdefault(x, len(seen)) for x in labels]


def _score(facts: bool) -> tuple[int, int, int, int]:
    exact = correct_winner = pairs_ok = pairs = 0
    for it in ITEMS:
        answers = [a["text"] for a in it["answers"]]
        truth = [a["label"] for a in it["answers"]]
        r = C.semantic(answers, prompt=it["prompt"], facts=facts)
        exact += adjusted_rand_score(truth, r.labels) == 1.0
        lab = np.array(r.labels)
        members = np.flatnonzero(lab == lab[r.index])
        correct_winner += truth[r.index] == "A" and all(truth[m] == "A" for m in members)
        t = np.array(truth)
        iu = np.triu_indices(len(truth), 1)
        same_t = (t[:, None] == t[None, :])[iu]
        same_p = (lab[:, None] == lab[None, :])[iu]
        pairs_ok += int((same_t == same_p).sum())
        pairs += len(iu[0])
    return exact, correct_winner, pairs_ok, pairs


def test_paraphrase_set_accuracy():
    """Every prompt of the labelled set partitioned exactly. The embeddings alone get 12 of 16
    (they miss 100 against 90 degrees, Pacific against Atlantic, C against Java): the fact check
    on numbers and names is what closes the gap, so both figures are asserted."""
    n = len(ITEMS)
    exact, correct_winner, pairs_ok, pairs = _score(facts=True)
    print(
        f"exact partitions {exact}/{n}, pure winner {correct_winner}/{n}, pairs {pairs_ok}/{pairs}"
    )
    assert n >= 16
    assert exact == n and correct_winner == n and pairs_ok == pairs
    assert _score(facts=False)[0] <= n - 3


def test_paraphrases_grouped_and_different_answer_separated():
    it = ITEMS[0]  # Paris (4 phrasings) vs Lyon (2)
    answers = [a["text"] for a in it["answers"]]
    r = C.semantic(answers, prompt=it["prompt"])
    assert r.labels == [0, 0, 0, 0, 1, 1]
    assert "Paris" in r.text
    assert r.agreement == pytest.approx(4 / 6)
    assert r.entropy == pytest.approx(-(4 / 6) * math.log(4 / 6) - (2 / 6) * math.log(2 / 6))
    assert r.reached(0.6) and not r.reached(0.7)


def test_semantic_backends_agree(xp):
    for it in ITEMS[:6]:
        answers = [a["text"] for a in it["answers"]]
        a = C.semantic(answers, prompt=it["prompt"])
        b = C.semantic(answers, prompt=it["prompt"], xp=xp)
        assert a.labels == b.labels and a.index == b.index
        np.testing.assert_allclose(a.details["similarity"], b.details["similarity"], atol=1e-5)


def test_cluster_matches_scipy_and_sklearn_single_linkage(xp, to_xp, rng):
    for n, d in [(30, 3), (120, 8), (200, 16)]:
        X = rng.normal(size=(n, d))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        S = X @ X.T
        for t in (0.3, 0.6, 0.9):
            ours = C.cluster(to_xp(S), t, linkage="single")
            _, cc = connected_components(S >= t, directed=False)
            assert ours == _canon(cc.tolist())
            sk = AgglomerativeClustering(
                n_clusters=None, metric="precomputed", linkage="single", distance_threshold=1 - t
            ).fit_predict(np.clip(1 - S, 0, None))
            assert adjusted_rand_score(sk, ours) == pytest.approx(1.0)


def test_average_linkage_matches_sklearn(xp, to_xp, rng):
    for n, d in [(2, 3), (40, 3), (150, 8), (300, 16)]:
        X = rng.normal(size=(n, d))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        S = X @ X.T
        for t in (0.0, 0.3, 0.6, 0.9):
            ours = C.cluster(to_xp(S), t)
            sk = AgglomerativeClustering(
                n_clusters=None, metric="precomputed", linkage="average", distance_threshold=1 - t
            ).fit_predict(np.clip(1 - S, 0, None))
            assert ours == _canon(sk.tolist())
    assert C.cluster(to_xp(np.ones((1, 1))), 0.5) == [0]
    # ties: all equal similarities still terminate, in one cluster
    assert C.cluster(to_xp(np.full((6, 6), 0.7)), 0.5) == [0] * 6


def test_connected_labels_on_a_long_chain(xp, to_xp):
    n = 300
    A = np.zeros((n, n), dtype=bool)
    perm = np.random.default_rng(3).permutation(n)
    A[perm[:-1], perm[1:]] = True
    A |= A.T
    lab = to_numpy(C.connected_labels(to_xp(A)))
    assert np.all(lab == 0)
    assert C.cluster(to_xp(np.eye(4)), 0.5) == [0, 1, 2, 3]


def test_semantic_with_given_embeddings_medoid_and_weights(xp, to_xp):
    # three near-identical rows, two near-identical rows of another direction
    e1, e2 = np.eye(4)[0], np.eye(4)[1]
    rows = np.array([e1, e1 + [0, 0, 0.1, 0], e1 + [0, 0, 0, 0.1], e2, e2 + [0, 0, 0.05, 0]])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    answers = ["a1", "a2", "a3", "b1", "b2"]
    r = C.semantic(answers, embeddings=to_xp(rows), threshold=0.9)
    assert r.labels == [0, 0, 0, 1, 1]
    S = rows @ rows.T
    assert r.index == int(np.argmax(S[:3, :3].sum(axis=1)))  # brute-force medoid
    w = np.array([1.0, 1.0, 1.0, 5.0, 5.0])
    r = C.semantic(answers, w, embeddings=to_xp(rows), threshold=0.9)
    assert r.labels == [0, 0, 0, 1, 1] and r.index in (3, 4)
    assert r.agreement == pytest.approx(10 / 13)
    p = np.array([3, 10]) / 13
    assert r.entropy == pytest.approx(float(-(p * np.log(p)).sum()))


def test_identical_texts_always_join():
    # an empty answer embeds to zero; identical normalised texts still form one cluster
    r = C.semantic(["", "", "Paris"], threshold=0.99)
    assert r.labels == [0, 0, 1] and r.agreement == pytest.approx(2 / 3)


def test_majority_against_counter(rng):
    pool = ["Paris", "paris.", "  PARIS ", "Lyon", "lyon!", "Marseille"]
    for _ in range(20):
        answers = list(rng.choice(pool, size=rng.integers(1, 15)))
        r = C.majority(answers)
        counts = Counter(C.normalize_text(a) for a in answers)
        top = max(counts.values())
        assert C.normalize_text(r.text) in {k for k, v in counts.items() if v == top}
        assert r.agreement == pytest.approx(top / len(answers))
        p = np.array(list(counts.values())) / len(answers)
        assert r.entropy == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-12)
    assert C.majority(["b", "a", "a", "b"]).text == "b"  # tie: the group seen first


def test_weighted_against_manual_sum(rng):
    answers = ["yes", "no", "Yes.", "no", "maybe"]
    w = np.array([0.2, 0.5, 0.2, 0.4, 0.3])
    r = C.weighted(answers, w)
    assert r.strategy == "weighted" and C.normalize_text(r.text) == "no"
    assert r.agreement == pytest.approx(0.9 / 1.6)
    assert r.group_weights == pytest.approx([0.4, 0.9, 0.3])
    with pytest.raises(InvalidInput) as e:
        C.weighted(answers, None)
    assert e.value.field == "weights"


def test_one_answer():
    for fn in (C.majority, C.semantic):
        r = fn(["Only one."])
        assert r.agreement == 1.0 and r.entropy == 0.0 and r.labels == [0] and r.index == 0


def test_borda_closed_form():
    # 3 judges over 3 candidates, full rankings: points 2, 1, 0
    pts = C.borda([[0, 1, 2], [1, 0, 2], [0, 2, 1]], 3)
    assert pts.tolist() == [5.0, 3.0, 1.0]
    # self-exclusion: judge 0 owns candidate 0, its ranking scores among the two others
    pts = C.borda([[0, 1, 2]], 3, exclude=[0])
    assert pts.tolist() == [0.0, 1.0, 0.0]
    # partial and repeated entries
    assert C.borda([[2, 2, 9]], 3).tolist() == [0.0, 0.0, 2.0]


def _judge_preferring(word):
    """A judge that ranks responses by whether they contain ``word``, then by length."""

    def judge(text):
        blocks = re.findall(r"Response ([A-Z]+):\n(.*?)\n\n", text, flags=re.S)
        scored = [(word not in body, len(body), label) for label, body in blocks]
        ranked = [lab for *_, lab in sorted(scored)]
        return "My reasoning...\nFINAL RANKING:\n" + "\n".join(f"Response {x}" for x in ranked)

    return judge


def test_council_anonymised_borda_and_chairman():
    answers = ["Paris is the capital.", "Lyon.", "Paris, on the Seine, is the capital of France."]
    models = ["m1", "m2", "m3"]
    seen = []

    def spy(word):
        j = _judge_preferring(word)

        def f(text):
            seen.append(text)
            return j(text)

        return f

    briefs = []
    r = C.council(
        "What is the capital of France?",
        answers,
        {"m1": spy("Paris"), "m2": spy("Lyon"), "m3": spy("Paris")},
        models=models,
        chairman=lambda text: briefs.append(text) or "Paris.",
        seed=1,
    )
    for text in seen:  # anonymised: no model name reaches a judge
        assert not any(m in text for m in models)
        assert all(a in text for a in answers)
    assert r.text == "Paris." and r.details["synthesised"]
    # each judge excluded its own answer; compute the Borda points by hand
    # m1 (own 0) ranks 2 over 1 -> 2:1; m2 (own 1) ranks 0 vs 2: Lyon absent, shorter first -> 0:1
    # m3 (own 2) ranks 0 over 1 -> 0:1
    assert r.details["borda"] == [2.0, 0.0, 1.0]
    assert r.index == 0 and r.agreement == pytest.approx(2 / 3)
    assert "Paris is the capital." in briefs[0].split("\n")[3]
    r2 = C.council("q", answers, {"judge": _judge_preferring("Lyon")})
    assert r2.text == "Lyon." and not r2.details["synthesised"]


def test_parse_ranking_ignores_noise():
    labels = ["A", "B", "C"]
    assert C.parse_ranking(
        "Response B is good. FINAL RANKING: Response C, Response A, Response C, Response Z", labels
    ) == ["C", "A"]
    assert C.anonymise(28)[-3:] == ["Z", "AA", "AB"]


def test_self_consistency():
    samples = ["The answer is 4.", "4", "It is 4.", "The answer is 5."]
    r = C.self_consistency(lambda i: samples[i], 4, prompt="What is 2+2?", strategy="majority")
    assert r.strategy == "self_consistency" and r.details["samples"] == samples
    r = C.self_consistency(lambda i: ["Paris.", "paris", "Lyon"][i], 3)
    assert C.normalize_text(r.text) == "paris" and r.agreement == pytest.approx(2 / 3)
    with pytest.raises(InvalidInput) as e:
        C.self_consistency(lambda i: "x", 0)
    assert e.value.field == "samples"


@pytest.mark.parametrize("name", ["quantum", "thermodynamic", "", None, "Majority"])
def test_unknown_strategy_lists_the_strategies(name):
    with pytest.raises(InvalidInput) as e:
        C.consensus(["a"], name)
    assert e.value.field == "strategy"
    for s in C.STRATEGIES:
        assert s in e.value.message


def test_dispatch():
    assert C.consensus(["a", "a", "b"], "majority").text == "a"
    assert C.consensus(["a", "b"], "weighted", [1, 3]).text == "b"
    assert C.consensus(["Paris.", "Paris", "Lyon"], "semantic").agreement == pytest.approx(2 / 3)
    r = C.consensus(["x", "y"], "council", prompt="q", judges={"j": _judge_preferring("y")})
    assert r.text == "y"
    r = C.consensus([], "self_consistency", sample=lambda i: "z", n=2)
    assert r.text == "z"


def test_bad_input(to_xp):
    with pytest.raises(InvalidInput) as e:
        C.majority([])
    assert e.value.field == "answers"
    with pytest.raises(InvalidInput) as e:
        C.majority("one string")
    assert e.value.field == "answers"
    with pytest.raises(InvalidInput) as e:
        C.semantic(["a", None])
    assert e.value.field == "answers.1"
    for w in ([1.0], [1.0, float("nan")], [1.0, -1.0], [0.0, 0.0]):
        with pytest.raises(InvalidInput) as e:
            C.majority(["a", "b"], w)
        assert e.value.field == "weights"
    with pytest.raises(InvalidInput) as e:
        C.semantic(["a", "b"], threshold=1.5)
    assert e.value.field == "threshold"
    with pytest.raises(InvalidInput) as e:
        C.semantic(["a", "b"], embeddings=to_xp(np.ones((3, 4))))
    assert e.value.field == "embeddings"
    with pytest.raises(InvalidInput) as e:
        C.cluster(to_xp(np.array([[1.0, np.nan], [np.nan, 1.0]])))
    assert e.value.field == "sim"
    with pytest.raises(InvalidInput) as e:
        C.cluster(to_xp(np.eye(2)), 0.5, linkage="ward")
    assert e.value.field == "linkage"
    with pytest.raises(InvalidInput) as e:
        C.cluster(to_xp(np.ones((2, 3))))
    assert e.value.field == "sim"
    with pytest.raises(InvalidInput) as e:
        C.council("q", ["only"], {"j": lambda t: ""})
    assert e.value.field == "answers"
    with pytest.raises(InvalidInput) as e:
        C.council("q", ["a", "b"], {})
    assert e.value.field == "judges"
    with pytest.raises(InvalidInput) as e:
        C.council("q", ["a", "b"], {"j": lambda t: 3})
    assert e.value.field == "judges.j"
