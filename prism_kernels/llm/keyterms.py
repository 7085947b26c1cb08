"""Key terms of an answer: the numbers and names it commits to.

Sentence embeddings weigh an answer's frame, not the one token that carries it: "Water boils at
100 degrees Celsius at sea level." and "... at 90 degrees ..." score 0.95 cosine with WordLlama,
while "At sea level, the boiling point of water is 100 °C." scores 0.29 against the first. What
tells a paraphrase from a different answer to a factual question is usually a number or a name.
:func:`fact_relations` compares those between every pair of answers, leaving out what the
question itself states:

- both answers state numbers: they agree when they state the same ones, conflict when they share
  none, and are left to the embeddings when they share some ("almost always 8 bits, but 6 to 9
  historically" against "8 bits");
- otherwise, both name something (capitalised words that are neither in the question nor common
  words such as "The", "It", "Mostly"): they conflict when neither's names occur anywhere in the
  other answer (so "Carbon dioxide." and "carbon dioxide (CO2)" do not conflict, "Jane Austen"
  and "Charlotte Brontë" do), and agree when they share a name that is not only a sentence's
  first word in both (a capitalised first word may be any word: "Use bcrypt." and "Use scrypt."
  do not agree on "Use");
- anything else is left to the embeddings.

Numbers are whole tokens: "SHA-256", "GPT-4" and "Argon2id" state no number.

:func:`prism_kernels.llm.consensus.semantic` raises the similarity of agreeing pairs and caps
that of conflicting ones before clustering. The rules are English-centred and lexical: numbers
written as words and synonyms of names are not recognised (such pairs stay with the embeddings).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

__all__ = ["AGREE", "CONFLICT", "KeyTerms", "fact_relations", "key_terms"]

AGREE = 1
CONFLICT = -1

_NUMBER = re.compile(r"(?<![\w.\-])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w\-]|\.\d|,\d{3})")
_WORD = re.compile(r"[^\W\d_]\w*(?:['’][^\W\d_]+)?")
_SENTENCE_END = re.compile(r"[.!?:;\n]")

# Words that open or fill sentences in capitalised form without naming anything.
_COMMON = frozenset(
    """
    a about according actually after all also although an and answer any approximately are
    around as at based basically because before both but by certainly clearly correct currently
    definitely during each either essentially every false first for from generally good great
    he hello her here here's hey hi his how however i i'd i'll i'm if in indeed is it it's its
    just let let's likely mainly many maybe more most mostly much my neither no not note ok okay
    on one only or our overall perhaps please primarily probably right roughly she simply since
    so some still sure surely that that's the their them then there there's these they this
    those thus to today true typically unlikely usually was we well what when where which while
    who why with yes you your
    """.split()
)


@dataclass(frozen=True)
class KeyTerms:
    """What one text states: ``numbers`` (canonical decimal strings), ``names`` (lower-cased
    capitalised words, common words left out), ``inner_names`` (those of ``names`` that occur
    somewhere other than first in a sentence) and ``words`` (every word, lower-cased)."""

    numbers: frozenset[str]
    names: frozenset[str]
    inner_names: frozenset[str]
    words: frozenset[str]


def _canonical_number(token: str) -> str:
    return f"{float(token.replace(',', '')):.12g}"


def _terms(text: str, asked: KeyTerms | None = None) -> KeyTerms:
    """The :class:`KeyTerms` of ``text``, less the numbers and words of ``asked``."""
    skip_words = asked.words if asked is not None else frozenset()
    skip_numbers = asked.numbers if asked is not None else frozenset()
    numbers = frozenset(_canonical_number(m) for m in _NUMBER.findall(text)) - skip_numbers
    names, inner, words = set(), set(), set()
    end = 0
    for m in _WORD.finditer(text):
        first = end == 0 or _SENTENCE_END.search(text, end, m.start()) is not None
        end = m.end()
        w = m.group()
        if w.endswith(("'s", "’s")):  # possessives: Japan's -> Japan
            w = w[:-2]
        low = w.lower()
        if low in skip_words:
            continue
        words.add(low)
        if w[0].isupper() and low not in _COMMON:
            names.add(low)
            if not first:
                inner.add(low)
    return KeyTerms(numbers, frozenset(names), frozenset(inner), frozenset(words))


def key_terms(text: str, prompt: str | None = None) -> tuple[frozenset[str], frozenset[str]]:
    """The numbers and names ``text`` states beyond the question.

    Parameters
    ----------
    text : str
        One answer (or prompt).
    prompt : str, optional
        The question: its words and numbers are not key terms of an answer.

    Returns
    -------
    numbers : frozenset of str
        Canonical decimal forms (``"1,000"`` and ``"1000.0"`` are both ``"1000"``).
    names : frozenset of str
        Lower-cased capitalised words that are neither in the prompt nor common words.
    """
    t = _terms(text, _terms(prompt) if prompt else None)
    return t.numbers, t.names


def _incidence(sets: Sequence[frozenset[str]], vocab: dict[str, int]) -> list[tuple[int, int]]:
    """``(row, column)`` of each term of each set (``vocab`` grows)."""
    return [(i, vocab.setdefault(term, len(vocab))) for i, s in enumerate(sets) for term in s]


def _matrix(cells: list[tuple[int, int]], n: int, width: int) -> sparse.csr_matrix:
    """The ``(n, width)`` 0/1 matrix with ones at ``cells``."""
    rows = [r for r, _ in cells]
    cols = [c for _, c in cells]
    data = np.ones(len(cells), dtype=np.float32)
    return sparse.csr_matrix((data, (rows, cols)), shape=(n, max(width, 1)))


def fact_relations(answers: Sequence[str], prompt: str | None = None) -> np.ndarray:
    """Pairwise verdicts on the answers' numbers and names (see the module docstring).

    Parameters
    ----------
    answers : sequence of str
        N answers to one question.
    prompt : str, optional
        The question.

    Returns
    -------
    ndarray of int8, shape (N, N)
        :data:`AGREE` (1), :data:`CONFLICT` (-1) or 0 (no verdict); symmetric, 0 on the diagonal.
    """
    n = len(answers)
    if n == 0:
        return np.zeros((0, 0), dtype=np.int8)
    asked = _terms(prompt) if prompt else None
    terms = [_terms(a, asked) for a in answers]
    numbers_vocab: dict[str, int] = {}
    num = _incidence([t.numbers for t in terms], numbers_vocab)
    num = _matrix(num, n, len(numbers_vocab))
    vocab: dict[str, int] = {}  # names and words share one: a name is looked up among words
    cells = [_incidence([getattr(t, f) for t in terms], vocab) for f in ("names", "inner_names")]
    cells.append(_incidence([t.words for t in terms], vocab))
    nam, inner, words = (_matrix(c, n, len(vocab)) for c in cells)

    has_num = np.asarray(num.sum(axis=1)).ravel() > 0
    has_nam = np.asarray(nam.sum(axis=1)).ravel() > 0
    common = (num @ num.T).toarray()
    counts = np.diag(common)
    shared_num = common > 0
    same_num = (common == counts[:, None]) & (common == counts[None, :])
    shared_nam = (nam @ nam.T).toarray() > 0
    shared_inner = (nam @ inner.T).toarray() > 0  # [i, j]: a name of i is an inner name of j
    named_in_other = (nam @ words.T).toarray() > 0  # [i, j]: a name of i is a word of j

    numbers_decide = has_num[:, None] & has_num[None, :]
    names_decide = ~numbers_decide & has_nam[:, None] & has_nam[None, :]
    agree = (numbers_decide & same_num) | (names_decide & (shared_inner | shared_inner.T))
    unrelated_names = ~shared_nam & ~named_in_other & ~named_in_other.T
    conflict = (numbers_decide & ~shared_num) | (names_decide & unrelated_names)
    out = np.where(agree, AGREE, np.where(conflict, CONFLICT, 0)).astype(np.int8)
    np.fill_diagonal(out, 0)
    return out
