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
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from recommender.storage.catalog import Catalog

log = logging.getLogger(__name__)

#: Runs of two or more word characters. The same tokens as scikit-learn's ``\b\w\w+\b``: a greedy run starts
#: where the scan meets the first word character and stops at the last, so both word boundaries hold anyway;
#: without the two assertions a text tokenises about a quarter faster.
_TOKEN = re.compile(r"(?u)\w\w+")
#: The same runs for a text that is all ASCII (most English news): ``\w`` of an ASCII string is ``[A-Za-z0-9_]``
#: either way, and the ASCII class is tested faster (about 15 % of a tokenisation).
_ASCII_TOKEN = re.compile(r"\w\w+", re.ASCII)

#: A sparse unit vector: term -> weight.
TermVector = dict[str, float]

#: Tokens in a typical news article: turns a word's frequency per token into a share of documents containing it.
DOC_TOKENS = 250


def tokenize(text: str) -> list[str]:
    """Lower-cased runs of two or more word characters (any script)."""
    lowered = text.lower()
    return (_ASCII_TOKEN if lowered.isascii() else _TOKEN).findall(lowered)


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
class Vocabulary:
    """Term ids for one :class:`KeywordModel`, with what is kept by them: the terms of texts by content hash and
    the idf of each term per language (an array by id; nan = not looked up yet). A :class:`Terms` or
    :class:`Weights` keeps the vocabulary its ids belong to, so the model may start a new one at any time."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []  # id -> term
        self.texts: OrderedDict[str, Terms] = OrderedDict()  # content hash -> terms (least recently used first)
        self.idf: dict[str | None, np.ndarray] = {}

    def cached(self, cache_key: str) -> Terms | None:
        """The terms of the text with this content hash, when they are cached."""
        hit = self.texts.get(cache_key)
        if hit is not None:
            try:
                self.texts.move_to_end(cache_key)
            except KeyError:  # evicted meanwhile by another thread
                pass
        return hit

    def ids_of(self, terms: Sequence[str]) -> np.ndarray:
        """The id of each of distinct ``terms`` (new terms get the next ids)."""
        ids, names = self.ids, self.names
        out = list(map(ids.get, terms))
        if None in out:
            for i, term in enumerate(terms):
                if out[i] is None:
                    out[i] = ids[term] = len(names)
                    names.append(term)
        return np.asarray(out, dtype=np.int32)


@dataclass(frozen=True, eq=False)
class Terms:
    """A text's distinct terms as ids of a :class:`Vocabulary`, in order of first occurrence, with their counts:
    what its weights are made of, whatever the snapshot (a few bytes a term, not a dict)."""

    vocabulary: Vocabulary
    ids: np.ndarray  # int32
    counts: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, eq=False)
class Weights:
    """A unit TF-IDF vector as term ids of a :class:`Vocabulary` and weights."""

    vocabulary: Vocabulary
    ids: np.ndarray  # int32, the text's distinct terms in order of first occurrence
    weights: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.ids)

    def as_dict(self) -> TermVector:
        names = self.vocabulary.names
        return dict(zip((names[i] for i in self.ids.tolist()), self.weights.tolist(), strict=True))


def cosines(query: Weights, ids: np.ndarray, weights: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Dot products of one unit vector with several of the same vocabulary (``ids`` and ``weights`` hold their
    entries one vector after another, ``lengths`` entries each), in one pass: each entry finds its term among
    the query's by a binary search, and the products are summed per vector."""
    out = np.zeros(len(lengths), dtype=np.float64)
    if len(query) == 0 or len(ids) == 0:
        return out
    order = np.argsort(query.ids, kind="stable")
    sorted_ids = query.ids[order]
    pos = np.searchsorted(sorted_ids, ids)
    np.minimum(pos, len(sorted_ids) - 1, out=pos)
    hit = np.flatnonzero(sorted_ids[pos] == ids)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    products = weights[hit] * query.weights[order][pos[hit]]
    return np.bincount(rows[hit], weights=products, minlength=len(lengths))


