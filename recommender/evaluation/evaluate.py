"""Offline evaluation on labelled news sets: how good are the "Also Read" lists, next to a keyword baseline.

``evaluate_file`` builds a throwaway index for a labelled JSONL file, asks the library for every article's list
(the full ranking pipeline, exactly what a site gets), and scores the lists; a TF-IDF cosine baseline (what
keyword "More Like This" plugins do) is computed in the same run on the same articles.

Definitions (one place, so every report means the same):

- *relevant*: same ``label`` value (``event`` or ``topic``) as the query article;
- *gain* (nDCG): 2 same label; with ``label="event"``, 1 for same ``topic`` but another event; 0 otherwise;
- ``p_at_5``: relevant share of the first 5 links (a short list counts its empty slots as misses);
- ``mrr``: mean reciprocal rank of the first relevant link within :data:`MRR_DEPTH` links;
- ``ndcg_at_5``: DCG of the first 5 gains (linear gain, log2 discount) over the best possible 5 from the archive,
  copies of the query excluded from that ideal since they are never a valid suggestion;
- ``copy_rate``: share of lists whose first 5 links show a *copy* of the query story or two copies of one
  story, where a copy is an article with the same normalised text (:attr:`Article.copy_key`: case-, accent-
  and punctuation-insensitive identity of title + body);
- ``coverage``: share of the archive that appears in at least one list's first 5 links.

The Lee set (50 articles, human similarity for all 1,225 pairs) is scored by Pearson and Spearman correlation
of each pair's similarity with the mean human rating (:func:`evaluate_lee`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from recommender.articles import Article
from recommender.embedding import DEFAULT_BACKEND, DEFAULT_MODEL, Embedder, load_embedder
from recommender.embedding.base import default_backend
from recommender.errors import InvalidArticle, RecommenderError
from recommender.evaluation.metrics import (  # noqa: F401 - re-exported: the metrics are part of this module's interface
    MRR_DEPTH,
    K,
    coverage,
    dcg,
    ndcg_at,
    pearson,
    precision_at,
    reciprocal_rank,
    shows_copy,
    spearman,
)
from recommender.ranking.policy import RankingPolicy
from recommender.recommender import Recommender
from recommender.writer import build_index

log = logging.getLogger(__name__)

LABELS = ("event", "topic")


# -- a labelled set -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scores:
    """The metrics of one system on one set (see the module docstring for definitions)."""

    p_at_5: float
    mrr: float
    ndcg_at_5: float
    copy_rate: float
    coverage: float

    def to_dict(self) -> dict[str, float]:
        return {
            "p_at_5": round(self.p_at_5, 4),
            "mrr": round(self.mrr, 4),
            "ndcg_at_5": round(self.ndcg_at_5, 4),
            "copy_rate": round(self.copy_rate, 4),
            "coverage": round(self.coverage, 4),
        }


class LabelledSet:
    """Articles with evaluation labels; knows each pair's gain and each query's ideal gains."""

    def __init__(self, articles: Sequence[Article], label: str) -> None:
        if label not in LABELS:
            raise RecommenderError(f"unknown label {label!r} (use one of: {', '.join(LABELS)})")
        self.articles = list(articles)
        self.label = label
        self.position = {a.id: n for n, a in enumerate(self.articles)}
        self.labels = self._codes(label)
        self.topics = self._codes("topic")
        self.copy_keys = [a.copy_key for a in self.articles]
        codes: dict[str, int] = {}
        self._copy_codes = np.asarray([codes.setdefault(k, len(codes)) for k in self.copy_keys], dtype=np.int64)
        if not (self.labels >= 0).any():
            raise RecommenderError(f"no article has a {label!r} label")

    def _codes(self, field: str) -> np.ndarray:
        """Label values as integers; a missing label gets its own negative code so it never matches."""
        codes: dict[str, int] = {}
        out = np.empty(len(self.articles), dtype=np.int64)
        for n, article in enumerate(self.articles):
            value = article.metadata.get(field)
            out[n] = codes.setdefault(str(value), len(codes)) if value not in (None, "") else -1 - n
        return out

    @property
    def query_ids(self) -> list[str]:
        """Articles that have the label (the others are candidates only)."""
        return [a.id for n, a in enumerate(self.articles) if self.labels[n] >= 0]

    def gains(self, query_id: str) -> np.ndarray:
        """Gain of every archive article for ``query_id`` (0 for itself)."""
        q = self.position[query_id]
        same = self.labels == self.labels[q]
        out = np.where(same, 2.0, 0.0)
        if self.label == "event":
            out = np.where(~same & (self.topics == self.topics[q]), 1.0, out)
        out[q] = 0.0
        return out

    def score(self, lists: Mapping[str, Sequence[str]]) -> Scores:
        """Metrics of ``query id -> ranked suggestion ids`` over every labelled query."""
        queries = [q for q in self.query_ids if q in lists]
        if not queries:
            raise RecommenderError("no labelled article has a list to score")
        p = mrr = ndcg = copies = 0.0
        for q in queries:
            ids = list(lists[q])
            gains = self.gains(q)
            shown = [gains[self.position[i]] for i in ids]
            relevant = [g >= 2.0 for g in shown]
            ideal = np.where(self._copy_codes == self._copy_codes[self.position[q]], 0.0, gains)
            query_copy = self.copy_keys[self.position[q]]
            p += precision_at(relevant)
            mrr += reciprocal_rank(relevant)
            ndcg += ndcg_at([float(g) for g in shown], ideal.tolist())
            copies += float(shows_copy(query_copy, [self.copy_keys[self.position[i]] for i in ids[:K]]))
        n = len(queries)
        return Scores(p / n, mrr / n, ndcg / n, copies / n, coverage((lists[q] for q in queries), len(self.articles)))


def load_labelled(path: Path | str) -> list[Article]:
    """Every valid article of a JSONL/JSON/CSV file (invalid ones are logged and left out)."""
    from recommender.ingest.sources import Record
    from recommender.writer import read_batch

    articles: list[Article] = []
    for item in read_batch([Path(path)]):
        if isinstance(item, InvalidArticle):
            log.warning("left out: %s", item)
        elif isinstance(item, Record):
            articles.append(item.article)
    if not articles:
        raise RecommenderError(f"{path}: no valid article")
    return articles


def guess_label(articles: Sequence[Article]) -> str:
    """``event`` when the set has event labels, else ``topic``."""
    for label in LABELS:
        if any(a.metadata.get(label) not in (None, "") for a in articles):
            return label
    raise RecommenderError("the file has neither 'event' nor 'topic' labels")


# -- the systems ----------------------------------------------------------------------------------------------
def tfidf_matrix(texts: Sequence[str], fit_texts: Sequence[str] | None = None) -> Any:
    """L2-normalised TF-IDF rows (sublinear tf, no stop-word list so any language works)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, dtype=np.float32)
    vectorizer.fit(fit_texts if fit_texts is not None else texts)
    return vectorizer.transform(texts)


