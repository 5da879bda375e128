"""Keyword evidence: TF-IDF vectors whose weights are sane from the first article.

Dense embeddings know that "central bank" and "interest rates" belong together; keywords know that two stories
name the same people, places and numbers, which is what separates one real-world event from another of the same
kind, and they work in languages the model was not trained on. The pipeline blends both
(:func:`recommender.ranking.pipeline.scores`).

One definition of a term's weight, used by the batch precompute and by every live ranking alike:

- tokens are runs of two or more word characters, lower-cased (any script);
- a term's weight in a text is ``(1 + ln tf) * idf``, and a text's vector has unit length (:func:`weigh_rows`);
- ``idf = ln((1 + n + M) / (1 + df + M * b)) + 1`` (:func:`idf`), where ``df`` of ``n`` archived articles
  contain the term and ``b`` is the share of ordinary documents in the article's language that contain it,
  from a background word-frequency list (wordfreq). ``M`` (the policy's ``keyword_prior_docs``) is how many
  documents the background counts for: in a new or small archive it decides (a shared "the" or "said" never
  looks significant), in a large one the archive's own counts do. With ``M = 0`` this is scikit-learn's
  smoothed idf (``TfidfVectorizer(sublinear_tf=True)``), the baseline ``recommender eval`` reports.

The archive's counts are a snapshot (the catalog's ``terms`` table, with ``meta.terms_docs``), re-taken whenever
every list is recomputed: between two full recomputes a term's weight never moves, so a stored list and a
fresh ranking of the same catalog always agree. Counts are kept per language: an article is weighed against the
articles in its own language, so the French half of a bilingual archive weighs its words exactly as a French
archive alone would.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from recommender.storage.catalog import Catalog

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"(?u)\b\w\w+\b")

#: A sparse unit vector: term -> weight.
TermVector = dict[str, float]

#: Tokens in a typical news article: turns a word's frequency per token into a share of documents containing it.
DOC_TOKENS = 250


def tokenize(text: str) -> list[str]:
    """Lower-cased runs of two or more word characters (any script)."""
    return _TOKEN.findall(text.lower())


def term_counts(text: str) -> Counter[str]:
    """Each distinct term of ``text`` with its count, in order of first occurrence."""
    return Counter(tokenize(text))


def idf(
    df: np.ndarray | float, n_docs: int, prior_docs: float = 0.0, background: np.ndarray | float = 0.0
) -> np.ndarray:
    """Smoothed inverse document frequency, the archive's counts blended with a background share (module doc)."""
    df = np.maximum(np.asarray(df, dtype=np.float64), 0.0)
    return np.log((1.0 + n_docs + prior_docs) / (1.0 + df + prior_docs * np.asarray(background))) + 1.0


def weigh_rows(lengths: np.ndarray, counts: np.ndarray, idfs: np.ndarray) -> np.ndarray:
    """Unit TF-IDF weights of several texts at once: ``counts`` and ``idfs`` hold each text's distinct terms
    one text after another (``lengths`` terms each). Each row's norm is summed sequentially in its own term
    order, so the same text gets bit-identical weights wherever it is weighed (alone or in a batch of a
    million)."""
    weights = np.log(counts.astype(np.float64))
    weights += 1.0
    weights *= idfs
    rows = np.repeat(np.arange(len(lengths)), lengths)
    norms = np.sqrt(np.bincount(rows, weights=weights * weights, minlength=len(lengths)))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    weights *= np.repeat(scale, lengths)
    return weights


def cosine(a: TermVector, b: TermVector) -> float:
    """Dot product of two unit-length sparse vectors."""
    if len(a) > len(b):
        a, b = b, a
    return sum(a[t] * b[t] for t in a.keys() & b.keys())  # set intersection in C; few shared terms to sum


def shared_terms(a: TermVector, b: TermVector, n: int = 3) -> list[str]:
    """The ``n`` terms that contribute most to the cosine of ``a`` and ``b`` (for "why this?")."""
    shared = sorted(a.keys() & b.keys(), key=lambda t: (-a[t] * b[t], t))
    return shared[:n]


# -- the background list ---------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _frequencies(language: str) -> dict[str, float] | None:
    """wordfreq's word list for a language (None when it has none, or wordfreq is not installed)."""
    try:
        import wordfreq
    except ImportError:  # pragma: no cover - a core dependency
        return None
    if language not in wordfreq.available_languages("best"):
        return None
    return wordfreq.get_frequency_dict(language, "best")