class KeywordModel:
    """Unit TF-IDF vectors against one catalog's keyword snapshot and the background list.

    ``prior_docs`` is the policy's ``keyword_prior_docs``. A text's terms are kept as ids and counts
    (:class:`Terms`), cached by content hash (a miss costs a tokenisation); they do not depend on the snapshot.
    Idfs are kept per language by term id. Call :meth:`reset` when the snapshot changes (every list recomputed).
    """

    #: Texts whose terms are cached: 1.8 KB a news article with the vocabulary (18 MB for the 10k bench archive,
    #: where dicts of weights took 207 MB), so a 100k archive fits.
    CACHE_SIZE = 200_000
    #: Above this many distinct terms a new vocabulary is started (free text can bring any word).
    VOCABULARY_LIMIT = 2_000_000

    def __init__(self, catalog: Catalog, prior_docs: float) -> None:
        self.catalog = catalog
        self.prior_docs = prior_docs
        self._lock = threading.RLock()
        self.vocabulary = Vocabulary()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.n_docs = snapshot_docs(self.catalog)  # per language ('' = unknown)
            self.vocabulary.idf.clear()

    # -- terms ------------------------------------------------------------------------------------------------
    def terms(self, text: str, cache_key: str | None = None, vocabulary: Vocabulary | None = None) -> Terms:
        """The distinct terms of ``text`` with their counts, as ids of ``vocabulary`` (the current one when
        None); ``cache_key`` (a content hash) keeps them."""
        if vocabulary is None:
            vocabulary = self._current()
        if cache_key is not None:
            hit = vocabulary.cached(cache_key)
            if hit is not None:
                return hit
        counts = term_counts(text)
        with self._lock:
            out = Terms(
                vocabulary,
                vocabulary.ids_of(list(counts)),
                np.fromiter(counts.values(), dtype=np.int32, count=len(counts)),
            )
            if cache_key is not None:
                vocabulary.texts[cache_key] = out
                while len(vocabulary.texts) > self.CACHE_SIZE:
                    vocabulary.texts.popitem(last=False)
        return out

    def _current(self) -> Vocabulary:
        if len(self.vocabulary.names) > self.VOCABULARY_LIMIT:
            with self._lock:
                if len(self.vocabulary.names) > self.VOCABULARY_LIMIT:
                    self.vocabulary = Vocabulary()
        return self.vocabulary

    # -- weights ----------------------------------------------------------------------------------------------
    def idfs(self, ids: np.ndarray, language: str | None, vocabulary: Vocabulary) -> np.ndarray:
        """The idf of each term id for a text in ``language`` (terms not looked up yet: one query for all)."""
        with self._lock:
            known = vocabulary.idf.get(language)
            size = len(vocabulary.names)
            if known is None or len(known) < size:
                grown = np.full(max(size, 2 * len(known)) if known is not None else size, np.nan)
                if known is not None:
                    grown[: len(known)] = known
                known = vocabulary.idf[language] = grown
            values = known[ids]
            missing_at = np.flatnonzero(np.isnan(values))
            if len(missing_at):
                missing_ids = np.unique(ids[missing_at])
                missing = [vocabulary.names[i] for i in missing_ids.tolist()]
                key = language or ""
                df = self.catalog.doc_freqs(missing, key)
                counts = np.fromiter((df.get(t, 0) for t in missing), dtype=np.float64, count=len(missing))
                known[missing_ids] = idf_for(counts, self.n_docs.get(key, 0), self.prior_docs, missing, language)
                values = known[ids]
        return values

    def weigh(
        self, items: Sequence[Terms], languages: Sequence[str | None], vocabulary: Vocabulary
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The unit TF-IDF vectors of several texts (terms of ``vocabulary``), each in its language: term ids,
        weights and each text's length, one text after another (:func:`weigh_rows`: a text gets the same
        weights alone or in a batch)."""
        lengths = np.fromiter((len(t) for t in items), dtype=np.int64, count=len(items))
        if not items:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float64), lengths
        ids = np.concatenate([t.ids for t in items])
        counts = np.concatenate([t.counts for t in items])
        distinct = list(dict.fromkeys(languages))
        if len(distinct) == 1:
            idfs = self.idfs(ids, distinct[0], vocabulary)
        else:
            codes = {language: i for i, language in enumerate(distinct)}
            entry_language = np.repeat(np.asarray([codes[x] for x in languages]), lengths)
            idfs = np.empty(len(ids), dtype=np.float64)
            for language, code in codes.items():
                mask = entry_language == code
                idfs[mask] = self.idfs(ids[mask], language, vocabulary)
        return ids, weigh_rows(lengths, counts, idfs), lengths

    def weights(self, text: str, language: str | None, cache_key: str | None = None) -> Weights:
        """The unit TF-IDF vector of ``text`` as term ids and weights; ``cache_key`` (a content hash) keeps its
        terms for the next call."""
        terms = self.terms(text, cache_key)
        ids, weights, _ = self.weigh([terms], [language], terms.vocabulary)
        return Weights(terms.vocabulary, ids, weights)

    def vector(self, text: str, language: str | None, cache_key: str | None = None) -> TermVector:
        """The unit TF-IDF vector of ``text`` as term -> weight."""
        return self.weights(text, language, cache_key).as_dict()


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