def tfidf_lists(articles: Sequence[Article], depth: int = MRR_DEPTH) -> dict[str, list[str]]:
    """The keyword baseline: each article's ``depth`` nearest others by TF-IDF cosine, itself excluded.

    Nothing else is done to the list -- no copy handling -- which is what a More-Like-This plugin shows.
    """
    matrix = tfidf_matrix([a.text for a in articles])
    ids = [a.id for a in articles]
    out: dict[str, list[str]] = {}
    for start in range(0, len(articles), 512):
        block = (matrix[start : start + 512] @ matrix.T).toarray()
        for row, sims in enumerate(block):
            me = start + row
            sims[me] = -np.inf
            nearest = np.argpartition(-sims, min(depth, len(sims) - 1))[: depth + 1]
            best = sorted((int(t) for t in nearest if t != me), key=lambda t: (-sims[t], t))[:depth]
            out[ids[me]] = [ids[t] for t in best]
    return out


def cached_embedder(model: str, cache_dir: Path | None = None, backend: str = DEFAULT_BACKEND) -> Embedder:
    """The model behind an on-disk cache of its vectors (see :mod:`recommender.embedding.cache`)."""
    from recommender.embedding.cache import CachingEmbedder

    return CachingEmbedder(model, lambda: load_embedder(model, backend), cache_dir, backend=backend)


