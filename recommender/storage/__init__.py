"""Storage: the SQLite catalog (source of truth), the FAISS file (a rebuildable cache) and the manifest."""

from recommender.storage.catalog import Catalog, StoredArticle
from recommender.storage.store import IndexStore, Manifest, acquire_write_lock

__all__ = ["Catalog", "IndexStore", "Manifest", "StoredArticle", "acquire_write_lock"]
