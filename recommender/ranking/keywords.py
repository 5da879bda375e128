"""Keyword evidence: TF-IDF cosine between two texts, with document frequencies kept by the catalog.

Dense embeddings know that "central bank" and "interest rates" belong together; keywords know that two stories
name the same people, places and numbers, which is what separates one real-world event from another of the same
kind (one celebrity's rehab from another's), and they work in any language the model was not trained on. The
ranking blends both (:func:`recommender.ranking.pipeline.blend_keywords`).

Weights match scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` -- the baseline ``recommender eval`` reports
-- so the evaluation's numbers carry over: tokens are runs of two or more word characters, lower-cased; a term's
weight is ``(1 + ln tf) * (ln((1 + n) / (1 + df)) + 1)``; vectors are L2-normalised.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from recommender.articles import Article

_TOKEN = re.compile(r"(?u)\b\w\w+\b")

#: A sparse vector: term -> weight.
TermVector = dict[str, float]


def tokenize(text: str) -> list[str]:
    """Lower-cased runs of two or more word characters (any script)."""
    return _TOKEN.findall(text.lower())


def term_counts(text: str) -> Counter[str]:
    return Counter(tokenize(text))


def idf(df: int, n_docs: int) -> float:
    """Smoothed inverse document frequency: rare terms weigh more; a term in every document still counts a little."""
    return math.log((1 + n_docs) / (1 + max(df, 0))) + 1.0


def weigh(counts: Mapping[str, int], doc_freq: Callable[[str], int], n_docs: int) -> TermVector:
    """The unit-length TF-IDF vector of one text's term counts (sublinear tf)."""
    vector = {t: (1.0 + math.log(c)) * idf(doc_freq(t), n_docs) for t, c in counts.items() if c > 0}
    norm = math.sqrt(sum(w * w for w in vector.values()))
    return {t: w / norm for t, w in vector.items()} if norm > 0 else {}


#: ``1 + ln(tf)`` for small term counts (the sublinear tf of :func:`weigh`), looked up instead of computed.
_SUBLINEAR = [0.0] + [1.0 + math.log(c) for c in range(1, 64)]


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Dot product of two unit-length sparse vectors."""
    if len(a) > len(b):
        a, b = b, a
    return sum(a[t] * b[t] for t in a.keys() & b.keys())  # set intersection in C; few shared terms to sum


def distinct_terms(texts: Iterable[str]) -> Counter[str]:
    """Document frequency contributed by ``texts``: each term counted once per text."""
    df: Counter[str] = Counter()
    for text in texts:
        df.update(set(tokenize(text)))
    return df


class DocFreqSource(Protocol):
    """What :class:`KeywordWeights` needs from a catalog (:class:`recommender.storage.catalog.Catalog` has it)."""

    def doc_freqs(self, terms: Iterable[str]) -> dict[str, int]: ...

    def count(self) -> int: ...

    def last_seq(self) -> int: ...


class KeywordWeights:
    """TF-IDF vectors against a catalog's document frequencies, cached until the catalog changes."""

    #: Article vectors kept in memory (by content hash); a miss only costs a tokenisation.
    CACHE_SIZE = 50_000

    def __init__(self, catalog: DocFreqSource) -> None:
        self.catalog = catalog
        self._seq: int | None = None
        self._checked = 0.0
        self._n_docs = 0
        #: per term: the one string object every cached vector uses as its key (a vector's keys are then shared,
        #: not one copy per article: about 8.5 KB per cached article instead of 17.5), and its idf for the current
        #: document frequencies
        self._idf: dict[str, tuple[str, float]] = {}
        self._vectors: dict[str, TermVector] = {}

    #: Recompute weights once this share of the archive has changed since they were computed. One story more
    #: or less moves an IDF by a hair; recomputing every cached vector after each publish cost 0.5 s per PUT.
    REFRESH_SHARE = 0.01
    #: ... and look at the catalog's change counter at most this often (seconds).
    CHECK_INTERVAL = 0.25

    def _current(self) -> None:
        now = time.monotonic()
        if self._seq is not None and now - self._checked < self.CHECK_INTERVAL:
            return
        self._checked = now
        seq = self.catalog.last_seq()
        if self._seq is None or seq < self._seq or seq - self._seq > max(1, self.REFRESH_SHARE * self._n_docs):
            self._seq = seq  # the archive changed enough: frequencies and weights with it
            self._n_docs = self.catalog.count()
            self._idf.clear()
            self._vectors.clear()

    def for_article(self, article: Article, content_hash: str) -> TermVector:
        """The article's vector, composing its text only on a cache miss (most calls are hits)."""
        self._current()
        cached = self._vectors.get(content_hash)
        return cached if cached is not None else self.vector(article.text, content_hash)

    def vector(self, text: str, cache_key: str | None = None) -> TermVector:
        """The unit TF-IDF vector of ``text``; ``cache_key`` (a content hash) keeps it for the next query."""
        self._current()
        if cache_key is not None and cache_key in self._vectors:
            return self._vectors[cache_key]
        counts = term_counts(text)
        idf_of = self._idf
        missing = [t for t in counts if t not in idf_of]
        if missing:
            found = self.catalog.doc_freqs(missing)
            n_docs = self._n_docs
            idf_of.update((t, (t, idf(found.get(t, 0), n_docs))) for t in missing)
        # weigh(), with each term's idf computed once per refresh rather than once per article
        raw = {}
        for t, c in counts.items():
            term, term_idf = idf_of[t]
            raw[term] = (_SUBLINEAR[c] if c < len(_SUBLINEAR) else 1.0 + math.log(c)) * term_idf
        norm = math.sqrt(sum(w * w for w in raw.values()))
        vector = {t: w / norm for t, w in raw.items()} if norm > 0 else {}
        if cache_key is not None:
            if len(self._vectors) >= self.CACHE_SIZE:
                self._vectors.clear()
            self._vectors[cache_key] = vector
        return vector