def index_lists(
    index_dir: Path | str,
    ids: Sequence[str],
    *,
    embedder: Embedder | None = None,
    depth: int = MRR_DEPTH,
) -> dict[str, list[str]]:
    """Each id's list from :meth:`Recommender.related` on an existing index: what a site shows."""
    with Recommender.open(index_dir, embedder=embedder) as rec:
        return {i: rec.related(i, depth).ids for i in ids}


def recommender_lists(
    path: Path | str,
    ids: Sequence[str],
    *,
    embedder: Embedder,
    depth: int = MRR_DEPTH,
    policy: RankingPolicy | None = None,
) -> dict[str, list[str]]:
    """Build a throwaway index of ``path`` with ``policy`` (None: the defaults) and return each id's list (see
    :func:`index_lists`)."""
    with tempfile.TemporaryDirectory(prefix="recommender-eval-") as tmp:
        index_dir = Path(tmp) / "index"
        build_index(
            [Path(path)],
            index_dir,
            model=embedder.name,
            backend=embedder.backend,
            embedder=embedder,
            policy=policy,
        )
        return index_lists(index_dir, ids, embedder=embedder, depth=depth)


@dataclass(frozen=True)
class EvalReport:
    """Both systems' scores on one labelled file; on a dated set also the same ranking with time off."""

    label: str
    articles: int
    recommender: Scores
    tfidf: Scores
    model: str
    backend: str
    seconds: float
    #: the same policy with time proximity off (None: the set has no dates, or the policy no time proximity)
    without_time: Scores | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``recommender eval --json`` object."""
        out: dict[str, Any] = {
            "label": self.label,
            "articles": self.articles,
            "recommender": self.recommender.to_dict(),
            "tfidf": self.tfidf.to_dict(),
        }
        if self.without_time is not None:
            out["without_time"] = self.without_time.to_dict()
        return out


def evaluate_file(
    path: Path | str,
    *,
    label: str | None = None,
    model: str | None = None,
    backend: str | None = None,
    embedder: Embedder | None = None,
    policy: RankingPolicy | None = None,
    cache_dir: Path | None = None,
) -> EvalReport:
    """Score the ranking (``policy``, else the defaults) and the TF-IDF baseline on one labelled file (see the
    module docstring). On a dated set whose policy uses time proximity, the same ranking with time off is scored
    in the same run too (:attr:`EvalReport.without_time`).

    ``embedder`` overrides ``model`` (tests pass a fake); otherwise the model's vectors are cached on disk so a
    second run embeds nothing.
    """
    started = time.monotonic()
    articles = load_labelled(path)
    label = label or guess_label(articles)
    labelled = LabelledSet(articles, label)
    if embedder is None:
        embedder = cached_embedder(
            model or DEFAULT_MODEL, cache_dir, backend or default_backend(model or DEFAULT_MODEL)
        )
    queries = labelled.query_ids
    log.info("%s: %d articles, %d with a %r label", path, len(articles), len(queries), label)
    ours = recommender_lists(path, queries, embedder=embedder, policy=policy)
    baseline = tfidf_lists(articles)
    chosen = policy or RankingPolicy()
    without_time = None
    if chosen.time_on and any(a.published_at for a in articles):
        timeless = replace(chosen, time_half_life_days=None, dated_keyword_weight=None)
        without_time = labelled.score(recommender_lists(path, queries, embedder=embedder, policy=timeless))
    return EvalReport(
        label=label,
        articles=len(articles),
        recommender=labelled.score(ours),
        tfidf=labelled.score(baseline),
        model=embedder.name,
        backend=embedder.backend,
        seconds=time.monotonic() - started,
        without_time=without_time,
    )


# -- Lee: pair similarity against human ratings ---------------------------------------------------------------
@dataclass(frozen=True)
class CorrelationReport:
    """Pearson / Spearman of pair similarity against human ratings, for both systems."""

    pairs: int
    recommender: dict[str, float]
    tfidf: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "recommender": self.recommender, "tfidf": self.tfidf}


def read_lee_ratings(path: Path | str) -> np.ndarray:
    """The Lee matrix of mean human similarity (upper triangle holds the ratings)."""
    rows = [line.split() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    matrix = np.asarray([[float(v) for v in row] for row in rows], dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise RecommenderError(f"{path}: expected a square matrix of ratings")
    return matrix


def upper_pairs(n: int) -> list[tuple[int, int]]:
    """Every pair ``i < j`` of ``n`` items."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def correlations(similarity: np.ndarray, ratings: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman of the upper-triangle pairs of two square matrices."""
    pairs = upper_pairs(len(ratings))
    x = [float(similarity[i, j]) for i, j in pairs]
    y = [float(ratings[i, j]) for i, j in pairs]
    return {"pearson": round(pearson(x, y), 4), "spearman": round(spearman(x, y), 4)}


