"""Numbers and names of answers, and the pairwise fact check built on them (closed forms)."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels.llm import consensus as C
from prism_kernels.llm.keyterms import AGREE, CONFLICT, fact_relations, key_terms


def test_key_terms_numbers_canonical_and_names_beyond_the_question():
    nums, names = key_terms("It ended in 1945, with Japan's surrender.", "When did WW2 end?")
    assert nums == {"1945"} and names == {"japan"}
    assert key_terms("About 1,000 people.")[0] == key_terms("1000.0 people")[0] == {"1000"}
    assert key_terms("-40 degrees")[0] == {"-40"}
    assert key_terms("v2.5 and 3.25")[0] == {"3.25"}  # a version tag is not a number
    assert key_terms("SHA-256, GPT-4 and Argon2id")[0] == frozenset()  # nor parts of names
    assert key_terms("2+2 is 4", "What is 2+2?")[0] == {"4"}  # the question's numbers are not
    # sentence openers and the question's own words are not names; non-ASCII names are
    assert key_terms("The author is Charlotte Brontë.", "Who is the Author?")[1] == {
        "charlotte",
        "brontë",
    }
    assert key_terms("Mostly C, with some assembly.")[1] == {"c"}
    assert key_terms("") == (frozenset(), frozenset())


def test_fact_relations_closed_forms():
    q = "What is the boiling point of water at sea level in degrees Celsius?"
    answers = [
        "Water boils at 100 degrees Celsius at sea level.",
        "At sea level, the boiling point of water is 100 °C.",
        "Water boils at 90 degrees Celsius at sea level.",
        "It is hot.",
    ]
    r = fact_relations(answers, q)
    assert r.dtype == np.int8 and r.shape == (4, 4)
    np.testing.assert_array_equal(r, r.T)
    assert (np.diag(r) == 0).all()
    assert r[0, 1] == AGREE and r[0, 2] == CONFLICT and r[1, 2] == CONFLICT
    assert (r[3] == 0).all()  # no number, no name: left to the embeddings


def test_names_conflict_only_when_unrelated():
    q = "What gas do plants absorb from the air for photosynthesis?"
    r = fact_relations(
        ["Carbon dioxide.", "They take in carbon dioxide (CO2).", "Oxygen.", "Jane Austen"], q
    )
    assert r[0, 1] == 0  # "Carbon" reappears in the other answer: no conflict
    assert r[0, 2] == CONFLICT and r[1, 2] == CONFLICT
    r = fact_relations(["Jane Austen wrote it.", "It was written by Charlotte Brontë."])
    assert r[0, 1] == CONFLICT
    # numbers decide when both have them, even if names differ
    r = fact_relations(["World War II ended in 1945.", "In 1945, with Japan's surrender."])
    assert r[0, 1] == AGREE


def test_fact_relations_edge_cases():
    assert fact_relations([]).shape == (0, 0)
    np.testing.assert_array_equal(fact_relations(["Paris."]), [[0]])
    r = fact_relations(["It is Paris."] * 3)
    assert (r[~np.eye(3, dtype=bool)] == AGREE).all()
    # a name that only opens sentences is no evidence of agreement ("Use" is any word)
    assert fact_relations(["Use bcrypt.", "Use scrypt."])[0, 1] == 0
    # numbers in common but not the same ones: no verdict
    assert fact_relations(["8 bits.", "From 6 to 9 bits, today 8."])[0, 1] == 0


def test_semantic_applies_the_fact_check(xp):
    q = "What is the freezing point of water in Fahrenheit?"
    answers = [
        "Water freezes at 32 degrees Fahrenheit.",
        "The freezing point of water is 32 °F.",
        "32 degrees Fahrenheit.",
        "Water freezes at 0 degrees Fahrenheit.",
    ]
    r = C.semantic(answers, prompt=q, xp=xp)
    assert r.labels == [0, 0, 0, 1] and "32" in r.text
    assert r.details["facts"] == {"agree": 3, "conflict": 3}
    S = np.asarray(r.details["similarity"])
    t = r.details["threshold"]
    assert S[0, 3] <= t - (1 - t) / 2 + 1e-6 and S[0, 1] >= t + (1 - t) / 2 - 1e-6
    plain = C.semantic(answers, prompt=q, facts=False)
    assert plain.details["facts"] == {"agree": 0, "conflict": 0}
    assert plain.labels != r.labels  # the embeddings alone group 32 and 0 degrees


@pytest.mark.parametrize("n", [1000])
def test_fact_relations_large(n):
    answers = [f"Option {i % 50} is best." for i in range(n)]
    r = fact_relations(answers)
    same = np.equal.outer(np.arange(n) % 50, np.arange(n) % 50)
    np.fill_diagonal(same, False)
    assert (r[same] == AGREE).all() and (r[~same & ~np.eye(n, dtype=bool)] == CONFLICT).all()
