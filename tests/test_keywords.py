"""Keyword evidence: tokenisation, TF-IDF weights (equal to scikit-learn's), document frequencies in the catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender import Recommender, add_articles, delete_articles
from recommender.ranking.keywords import KeywordWeights, cosine, distinct_terms, idf, term_counts, tokenize, weigh
from recommender.storage.catalog import Catalog
from tests.conftest import ARTICLES
from tests.fakes import FakeEmbedder


def test_tokenize_any_script() -> None:
    assert tokenize("Élection: le Président a dit «non» à 2 reprises, O'Brien") == [
        "élection",
        "le",
        "président",
        "dit",
        "non",
        "reprises",
        "brien",
    ]
    assert tokenize("東京 Tokyo") == ["東京", "tokyo"]


def test_weights_match_scikit_learn() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = ["Flood waters rise in the river city", "River city flood: evacuation", "Central bank raises rates rates"]
    sk = TfidfVectorizer(sublinear_tf=True).fit(texts)
    matrix = sk.transform(texts)
    df = distinct_terms(texts)
    ours = [weigh(term_counts(t), df.__getitem__, len(texts)) for t in texts]
    vocab = sk.vocabulary_
    for row, vector in enumerate(ours):
        expected = {t: matrix[row, i] for t, i in vocab.items() if matrix[row, i]}
        assert vector.keys() == expected.keys()
        assert all(vector[t] == pytest.approx(expected[t], rel=1e-5) for t in vector)
    assert cosine(ours[0], ours[1]) == pytest.approx(float((matrix[0] @ matrix[1].T).toarray()[0, 0]), rel=1e-5)
    assert cosine(ours[0], ours[2]) == 0.0


def test_idf_is_smoothed() -> None:
    assert idf(0, 10) > idf(1, 10) > idf(10, 10) == pytest.approx(1.0)


def catalog_df(index_dir: Path) -> dict[str, int]:
    catalog = Catalog(index_dir / Catalog.FILENAME, read_only=True)
    try:
        return dict(catalog.conn.execute("SELECT term, df FROM terms").fetchall())
    finally:
        catalog.close()


def test_catalog_keeps_document_frequencies_through_add_edit_delete(fake_index: Path, fake: FakeEmbedder) -> None:
    texts = {a["id"]: f"{a['title']}. {a['body']}" for a in ARTICLES}
    assert catalog_df(fake_index) == dict(distinct_terms(texts.values()))
    add_articles(fake_index, articles=[{"id": "a2", "title": "Zebra crossing", "body": "A zebra crossed."}])
    texts["a2"] = "Zebra crossing. A zebra crossed."
    add_articles(fake_index, articles=[{"id": "n1", "title": "Quokka", "body": "A quokka smiled."}])
    texts["n1"] = "Quokka. A quokka smiled."
    delete_articles(fake_index, ["b1"])
    del texts["b1"]
    assert catalog_df(fake_index) == dict(distinct_terms(texts.values()))


def test_old_catalog_gets_its_frequencies_backfilled(fake_index: Path) -> None:
    conn = Catalog(fake_index / Catalog.FILENAME).conn
    conn.execute("DELETE FROM terms")
    conn.execute("DELETE FROM meta WHERE key = 'terms_version'")
    conn.close()
    assert catalog_df(fake_index) == {}
    Catalog(fake_index / Catalog.FILENAME).close()  # a writer's open backfills once
    texts = [f"{a['title']}. {a['body']}" for a in ARTICLES]
    assert catalog_df(fake_index) == dict(distinct_terms(texts))


def test_keyword_weights_follow_the_catalog(fake_index: Path, fake: FakeEmbedder) -> None:
    with Recommender.open(fake_index) as rec:
        before = rec.keywords.vector("zebra flood")
        assert set(before) == {"zebra", "flood"}
        assert before["zebra"] > before["flood"]  # unseen terms are rarer than a common one
        assert np.isclose(sum(w * w for w in before.values()), 1.0)
    add_articles(fake_index, articles=[{"id": f"z{i}", "title": "Zebra", "body": "zebra zebra"} for i in range(20)])
    with Recommender.open(fake_index) as rec:
        weights = rec.keywords
        after = weights.vector("zebra flood")
        assert after["zebra"] < after["flood"]  # now zebra is everywhere
        assert isinstance(weights, KeywordWeights)


def test_cached_weights_equal_the_pure_function(fake_index: Path) -> None:
    """KeywordWeights computes each term's idf once per refresh and looks small tf up in a table; the vectors
    must be exactly weigh()'s, for counts below and above the table's end."""
    catalog = Catalog(fake_index / Catalog.FILENAME, read_only=True)
    try:
        weights = KeywordWeights(catalog)
        n_docs = catalog.count()
        texts = ["flood " * 70 + "river city " * 3 + "unseenword", "Central bank rates", "?"]
        for text in texts:
            counts = term_counts(text)
            df = catalog.doc_freqs(counts)
            expected = weigh(counts, lambda t, df=df: df.get(t, 0), n_docs)
            assert weights.vector(text) == expected
            assert weights.vector(text, f"hash-{text[:12]}") == expected
    finally:
        catalog.close()


def test_cached_vectors_share_their_term_strings(fake_index: Path) -> None:
    """A server caches tens of thousands of these vectors: a term used by many articles is one string object,
    not one per article (half the cache's memory)."""
    catalog = Catalog(fake_index / Catalog.FILENAME, read_only=True)
    try:
        weights = KeywordWeights(catalog)
        first = weights.vector("Flood waters rise in the river city", "h1")
        second = weights.vector("River city flood: evacuation continues", "h2")
        shared = first.keys() & second.keys()
        assert shared >= {"flood", "river", "city"}
        for term in shared:
            assert next(k for k in first if k == term) is next(k for k in second if k == term)
    finally:
        catalog.close()