def background_share(terms: Sequence[str], language: str | None) -> np.ndarray | None:
    """The share of ordinary documents in ``language`` that contain each term (0 for a word the list lacks):
    ``1 - (1 - f) ** DOC_TOKENS`` for a word of frequency ``f``. None when the language is unknown or has no
    word list (the archive's own counts alone then weigh its terms)."""
    freqs = _frequencies(primary_language(language)) if language else None
    if freqs is None:
        return None
    f = np.fromiter((freqs.get(t, 0.0) for t in terms), dtype=np.float64, count=len(terms))
    return -np.expm1(DOC_TOKENS * np.log1p(-np.minimum(f, 0.999999)))


def idf_for(df: np.ndarray, n_docs: int, prior_docs: float, terms: Sequence[str], language: str | None) -> np.ndarray:
    """:func:`idf` of ``terms`` (with archive counts ``df``) for a text in ``language``: the background counts
    for ``prior_docs`` documents where the language has a word list, nothing where it has none."""
    background = background_share(terms, language) if prior_docs > 0 else None
    if background is None:
        return idf(df, n_docs)
    return idf(df, n_docs, prior_docs, background)


def primary_language(language: str) -> str:
    """``en`` for ``en-GB``, ``EN`` or ``en_US``."""
    return re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]


# -- weights against the catalog's snapshot ---------------------------------------------------------------------
class KeywordModel:
    """Unit TF-IDF vectors against one catalog's keyword snapshot and the background list.

    ``prior_docs`` is the policy's ``keyword_prior_docs``. Vectors are cached by content hash and language
    (a miss costs a tokenisation); idfs by term and language. Call :meth:`reset` when the snapshot changes
    (every list recomputed).
    """

    CACHE_SIZE = 50_000

    def __init__(self, catalog: Catalog, prior_docs: float) -> None:
        self.catalog = catalog
        self.prior_docs = prior_docs
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.n_docs = snapshot_docs(self.catalog)  # per language ('' = unknown)
            self._idf: dict[tuple[str | None, str], float] = {}
            self._vectors: OrderedDict[tuple[str, str | None], TermVector] = OrderedDict()

    def idfs(self, terms: Sequence[str], language: str | None) -> np.ndarray:
        """The idf of each term for a text in ``language``."""
        known = self._idf
        missing = [t for t in terms if (language, t) not in known]
        if missing:
            key = language or ""
            df = self.catalog.doc_freqs(missing, key)
            counts = np.fromiter((df.get(t, 0) for t in missing), dtype=np.float64, count=len(missing))
            values = idf_for(counts, self.n_docs.get(key, 0), self.prior_docs, missing, language)
            if len(known) > 20 * self.CACHE_SIZE:
                known.clear()
            known.update(((language, t), float(v)) for t, v in zip(missing, values, strict=True))
        return np.fromiter((known[(language, t)] for t in terms), dtype=np.float64, count=len(terms))

    def vector(self, text: str, language: str | None, cache_key: str | None = None) -> TermVector:
        """The unit TF-IDF vector of ``text``; ``cache_key`` (a content hash) keeps it for the next call."""
        key = (cache_key, language) if cache_key is not None else None
        if key is not None:
            hit = self._vectors.get(key)
            if hit is not None:
                return hit
        counts = term_counts(text)
        terms = list(counts)
        weights = weigh_rows(
            np.array([len(terms)]),
            np.fromiter(counts.values(), dtype=np.int64, count=len(terms)),
            self.idfs(terms, language),
        )
        vector = dict(zip(terms, weights.tolist(), strict=True))
        if key is not None:
            with self._lock:
                self._vectors[key] = vector
                while len(self._vectors) > self.CACHE_SIZE:
                    self._vectors.popitem(last=False)
        return vector


def snapshot_docs(catalog: Catalog) -> dict[str, int]:
    """How many articles of each language (``''`` = unknown) the catalog's keyword snapshot counted."""
    value = catalog.get_meta("terms_docs")
    return {str(k): int(v) for k, v in json.loads(value).items()} if value else {}


def write_snapshot(catalog: Catalog, vocabulary: Sequence[str], counts: Mapping[str, tuple[int, np.ndarray]]) -> None:
    """Replace the catalog's keyword snapshot (inside the caller's transaction): for each language (``''`` =
    unknown), how many articles there are and how many contain each term of ``vocabulary``."""
    conn = catalog.conn
    conn.execute("DELETE FROM terms")
    for language, (_, df) in counts.items():
        columns = np.flatnonzero(df)
        rows = ((language, vocabulary[c], int(df[c])) for c in columns.tolist())
        conn.executemany("INSERT INTO terms(language, term, df) VALUES (?, ?, ?)", rows)
    catalog.set_meta("terms_docs", json.dumps({language: n for language, (n, _) in counts.items()}))
    log.info("keyword snapshot: %s", ", ".join(f"{n} articles in {lang or '?'}" for lang, (n, _) in counts.items()))
