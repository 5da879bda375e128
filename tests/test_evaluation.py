"""Evaluation: metric functions on hand-made cases, the labelled-set scorer, the TF-IDF baseline, the runner."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from recommender.articles import Article
from recommender.errors import RecommenderError
from recommender.evaluation.evaluate import (
    LabelledSet,
    correlations,
    coverage,
    dcg,
    evaluate_file,
    evaluate_lee,
    guess_label,
    ndcg_at,
    pearson,
    precision_at,
    reciprocal_rank,
    shows_copy,
    spearman,
    tfidf_lists,
)
from tests.conftest import write_jsonl
from tests.fakes import FakeEmbedder


def test_precision_counts_missing_slots_as_misses() -> None:
    assert precision_at([True, False, True, True, False]) == pytest.approx(0.6)
    assert precision_at([True, True]) == pytest.approx(0.4)  # a short list is not rewarded for being short
    assert precision_at([True] * 8) == 1.0  # only the first 5 count


def test_reciprocal_rank() -> None:
    assert reciprocal_rank([False, False, True]) == pytest.approx(1 / 3)
    assert reciprocal_rank([True, True]) == 1.0
    assert reciprocal_rank([False] * 4) == 0.0
    assert reciprocal_rank([False, False, True], depth=2) == 0.0


def test_ndcg_graded() -> None:
    assert dcg([2, 1]) == pytest.approx(2 + 1 / math.log2(3))
    assert ndcg_at([2, 2, 0], [2, 2, 1, 0]) == 1.0 - (1 / math.log2(4)) / dcg([2, 2, 1])
    assert ndcg_at([1, 2], [2, 1]) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert ndcg_at([0, 0], [0, 0]) == 0.0  # nothing relevant exists: no credit, no division by zero


def test_shows_copy() -> None:
    assert shows_copy("q", ["a", "q", "b"])  # a copy of the story itself
    assert shows_copy("q", ["a", "b", "a"])  # two copies of one story
    assert not shows_copy("q", ["a", "b", "c"])


def test_coverage() -> None:
    assert coverage([["a", "b"], ["b", "c"]], 10) == pytest.approx(0.3)
    assert coverage([["a", "b", "c"]], 4, k=2) == pytest.approx(0.5)
    assert coverage([], 0) == 0.0


def test_correlations() -> None:
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 1, 1], [1, 2, 3]) == 0.0
    assert spearman([1, 2, 3, 4], [1, 4, 9, 100]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)  # ties get their mean rank
    sim = np.array([[1, 0.9, 0.1], [0.9, 1, 0.5], [0.1, 0.5, 1]])
    human = np.array([[1, 0.8, 0.0], [0, 1, 0.4], [0, 0, 1]])  # upper triangle only, as the Lee file
    assert correlations(sim, human) == {"pearson": pytest.approx(1.0, abs=1e-3), "spearman": 1.0}


def art(i: str, event: str | None, topic: str | None, text: str | None = None) -> Article:
    meta = {k: v for k, v in (("event", event), ("topic", topic)) if v is not None}
    return Article(id=i, title=text or f"story {i}", body="", metadata=meta)


def test_labelled_set_gains_and_scores() -> None:
    articles = [
        art("q", "e1", "t1"),
        art("same1", "e1", "t1"),
        art("same2", "e1", "t1"),
        art("topic", "e2", "t1"),
        art("other", "e3", "t2"),
        art("unlabelled", None, None),
    ]
    ls = LabelledSet(articles, "event")
    assert ls.gains("q").tolist() == [0, 2, 2, 1, 0, 0]
    assert "unlabelled" not in ls.query_ids
    scores = ls.score({"q": ["same1", "topic", "other", "same2"]})
    assert scores.p_at_5 == pytest.approx(2 / 5)
    assert scores.mrr == 1.0
    assert scores.ndcg_at_5 == pytest.approx(dcg([2, 1, 0, 2]) / dcg([2, 2, 1]))
    assert scores.copy_rate == 0.0
    assert scores.coverage == pytest.approx(4 / 6)
    # by topic, the other event of the same topic is fully relevant
    assert LabelledSet(articles, "topic").gains("q").tolist() == [0, 2, 2, 2, 0, 0]


def test_copies_are_counted_and_left_out_of_the_ideal() -> None:
    articles = [
        art("q", "e1", "t", "Wire story"),
        art("copy", "e1", "t", "wire story!"),
        art("b", "e1", "t"),
        art("c", "e2", "u"),
        art("d", "e2", "u", "Other"),
        art("d2", "e2", "u", "other"),
    ]
    ls = LabelledSet(articles, "event")
    shown_copy = ls.score({"q": ["copy", "b"]})
    assert shown_copy.copy_rate == 1.0
    two_copies = ls.score({"q": ["b", "d", "d2"]})
    assert two_copies.copy_rate == 1.0
    clean = ls.score({"q": ["b", "c"]})
    assert clean.copy_rate == 0.0
    assert clean.ndcg_at_5 == 1.0  # the copy is not a valid suggestion, so b alone is the ideal


def test_labelled_set_refuses_unknown_or_absent_labels() -> None:
    with pytest.raises(RecommenderError):
        LabelledSet([art("a", None, "t")], "section")
    with pytest.raises(RecommenderError):
        LabelledSet([art("a", None, "t")], "event")
    assert guess_label([art("a", None, "t")]) == "topic"
    assert guess_label([art("a", "e", "t")]) == "event"


def test_tfidf_baseline_ranks_by_shared_words_and_keeps_copies() -> None:
    articles = [
        Article(id="q", title="Flood in the river city", body="river flood evacuation"),
        Article(id="copy", title="Flood in the river city", body="river flood evacuation"),
        Article(id="near", title="River city flood damage", body="flood damage river"),
        Article(id="far", title="Central bank rates", body="interest rates inflation"),
    ]
    lists = tfidf_lists(articles, depth=3)
    assert lists["q"][:2] == ["copy", "near"] and lists["q"][-1] == "far"
    assert all(i not in ids for i, ids in lists.items())


LABELLED = [
    {
        "id": "f1",
        "title": "Flood waters rise in river city",
        "body": "Heavy rain flooded the river city overnight.",
        "event": "flood",
        "topic": "weather",
    },
    {
        "id": "f2",
        "title": "River city flood evacuation",
        "body": "Residents evacuated as flood waters rose in the river city.",
        "event": "flood",
        "topic": "weather",
    },
    {
        "id": "f3",
        "title": "Flood damage counted in river city",
        "body": "After the flood the river city counts damage.",
        "event": "flood",
        "topic": "weather",
    },
    {
        "id": "f3-wire",
        "title": "Flood damage counted in river city",
        "body": "After the flood, the river city counts damage!",
        "event": "flood",
        "topic": "weather",
    },
    {
        "id": "s1",
        "title": "Storm hits coast",
        "body": "A storm with heavy wind hit the coast towns.",
        "event": "storm",
        "topic": "weather",
    },
    {
        "id": "s2",
        "title": "Coast storm damage",
        "body": "Wind from the storm damaged coast towns.",
        "event": "storm",
        "topic": "weather",
    },
    {
        "id": "b1",
        "title": "Central bank raises rates",
        "body": "Interest rates rise to fight inflation.",
        "event": "rates",
        "topic": "economy",
    },
    {
        "id": "b2",
        "title": "Markets fall on rate rise",
        "body": "Markets fell after the central bank interest rate rise.",
        "event": "rates",
        "topic": "economy",
    },
]


def test_evaluate_file_with_the_fake_embedder(tmp_path: Path, fake: FakeEmbedder) -> None:
    path = write_jsonl(tmp_path / "labelled.jsonl", LABELLED)
    report = evaluate_file(path, embedder=fake)
    assert report.label == "event" and report.articles == len(LABELLED)
    out = report.to_dict()
    assert set(out) == {"label", "articles", "recommender", "tfidf"}
    keys = {"p_at_5", "mrr", "ndcg_at_5", "copy_rate", "coverage"}
    assert set(out["recommender"]) == keys and set(out["tfidf"]) == keys
    assert report.recommender.copy_rate == 0.0  # the pipeline never shows the wire copy
    assert report.tfidf.copy_rate > 0.0  # plain keyword cosine does
    assert 0 < report.recommender.p_at_5 <= 1 and 0 < report.recommender.mrr <= 1
    assert list(tmp_path.iterdir()) == [path]  # the throwaway index is gone
    by_topic = evaluate_file(path, embedder=fake, label="topic")
    assert by_topic.label == "topic" and by_topic.recommender.p_at_5 >= report.recommender.p_at_5


def test_evaluate_lee_scores_pairs(tmp_path: Path, fake: FakeEmbedder) -> None:
    folder = tmp_path / "lee"
    folder.mkdir()
    rows = [{"id": r["id"], "body": r["title"] + " " + r["body"]} for r in LABELLED]
    write_jsonl(folder / "articles.jsonl", rows)
    n = 4  # the first 4 are rated, the rest is background for the TF-IDF fit
    human = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            human[i, j] = 1.0 if i == j else (0.9 if LABELLED[i]["event"] == LABELLED[j]["event"] else 0.1)
    (folder / "similarities0-1.txt").write_text("\n".join("\t".join(str(v) for v in row) for row in human))
    report = evaluate_lee(folder, embedder=fake)
    assert report.pairs == 6
    assert set(report.recommender) == {"pearson", "spearman"} and -1 <= report.tfidf["pearson"] <= 1


def test_cli_eval_json_and_table(tmp_path: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from recommender.cli.app import app

    monkeypatch.setenv("RECOMMENDER_CACHE", str(tmp_path / "cache"))
    path = write_jsonl(tmp_path / "labelled.jsonl", LABELLED)
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(path), "--label", "event", "--model", "fake-hashing", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["label"] == "event" and out["articles"] == len(LABELLED)
    assert set(out) == {"label", "articles", "recommender", "tfidf"}
    assert set(out["recommender"]) == {"p_at_5", "mrr", "ndcg_at_5", "copy_rate", "coverage"} == set(out["tfidf"])
    assert out["recommender"]["copy_rate"] == 0.0 and out["tfidf"]["copy_rate"] > 0
    embedded = fake.embedded
    table = runner.invoke(app, ["eval", str(path), "--model", "fake-hashing"])
    assert table.exit_code == 0, table.output
    assert "relevant = same event" in table.stdout and "p_at_5" in table.stdout
    assert fake.embedded == embedded  # the second run read every vector from the cache
    assert list((tmp_path / "cache").iterdir())


def test_cli_eval_errors_are_one_line(tmp_path: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from recommender.cli.app import app

    monkeypatch.setenv("RECOMMENDER_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    missing = runner.invoke(app, ["eval", str(tmp_path / "nope.jsonl"), "--model", "fake-hashing"])
    assert missing.exit_code == 1 and "no such file" in missing.output and "Traceback" not in missing.output
    path = write_jsonl(tmp_path / "l.jsonl", LABELLED)
    bad = runner.invoke(app, ["eval", str(path), "--label", "section", "--model", "fake-hashing"])
    assert bad.exit_code == 1 and "unknown label" in bad.output


def test_cli_eval_on_a_dated_set_also_scores_the_ranking_with_time_off(
    tmp_path: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from recommender.cli.app import app

    monkeypatch.setenv("RECOMMENDER_CACHE", str(tmp_path / "cache"))
    dated = [{**row, "published_at": f"2024-05-{1 + n % 20:02d}T12:00:00Z"} for n, row in enumerate(LABELLED)]
    path = write_jsonl(tmp_path / "dated.jsonl", dated)
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(path), "--label", "event", "--model", "fake-hashing", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"label", "articles", "recommender", "without_time", "tfidf"}
    assert set(out["without_time"]) == set(out["recommender"])
    table = runner.invoke(app, ["eval", str(path), "--label", "event", "--model", "fake-hashing"])
    assert "time off" in table.stdout
    undated = runner.invoke(app, ["eval", str(write_jsonl(tmp_path / "u.jsonl", LABELLED)), "--model", "fake-hashing"])
    assert "time off" not in undated.stdout  # no dates: nothing to compare
