"""recommender: self-hosted "Also Read" suggestions for news sites.

Articles are embedded with sentence-transformers, indexed in FAISS, and ranked for news (no self, no copies,
filters that keep k, freshness, diversity). The CLI and the HTTP app are thin layers over this library::

    from recommender import build_index, Recommender

    build_index(["articles.jsonl"], "index")
    with Recommender.open("index") as rec:
        for s in rec.related("article-42", k=5):
            print(s.score, s.title)
"""

from recommender.articles import Article, validate_article
from recommender.embedding import DEFAULT_MODEL, Embedder, load_embedder, register_embedder
from recommender.errors import (
    ArticleNotFound,
    BatchRejected,
    IndexBusy,
    IndexCorrupt,
    IndexMismatch,
    IndexNotFound,
    InvalidArticle,
    ModelUnavailable,
    RecommenderError,
    SourceError,
    StorageError,
    StorageFull,
)
from recommender.ranking.policy import Filters, RankingPolicy
from recommender.recommender import Recommender, RelatedList, Suggestion
from recommender.reports import WriteReport
from recommender.writer import add_articles, build_index, delete_articles, reindex

__all__ = [
    "DEFAULT_MODEL",
    "Article",
    "ArticleNotFound",
    "BatchRejected",
    "Embedder",
    "IndexBusy",
    "IndexCorrupt",
    "IndexMismatch",
    "IndexNotFound",
    "InvalidArticle",
    "ModelUnavailable",
    "Filters",
    "RankingPolicy",
    "Recommender",
    "RecommenderError",
    "RelatedList",
    "SourceError",
    "StorageError",
    "StorageFull",
    "Suggestion",
    "WriteReport",
    "add_articles",
    "build_index",
    "delete_articles",
    "load_embedder",
    "register_embedder",
    "reindex",
    "validate_article",
]

__version__ = "0.1.0"
