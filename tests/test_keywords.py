"""Keyword evidence: tokenisation, TF-IDF weights (scikit-learn's with no background), the background list for
a small archive, and the snapshot that keeps weights still between full recomputes."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from recommender import Recommender, add_articles, build_index
from recommender.ranking.keywords import (
    KeywordModel,
    background_share,
    cosine,
    idf,
    shared_terms,
    term_counts,
    tokenize,
    weigh_rows,
)
from recommender.ranking.policy import RankingPolicy
from recommender.storage.catalog import Catalog
from recommender.writer import refresh_lists
from tests.conftest import write_jsonl
from tests.fakes import FAKE_MODEL, FakeEmbedder


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


def test_tokens_are_scikit_learns() -> None:
    """The pattern without word-boundary assertions finds exactly the default ``token_pattern``'s tokens."""
    rng = random.Random(3)
    alphabet = "ab é1_-.  \n'ß\u0301中文ΣΆ\u200d"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        assert tokenize(text) == re.findall(r"(?u)\b\w\w+\b", text.lower()), text
    # mostly ASCII (the ASCII pattern's texts), with the Kelvin sign, which lower-cases to an ASCII "k"
    alphabet = "aZ z9_-.  \n'\t\u212a"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        if rng.random() < 0.2:
            text += rng.choice("é中\u0301")
        assert tokenize(text) == re.findall(r"(?u)\b\w\w+\b", text.lower()), text


def vector(text: str, df: dict[str, int], n_docs: int, prior: float = 0.0, language: str | None = None) -> dict:
    counts = term_counts(text)
    terms = list(counts)
    background = background_share(terms, language) if prior else None
    idfs = idf(np.array([df.get(t, 0) for t in terms]), n_docs, prior, 0.0 if background is None else background)
    weights = weigh_rows(np.array([len(terms)]), np.array(list(counts.values())), idfs)
    return dict(zip(terms, weights.tolist(), strict=True))


def test_weights_without_a_background_are_scikit_learns() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = ["Flood waters rise in the river city", "River city flood: evacuation", "Central bank raises rates rates"]
    sk = TfidfVectorizer(sublinear_tf=True).fit(texts)
    matrix = sk.transform(texts)
    df: dict[str, int] = {}
    for t in texts:
        for term in set(tokenize(t)):
            df[term] = df.get(term, 0) + 1
    ours = [vector(t, df, len(texts)) for t in texts]
    for row, vec in enumerate(ours):
        expected = {t: matrix[row, i] for t, i in sk.vocabulary_.items() if matrix[row, i]}
        assert vec.keys() == expected.keys()
        assert all(vec[t] == pytest.approx(expected[t], rel=1e-9) for t in vec)
    assert cosine(ours[0], ours[1]) == pytest.approx(float((matrix[0] @ matrix[1].T).toarray()[0, 0]), rel=1e-9)
    assert cosine(ours[0], ours[2]) == 0.0


def test_weigh_rows_gives_each_text_the_same_weights_alone_or_in_a_batch() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 40, size=50)
    counts = rng.integers(1, 9, size=int(lengths.sum()))
    idfs = rng.uniform(1, 9, size=int(lengths.sum()))
    batch = weigh_rows(lengths, counts, idfs)
    start = 0
    for length in lengths:
        alone = weigh_rows(np.array([length]), counts[start : start + length], idfs[start : start + length])
        assert np.array_equal(alone, batch[start : start + length])  # bit for bit
        start += length


def test_a_background_list_makes_weights_sane_in_a_small_archive() -> None:
    """Three articles: every word is rare by the archive's own counts, so "the" or "said" would look as telling
    as a name. With the background list, common words weigh little from the first article on."""
    df = {"the": 1, "said": 1, "minister": 1, "macron": 1}
    plain = vector("the minister said macron", df, 3)
    blended = vector("the minister said macron", df, 3, prior=1000, language="en")
    assert plain["the"] == pytest.approx(plain["macron"])  # nothing tells them apart
    assert blended["macron"] > blended["minister"] > blended["said"] > blended["the"]
    assert background_share(["the", "zxqv"], "en").tolist()[1] == 0.0  # an unknown word: rare
    assert background_share(["the"], "xx") is None  # no list for the language: the archive's counts alone
    # a large archive's own counts win over the background
    many = vector(
        "the minister said macron",
        {"the": 90_000, "said": 50_000, "minister": 9_000, "macron": 10},
        100_000,
        prior=1000,
        language="en",
    )
    assert many["macron"] > many["minister"] > many["said"] > many["the"]