def evaluate_lee(
    folder: Path | str,
    *,
    model: str | None = None,
    backend: str | None = None,
    embedder: Embedder | None = None,
    policy: RankingPolicy | None = None,
    cache_dir: Path | None = None,
) -> CorrelationReport:
    """Score pair similarity on the Lee set: ``articles.jsonl`` (rated ones first) and ``similarities0-1.txt``."""
    folder = Path(folder)
    ratings = read_lee_ratings(folder / "similarities0-1.txt")
    articles = load_labelled(folder / "articles.jsonl")
    n = len(ratings)
    if len(articles) < n:
        raise RecommenderError(f"{folder}: {n} rated articles expected, found {len(articles)}")
    if embedder is None:
        embedder = cached_embedder(
            model or DEFAULT_MODEL, cache_dir, backend or default_backend(model or DEFAULT_MODEL)
        )
    rated = articles[:n]
    with tempfile.TemporaryDirectory(prefix="recommender-eval-") as tmp:
        index_dir = Path(tmp) / "index"
        build_index(
            [folder / "articles.jsonl"],
            index_dir,
            model=embedder.name,
            backend=embedder.backend,
            embedder=embedder,
            policy=policy,
        )
        with Recommender.open(index_dir, embedder=embedder) as rec:
            ours = pair_scores(rec, [a.id for a in rated])
    sparse = tfidf_matrix([a.text for a in rated], fit_texts=[a.text for a in articles])
    keyword = (sparse @ sparse.T).toarray()
    return CorrelationReport(len(upper_pairs(n)), correlations(ours, ratings), correlations(keyword, ratings))


def pair_scores(rec: Recommender, ids: Sequence[str]) -> np.ndarray:
    """The ranking score of every pair of indexed articles, from the pipeline's own
    :func:`recommender.ranking.pipeline.scores` (what orders an "Also Read" list); 1 on the diagonal."""
    from recommender.ranking.pipeline import scores

    ranker = rec.lists.ranker()
    keys = []
    for article_id in ids:
        stored = rec.store.catalog.get(article_id)
        if stored is None:
            raise RecommenderError(f"article {article_id!r} to score is not in the index")
        keys.append(stored.key)
    out = np.eye(len(ids))
    for i, article_id in enumerate(ids):
        query, pool = ranker.pool(ranker.subject(article_id), keys)
        position = {int(k): j for j, k in enumerate(pool.keys)}
        row = scores(query, pool, ranker.policy)
        for j, key in enumerate(keys):
            if j != i:
                out[i, j] = row[position[key]]
    return out