def test_idf_is_smoothed() -> None:
    assert float(idf(0, 10)) > float(idf(1, 10)) > float(idf(10, 10)) == pytest.approx(1.0)


def test_shared_terms_are_the_biggest_contributions() -> None:
    a = {"flood": 0.6, "river": 0.5, "city": 0.2, "rain": 0.59}
    b = {"flood": 0.7, "city": 0.7, "rain": 0.1}
    assert shared_terms(a, b, 2) == ["flood", "city"]


def snapshot(index_dir: Path, language: str = "en") -> tuple[int, dict[str, int]]:
    catalog = Catalog(index_dir / Catalog.FILENAME, read_only=True)
    try:
        docs = json.loads(catalog.get_meta("terms_docs") or "{}").get(language, 0)
        rows = catalog.conn.execute("SELECT term, df FROM terms WHERE language = ?", (language,)).fetchall()
        return docs, dict(rows)
    finally:
        catalog.close()


def test_keyword_snapshot_is_taken_with_every_full_recompute_and_still_in_between(
    tmp_path: Path, fake: FakeEmbedder
) -> None:
    rows = [
        {"id": f"r{i}", "title": f"flood river story {i}", "body": "rain water", "language": "en"} for i in range(6)
    ]
    index_dir = tmp_path / "index"
    build_index([write_jsonl(tmp_path / "a.jsonl", rows)], index_dir, model=FAKE_MODEL)
    docs, df = snapshot(index_dir)
    assert docs == 6 and df["flood"] == 6 and df["story"] == 6 and "zebra" not in df
    with Recommender.open(index_dir) as rec:
        before = rec.keywords.vector("flood zebra", "en")
    add_articles(index_dir, articles=[{"id": "z", "title": "zebra flood", "body": "zebra escapes", "language": "en"}])
    assert snapshot(index_dir) == (docs, df)  # a write does not move any weight ...
    with Recommender.open(index_dir) as rec:
        assert rec.keywords.vector("flood zebra", "en") == before
    assert refresh_lists(index_dir) == 7  # ... a full recompute re-takes the counts
    docs, df = snapshot(index_dir)
    assert docs == 7 and df["zebra"] == 1 and df["flood"] == 7


def test_model_weights_equal_the_pure_functions(fake_index: Path) -> None:
    catalog = Catalog(fake_index / Catalog.FILENAME, read_only=True)
    try:
        docs = json.loads(catalog.get_meta("terms_docs") or "{}")
        for prior, language in ((0.0, None), (500.0, "en"), (500.0, None), (0.0, "en")):
            model = KeywordModel(catalog, prior)
            key = language or ""
            df = dict(catalog.conn.execute("SELECT term, df FROM terms WHERE language = ?", (key,)).fetchall())
            for text in ["flood " * 70 + "river city " * 3 + "unseenword", "Central bank rates", "?"]:
                used_prior = prior if language else 0.0
                expected = vector(text, df, docs.get(key, 0), used_prior, language)
                assert model.vector(text, language) == expected
                assert model.vector(text, language, f"hash-{text[:12]}") == expected
    finally:
        catalog.close()


def test_the_prior_is_a_policy_knob(tmp_path: Path, fake: FakeEmbedder) -> None:
    rows = [{"id": f"r{i}", "title": f"the flood said {i}", "body": "the rain", "language": "en"} for i in range(4)]
    build_index(
        [write_jsonl(tmp_path / "a.jsonl", rows)],
        tmp_path / "index",
        model=FAKE_MODEL,
        policy=RankingPolicy(keyword_prior_docs=1000),
    )
    with Recommender.open(tmp_path / "index") as rec:
        weights = rec.keywords.vector("the flood", "en")
        assert weights["flood"] > weights["the"]
